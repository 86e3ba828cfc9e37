"""Reading the guard policy's TOML file: every key checked, errors named by file and line.

:mod:`tomllib` reports syntax errors with their line but gives parsed values no positions, so
the line of an invalid key or value is found again in the text (:func:`_line_of`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._policy_records import DEFAULT_CEILINGS, Identity, ToolSpec, parse_ceiling
from .types import Privilege, ProvenanceState

_GUARD_KEYS = {"cedar", "suspect_ceiling", "destinations", "learning_decisions"}
_IDENTITY_KEYS = {"key_sha256", "canaries", "description", "place_canaries"}
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


def parse_toml(data: dict[str, Any], text: str, path: Path) -> dict[str, Any]:
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
        raw = spec.get("key_sha256")
        keys = tuple(raw) if isinstance(raw, list) else (() if raw is None else (raw,))
        if (isinstance(raw, list) and not raw) or not all(
            isinstance(k, str) and _SHA256_HEX.match(k) for k in keys
        ):
            raise _err(
                path,
                text,
                tbl,
                "key_sha256",
                "expected 64 lower-case hex digits, or a list of them while a key is rotated "
                "(the SHA-256 of the API key; 'dormant guard key new' prints one)",
            )
        canaries = _strs(spec.get("canaries", []), path, text, tbl, "canaries")
        if any(len(c) < 8 for c in canaries):
            raise _err(path, text, tbl, "canaries", "a canary must be at least 8 characters")
        place = spec.get("place_canaries", False)
        if not isinstance(place, bool):
            raise _err(path, text, tbl, "place_canaries", "expected true or false")
        if place and not canaries:
            raise _err(path, text, tbl, "place_canaries", "true, but the identity has no canaries")
        identities[name] = Identity(
            name,
            keys[0] if keys else None,
            canaries,
            str(spec.get("description", "")),
            key_hashes=keys,
            place_canaries=place,
        )
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


__all__ = ["parse_toml"]
