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
    amount      Long    the amount argument, rounded ("0" if none); has_amount says if present
    has_amount  Bool

What Cedar does not hold lives in the TOML file (read with :mod:`tomllib`): the identities and
their hashed API keys and canary credentials, the tool catalogue (privilege class, argument
constraints, hold-for-approval), the provenance ceilings, the suspect tier's ceiling and the
served models' artifact digests. See ``examples/guard/`` for a complete pair.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputNotFoundError
from .types import Privilege, ProvenanceState

#: Privilege classes from least to most dangerous (a ceiling grants every class up to its own).
PRIVILEGE_ORDER: tuple[Privilege, ...] = (
    Privilege.READ,
    Privilege.WRITE,
    Privilege.EGRESS,
    Privilege.SECRET,
    Privilege.ADMIN,
)
_RANK = {p: i for i, p in enumerate(PRIVILEGE_ORDER)}

#: The strict default ceilings (the TOML ``[ceilings]`` table overrides them one by one).
DEFAULT_CEILINGS: dict[ProvenanceState, Privilege | None] = {
    ProvenanceState.VERIFIED: Privilege.ADMIN,
    ProvenanceState.SIGNED: Privilege.WRITE,
    ProvenanceState.UNKNOWN: Privilege.READ,
    ProvenanceState.TAMPERED: None,
    ProvenanceState.FLAGGED: None,
}

#: The Cedar schema every guard policy is validated against.
CEDAR_SCHEMA = """
entity Agent;
entity Tool;
action call_tool appliesTo {
  principal: [Agent],
  resource: [Tool],
  context: {
    privilege: String,
    provenance: String,
    tier: String,
    host: String,
    hosts: Set<String>,
    path: String,
    amount: Long,
    has_amount: Bool,
  }
};
"""

_GUARD_KEYS = {"cedar", "suspect_ceiling", "destinations", "learning_decisions"}
_IDENTITY_KEYS = {"key_sha256", "canaries", "description"}
_TOOL_KEYS = {
    "privilege",
    "description",
    "destinations",
    "destination_args",
    "paths",
    "path_args",
    "max_amount",
    "min_amount",
    "amount_arg",
    "secret_patterns",
    "allow_secrets",
    "hold",
}
_RESPONSE_KEYS = {"insecure_code", "protected_texts"}
_TOP_KEYS = {"guard", "identities", "tools", "ceilings", "model_digests", "response"}
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_PATH_ARGS = ("path", "file", "filename", "filepath", "file_path", "directory", "dir")


def parse_ceiling(value: object, *, where: str) -> Privilege | None:
    """``"none"`` -> ``None``; a privilege name -> :class:`Privilege`; anything else raises."""
    if value == "none":
        return None
    try:
        return Privilege(str(value))
    except ValueError:
        raise ConfigError(
            f"{where} must be one of none, {', '.join(p.value for p in PRIVILEGE_ORDER)}. "
            f"Got {value!r} instead."
        ) from None


def within(privilege: Privilege, ceiling: Privilege | None) -> bool:
    """Whether ``privilege`` is granted under ``ceiling`` (``None`` grants nothing)."""
    return ceiling is not None and _RANK[privilege] <= _RANK[ceiling]


def lower(a: Privilege | None, b: Privilege | None) -> Privilege | None:
    """The stricter of two ceilings (``None`` is the strictest)."""
    if a is None or b is None:
        return None
    return a if _RANK[a] <= _RANK[b] else b


@dataclass(frozen=True)
class ToolSpec:
    """One tool of the catalogue: its privilege class and argument constraints."""

    name: str
    privilege: Privilege
    description: str = ""
    #: Host globs a destination in the arguments must match (``*.example.com``); ``None`` means
    #: the policy-wide ``[guard] destinations``.
    destinations: tuple[str, ...] | None = None
    #: Argument names holding a destination; empty = every string argument is searched.
    destination_args: tuple[str, ...] = ()
    #: Path globs a path argument must match; ``None`` = no path constraint.
    paths: tuple[str, ...] | None = None
    path_args: tuple[str, ...] = _DEFAULT_PATH_ARGS
    max_amount: float | None = None
    min_amount: float | None = None
    amount_arg: str = "amount"
    #: Regular expressions that no argument value may match.
    secret_patterns: tuple[str, ...] = ()
    #: Whether credential material in the arguments is expected (a ``secret``-class tool).
    allow_secrets: bool = False
    hold: bool = False

    def host_allowed(self, host: str, default: tuple[str, ...]) -> bool:
        """Whether ``host`` matches this tool's destination globs (or the policy default)."""
        globs = self.destinations if self.destinations is not None else default
        h = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(h, g.lower()) for g in globs)

    def path_allowed(self, path: str) -> bool:
        """Whether ``path`` matches a path glob (``..`` segments are never allowed)."""
        if self.paths is None:
            return True
        if ".." in Path(path).parts:
            return False
        return any(fnmatch.fnmatchcase(path, g) for g in self.paths)


@dataclass(frozen=True)
class Identity:
    """An agent identity: the SHA-256 of its API key and the canaries placed in its context."""

    name: str
    key_sha256: str | None = None
    canaries: tuple[str, ...] = ()
    description: str = ""


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
            text = raw.decode("utf-8")
            data = tomllib.loads(text)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text ({exc.reason}).") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
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
            cedar_text = cedar_raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{cedar_path}: not UTF-8 text ({exc.reason}).") from None
        fields = _parse_toml(data, text, p)
        compiled, schema = _compile_cedar(cedar_text, cedar_path)
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
            if ident.key_sha256 and hmac.compare_digest(digest, ident.key_sha256):
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
        """Cedar's answer for ``Agent::identity`` calling ``Tool::tool`` with ``context``."""
        import cedarpy

        request = {
            "principal": {"type": "Agent", "id": identity},
            "action": {"type": "Action", "id": "call_tool"},
            "resource": {"type": "Tool", "id": tool},
            "context": context,
        }
        result = cedarpy.is_authorized(request, self._cedar, [], self._schema)
        return bool(result.allowed)

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready description (for ``dormant guard policy check``)."""
        return {
            "policy": self.source,
            "cedar": self.cedar_source,
            "version": self.version,
            "cedar_statements": len(_statements(self.cedar_text)),
            "identities": sorted(self.identities),
            "tools": {n: t.privilege.value for n, t in sorted(self.tools.items())},
            "ceilings": {s.value: (c.value if c else "none") for s, c in self.ceilings.items()},
            "suspect_ceiling": self.suspect_ceiling.value if self.suspect_ceiling else "none",
            "models": dict(self.model_digests),
        }


# -- TOML --------------------------------------------------------------------------------


def _line_of(text: str, table: str | None, key: str | None) -> int:
    """1-based line of ``key`` inside ``[table]`` (or of the table header) in TOML ``text``."""
    lines = text.splitlines()
    start = 0
    if table:
        parts = table.split(".")
        pat = re.compile(
            r"^\s*\[\s*"
            + r"\s*\.\s*".join(r"[\"']?" + re.escape(x) + r"[\"']?" for x in parts)
            + r"\s*\]"
        )
        for i, line in enumerate(lines):
            if pat.match(line):
                start = i
                if key is None:
                    return i + 1
                break
    if key is not None:
        kpat = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start, len(lines)):
            if kpat.match(lines[i]):
                return i + 1
        # dotted or inline forms: the first line that mentions the key
        for i in range(start, len(lines)):
            if key in lines[i]:
                return i + 1
    return start + 1


def _err(path: Path, text: str, table: str | None, key: str | None, msg: str) -> ConfigError:
    line = _line_of(text, table, key)
    name = f"[{table}] {key}" if table and key else (f"[{table}]" if table else str(key))
    return ConfigError(f"{path}:{line}: {name}: {msg}")


def _strs(value: object, path: Path, text: str, table: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(path, text, table, key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _parse_toml(data: dict[str, Any], text: str, path: Path) -> dict[str, Any]:
    for k in data:
        if k not in _TOP_KEYS:
            raise _err(
                path, text, None, k, f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}"
            )
    out: dict[str, Any] = {}
    guard = _table(data, "guard", path, text)
    for k in guard:
        if k not in _GUARD_KEYS:
            raise _err(path, text, "guard", k, f"unknown key; expected {sorted(_GUARD_KEYS)}")
    if "suspect_ceiling" in guard:
        try:
            out["suspect_ceiling"] = parse_ceiling(guard["suspect_ceiling"], where="the value")
        except ConfigError as exc:
            raise _err(path, text, "guard", "suspect_ceiling", str(exc)) from None
    if "destinations" in guard:
        out["destinations"] = _strs(guard["destinations"], path, text, "guard", "destinations")
    if "learning_decisions" in guard:
        n = guard["learning_decisions"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise _err(
                path, text, "guard", "learning_decisions", f"expected an int >= 0, got {n!r}"
            )
        out["learning_decisions"] = n

    ceilings = dict(DEFAULT_CEILINGS)
    for k, v in _table(data, "ceilings", path, text).items():
        try:
            state = ProvenanceState(k)
        except ValueError:
            raise _err(
                path,
                text,
                "ceilings",
                k,
                f"unknown provenance state; expected {', '.join(s.value for s in ProvenanceState)}",
            ) from None
        try:
            ceilings[state] = parse_ceiling(v, where="the value")
        except ConfigError as exc:
            raise _err(path, text, "ceilings", k, str(exc)) from None
    out["ceilings"] = ceilings

    identities: dict[str, Identity] = {}
    for name, spec in _table(data, "identities", path, text).items():
        tbl = f"identities.{name}"
        if not isinstance(spec, dict):
            raise _err(path, text, "identities", name, "expected a table")
        for k in spec:
            if k not in _IDENTITY_KEYS:
                raise _err(path, text, tbl, k, f"unknown key; expected {sorted(_IDENTITY_KEYS)}")
        key = spec.get("key_sha256")
        if key is not None and (not isinstance(key, str) or not _SHA256_HEX.match(key)):
            raise _err(
                path,
                text,
                tbl,
                "key_sha256",
                "expected 64 lower-case hex digits "
                "(the SHA-256 of the API key; 'dormant guard key new' prints one)",
            )
        canaries = _strs(spec.get("canaries", []), path, text, tbl, "canaries")
        if any(len(c) < 8 for c in canaries):
            raise _err(path, text, tbl, "canaries", "a canary must be at least 8 characters")
        identities[name] = Identity(name, key, canaries, str(spec.get("description", "")))
    out["identities"] = identities

    tools: dict[str, ToolSpec] = {}
    for name, spec in _table(data, "tools", path, text).items():
        tools[name] = _tool(name, spec, path, text)
    out["tools"] = tools

    digests = _table(data, "model_digests", path, text)
    for k, v in digests.items():
        if not isinstance(v, str) or not v.startswith("sha256:"):
            raise _err(path, text, "model_digests", k, f"expected 'sha256:<hex>', got {v!r}")
    out["model_digests"] = dict(digests)

    resp = _table(data, "response", path, text)
    for k in resp:
        if k not in _RESPONSE_KEYS:
            raise _err(path, text, "response", k, f"unknown key; expected {sorted(_RESPONSE_KEYS)}")
    if "insecure_code" in resp:
        if resp["insecure_code"] not in ("deny", "allow"):
            raise _err(path, text, "response", "insecure_code", "expected 'deny' or 'allow'")
        out["insecure_code"] = resp["insecure_code"]
    if "protected_texts" in resp:
        out["protected_texts"] = _strs(
            resp["protected_texts"], path, text, "response", "protected_texts"
        )
    return out


def _table(data: dict[str, Any], name: str, path: Path, text: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise _err(path, text, None, name, "expected a table")
    return value


def _tool(name: str, spec: object, path: Path, text: str) -> ToolSpec:
    tbl = f"tools.{name}"
    if not isinstance(spec, dict):
        raise _err(path, text, "tools", name, "expected a table")
    for k in spec:
        if k not in _TOOL_KEYS:
            raise _err(path, text, tbl, k, f"unknown key; expected {sorted(_TOOL_KEYS)}")
    if "privilege" not in spec:
        raise _err(
            path, text, tbl, None, "missing 'privilege' (read, write, egress, secret, admin)"
        )
    try:
        priv = Privilege(spec["privilege"])
    except ValueError:
        raise _err(
            path,
            text,
            tbl,
            "privilege",
            f"expected one of read, write, egress, secret, admin; got {spec['privilege']!r}",
        ) from None
    kw: dict[str, Any] = {}
    for k in ("destinations", "paths"):
        if k in spec:
            kw[k] = _strs(spec[k], path, text, tbl, k)
    for k in ("destination_args", "path_args", "secret_patterns"):
        if k in spec:
            kw[k] = _strs(spec[k], path, text, tbl, k)
    for pat in kw.get("secret_patterns", ()):
        try:
            re.compile(pat)
        except re.error as exc:
            raise _err(
                path, text, tbl, "secret_patterns", f"invalid regex {pat!r}: {exc}"
            ) from None
    for k in ("max_amount", "min_amount"):
        if k in spec:
            v = spec[k]
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise _err(path, text, tbl, k, f"expected a number, got {v!r}")
            kw[k] = float(v)
    for k in ("hold", "allow_secrets"):
        if k in spec:
            if not isinstance(spec[k], bool):
                raise _err(path, text, tbl, k, f"expected true or false, got {spec[k]!r}")
            kw[k] = spec[k]
    if "amount_arg" in spec:
        if not isinstance(spec["amount_arg"], str):
            raise _err(path, text, tbl, "amount_arg", "expected a string")
        kw["amount_arg"] = spec["amount_arg"]
    return ToolSpec(name=name, privilege=priv, description=str(spec.get("description", "")), **kw)


# -- Cedar -------------------------------------------------------------------------------


def _statements(text: str) -> list[tuple[int, str]]:
    """Split Cedar text into ``(first line, statement)`` at top-level ``;``.

    Cedar's parser reports no source positions through ``cedarpy``, so the statements are found
    here (strings and ``//`` comments skipped) and parsed one by one to name the failing line.
    """
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    line = 1
    start_line: int | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            chunk = text[i : j + 1]
            if start_line is None:
                start_line = line
            buf.append(chunk)
            line += chunk.count("\n")
            i = j + 1
            continue
        if ch == "\n":
            line += 1
        elif not ch.isspace() and start_line is None:
            start_line = line
        buf.append(ch)
        if ch == ";":
            out.append((start_line or line, "".join(buf).strip()))
            buf, start_line = [], None
        i += 1
    rest = "".join(buf).strip()
    if rest:
        out.append((start_line or line, rest))
    return out


def _compile_cedar(text: str, path: Path) -> tuple[Any, Any]:
    import cedarpy

    schema = cedarpy.Schema.from_str(CEDAR_SCHEMA)
    stmts = _statements(text)
    if not stmts:
        raise ConfigError(
            f"{path}:1: the Cedar policy set is empty; with no permit every call would be "
            "denied. Add at least one permit statement."
        )
    for line, stmt in stmts:
        if not stmt.endswith(";"):
            raise ConfigError(f"{path}:{line}: Cedar statement is not closed with ';'.")
        try:
            cedarpy.PolicySet.from_str(stmt)
        except ValueError as exc:
            raise ConfigError(f"{path}:{line}: invalid Cedar statement: {exc}") from None
    try:
        compiled = cedarpy.PolicySet.from_str(text)
    except ValueError as exc:  # pragma: no cover - each statement parsed above
        raise ConfigError(f"{path}: invalid Cedar policy set: {exc}") from None
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        first = result.errors[0]
        m = re.match(r"policy(\d+)$", first.policy_id or "")
        line = stmts[int(m.group(1))][0] if m and int(m.group(1)) < len(stmts) else 1
        raise ConfigError(
            f"{path}:{line}: Cedar statement does not validate against the guard's schema: "
            f"{first.error}"
        )
    return compiled, schema


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
