"""Scanners by name: the built-in families are imported here, so that they register themselves.

Discovery sits above :mod:`dormant.scanners.base` (which the families import), not in it, so the
import graph has no cycle.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import REGISTRY, Scanner


def get_scanner(name: str, **params: Any) -> Scanner:
    """Instantiate a registered scanner by name."""
    _load_builtin()
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"Unknown scanner {name!r}; registered: {', '.join(sorted(REGISTRY))}."
        ) from None
    return cls(**params)


def _load_builtin() -> None:
    """Import the built-in scanner modules so they register themselves."""
    from . import (
        agent,  # noqa: F401
        data,  # noqa: F401
        model,  # noqa: F401
    )
