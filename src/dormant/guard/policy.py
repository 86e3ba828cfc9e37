"""The guard's policy: a Cedar policy set for *who may call what*, a TOML file for the rest.

Authorisation is written in Cedar (the policy language of AWS Verified Permissions, Bedrock
AgentCore and ToolHive; https://docs.cedarpolicy.com), evaluated by ``cedarpy``. Every request is
``principal = Agent::"<identity>"``, ``action = Action::"call_tool"``,
``resource = Tool::"<tool name>"`` with the context below; Cedar denies unless a ``permit``
matches and no ``forbid`` does, so the policy is deny by default. The policy is validated at load
against :data:`CEDAR_SCHEMA`, so a misspelt context attribute is an error naming its line, not a
rule that silently never fires.

Context attributes (all always present)::

    privilege   String  the tool's class: read, write, egress, secret, admin
    provenance  String  verified, signed, unknown, tampered, flagged
    tier        String  normal, or suspect when a known trigger is in the request
    host        String  the first destination host in the arguments ("" if none)
    hosts       Set<String>  every destination host in the arguments
    path        String  the first path argument ("" if none)
    amount      Long    the amount argument rounded *up* (0 if none), so ``amount > 200``
                        also catches 200.01; has_amount says whether there is one
    amount_cents Long   the amount times 100, rounded (exact limits on money)
    has_amount  Bool

What Cedar does not hold lives in the TOML file (read with :mod:`tomllib`): the identities and
their hashed API keys and canary credentials, the tool catalogue (privilege class, argument
constraints, hold-for-approval), the provenance ceilings, the suspect tier's ceiling and the
served models' artifact digests. See ``examples/guard/`` for a complete pair.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, InputNotFoundError
from ._cedar import CEDAR_SCHEMA, authorize, compile_cedar, statements
from ._policy_records import (
    DEFAULT_CEILINGS,
    PRIVILEGE_ORDER,
    Identity,
    ToolSpec,
    lower,
    parse_ceiling,
    within,
)
from .types import Privilege, ProvenanceState

_ANSWER_CACHE = 4096


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a Cedar context value (lists become tuples)."""
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class GuardPolicy:
    """A loaded, validated guard policy (immutable; reload to change it).

    Build it with :meth:`load`. ``version`` is ``sha256:<hex>`` over both files' bytes and is
    written into every audit entry.
    """

    cedar_text: str
    tools: Mapping[str, ToolSpec]
    identities: Mapping[str, Identity]
    ceilings: Mapping[ProvenanceState, Privilege | None]
    suspect_ceiling: Privilege | None = Privilege.READ
    destinations: tuple[str, ...] = ()
    model_digests: Mapping[str, str] = field(default_factory=dict)
    learning_decisions: int = 50
    insecure_code: str = "deny"
    protected_texts: tuple[str, ...] = ()
    version: str = ""
    source: str = ""
    cedar_source: str = ""
    _cedar: Any = field(default=None, repr=False, compare=False)
    _schema: Any = field(default=None, repr=False, compare=False)
    #: Cedar's answers by request (see :meth:`is_authorized`); fresh for every instance, also
    #: one made by ``dataclasses.replace``.
    _answers: dict[tuple[Any, ...], bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, cedar: str | os.PathLike[str] | None = None
    ) -> GuardPolicy:
        """Read and validate a TOML policy and its Cedar policy set.

        Parameters
        ----------
        path:
            The TOML file. Its ``[guard] cedar`` key names the Cedar file (relative to the TOML
            file); without it, the file of the same name with suffix ``.cedar``.
        cedar:
            The Cedar file, overriding the TOML's choice.

        Raises
        ------
        InputNotFoundError
            A file does not exist.
        ConfigError
            A TOML key or value, or a Cedar statement, is invalid; the message names the file
            and line.
        """
        p = Path(path)
        if not p.is_file():
            raise InputNotFoundError(f"Guard policy file {str(p)!r} does not exist.")
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")  # a BOM from Windows editors
            data = tomllib.loads(text)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text ({exc.reason}).") from None
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            where = f"{p}:{m.group(1)}" if m else str(p)
            raise ConfigError(f"{where}: invalid TOML: {exc}") from None
        guard = data.get("guard", {})
        cedar_path = Path(cedar) if cedar is not None else None
        if cedar_path is None:
            name = guard.get("cedar") if isinstance(guard, dict) else None
            cedar_path = (p.parent / name) if isinstance(name, str) else p.with_suffix(".cedar")
        if not cedar_path.is_file():
            raise InputNotFoundError(
                f"{p}: the Cedar policy file {str(cedar_path)!r} does not exist "
                '(set [guard] cedar = "FILE" or put FILE.cedar next to the TOML file).'
            )
        cedar_raw = cedar_path.read_bytes()
        try:
            cedar_text = cedar_raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{cedar_path}: not UTF-8 text ({exc.reason}).") from None
        from ._policy_toml import parse_toml

        fields = parse_toml(data, text, p)
        for k in ("tools", "identities", "ceilings", "model_digests"):
            if k in fields:  # read-only views: a loaded policy cannot be changed in place
                fields[k] = MappingProxyType(fields[k])
        compiled, schema = compile_cedar(cedar_text, cedar_path)
        version = "sha256:" + hashlib.sha256(raw + b"\0" + cedar_raw).hexdigest()
        return cls(
            cedar_text=cedar_text,
            version=version,
            source=str(p),
            cedar_source=str(cedar_path),
            _cedar=compiled,
            _schema=schema,
            **fields,
        )

    # -- queries -------------------------------------------------------------------------

    def tool_privilege(self, tool: str) -> Privilege | None:
        """The tool's privilege class, or ``None`` when it is not in the catalogue."""
        spec = self.tools.get(tool)
        return spec.privilege if spec else None

    def ceiling_for(self, state: ProvenanceState) -> Privilege | None:
        """The highest privilege class the model's provenance allows (``None``: no tools)."""
        return self.ceilings.get(state, DEFAULT_CEILINGS[state])

    def identity_for_key(self, key: str) -> str | None:
        """The identity whose ``key_sha256`` is the SHA-256 of ``key``, or ``None``.

        Every identity's hash is compared with :func:`hmac.compare_digest` (constant time per
        comparison, and all are compared), so the answer's timing does not reveal a prefix.
        """
        if not isinstance(key, str) or not key:
            return None
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        found = None
        for ident in self.identities.values():
            for h in ident.key_hashes or ((ident.key_sha256,) if ident.key_sha256 else ()):
                if hmac.compare_digest(digest, h):
                    found = ident.name
        return found

    def canaries_for(self, identity: str) -> tuple[str, ...]:
        """The canary credentials placed in this identity's context."""
        ident = self.identities.get(identity)
        return ident.canaries if ident else ()

    def all_canaries(self) -> tuple[str, ...]:
        """Every identity's canaries (a canary is never legitimate, whoever uses it)."""
        return tuple(c for i in self.identities.values() for c in i.canaries)

    def is_authorized(self, identity: str, tool: str, context: dict[str, Any]) -> bool:
        """Cedar's answer for ``Agent::identity`` calling ``Tool::tool`` with ``context``.

        Answers are remembered per policy (at most :data:`_ANSWER_CACHE` requests): with no
        entity data and no clock in the schema, a Cedar decision is a pure function of the
        policy set and the request, and most of an agent's calls repeat the same request.
        """
        key = (identity, tool, *((k, _frozen(v)) for k, v in sorted(context.items())))
        hit = self._answers.get(key)
        if hit is not None:
            return hit
        request = {
            "principal": {"type": "Agent", "id": identity},
            "action": {"type": "Action", "id": "call_tool"},
            "resource": {"type": "Tool", "id": tool},
            "context": context,
        }
        # The policies were validated against CEDAR_SCHEMA at load and the context is built by
        # the decision core with the schema's types, so the request is not re-validated here
        # (that halves the cost of a decision).
        answer = authorize(self._cedar, request)
        if len(self._answers) >= _ANSWER_CACHE:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def warnings(self) -> tuple[str, ...]:
        """Likely mistakes that are not errors: Cedar naming a tool or agent the TOML lacks."""
        out = []
        tools = set(re.findall(r'Tool::"((?:[^"\\]|\\.)*)"', self.cedar_text))
        agents = set(re.findall(r'Agent::"((?:[^"\\]|\\.)*)"', self.cedar_text))
        for t in sorted(tools - set(self.tools)):
            out.append(
                f"Cedar names Tool::{t!r}, which is not in the TOML tool catalogue: "
                "calls to it are always denied"
            )
        for a in sorted(agents - set(self.identities)):
            out.append(
                f"Cedar names Agent::{a!r}, which is not an identity in the TOML: "
                "no API key can act as it"
            )
        for name, ident in sorted(self.identities.items()):
            if not ident.key_sha256:
                out.append(f"identity {name!r} has no key_sha256: no API key can act as it")
        return tuple(out)

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready description (for ``dormant guard policy check``)."""
        return {
            "policy": self.source,
            "cedar": self.cedar_source,
            "version": self.version,
            "cedar_statements": len(statements(self.cedar_text)),
            "identities": sorted(self.identities),
            "tools": {n: t.privilege.value for n, t in sorted(self.tools.items())},
            "ceilings": {s.value: (c.value if c else "none") for s, c in self.ceilings.items()},
            "suspect_ceiling": self.suspect_ceiling.value if self.suspect_ceiling else "none",
            "models": dict(self.model_digests),
            "warnings": list(self.warnings()),
        }


__all__ = [
    "CEDAR_SCHEMA",
    "DEFAULT_CEILINGS",
    "PRIVILEGE_ORDER",
    "GuardPolicy",
    "Identity",
    "ToolSpec",
    "lower",
    "parse_ceiling",
    "within",
]
