"""The guard policy's records: privilege order and ceilings, tool specs and identities.

They sit below :mod:`dormant.guard.policy` so that the TOML reader
(:mod:`dormant.guard._policy_toml`) builds them without importing the policy that imports it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

from ..errors import ConfigError
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
        """Whether ``path`` matches a path glob (``..`` segments and NUL are never allowed).

        Globs follow the shell: ``*`` and ``?`` stay within one path segment, ``**`` crosses
        segments (``/srv/kb/*`` allows ``/srv/kb/a.txt``, not ``/srv/kb/sub/a.txt``).
        """
        if self.paths is None:
            return True
        if "\0" in path or ".." in PurePosixPath(path.replace("\\", "/")).parts:
            return False
        return any(_glob(g).match(path) for g in self.paths)


@dataclass(frozen=True)
class Identity:
    """An agent identity: the SHA-256 of its API key and the canaries placed in its context."""

    name: str
    key_sha256: str | None = None
    canaries: tuple[str, ...] = ()
    description: str = ""
    #: Every accepted key hash (more than one while a key is rotated); the first is
    #: ``key_sha256``.
    key_hashes: tuple[str, ...] = ()
    #: The proxy places ``canaries`` in a system message of every request this identity sends
    #: upstream (``place_canaries = true``); otherwise the operator places them.
    place_canaries: bool = False


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: ``**`` any depth, ``*`` / ``?`` inside one segment."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")
