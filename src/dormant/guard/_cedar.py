"""Cedar for the guard: the schema, compiling a policy set with line numbers, authorising.

``cedarpy`` (the Python binding of the Cedar Rust crate) parses and evaluates; this module adds
what it lacks for a useful error — the line of the failing statement — and keeps one parsed
policy set, schema and (empty) entity set per policy.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError, require

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
    amount_cents: Long,
    has_amount: Bool,
  }
};
"""


@lru_cache(maxsize=1)
def _cedarpy() -> Any:
    return require("cedarpy", "guard")


@lru_cache(maxsize=1)
def _no_entities() -> Any:
    return _cedarpy().Entities.from_json_str("[]")


def authorize(compiled: Any, request: dict[str, Any]) -> bool:
    """Cedar's answer for one request against a compiled policy set.

    The policies were validated against :data:`CEDAR_SCHEMA` at load and the decision core
    builds the context with the schema's types, so the request is not re-validated here (that
    halves the cost of a decision).
    """
    return bool(_cedarpy().is_authorized(request, compiled, _no_entities()).allowed)


def statements(text: str) -> list[tuple[int, str]]:
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


def compile_cedar(text: str, path: Path) -> tuple[Any, Any]:
    cedarpy: Any = _cedarpy()

    schema = cedarpy.Schema.from_str(CEDAR_SCHEMA)
    stmts = statements(text)
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


__all__ = ["CEDAR_SCHEMA", "authorize", "compile_cedar", "statements"]
