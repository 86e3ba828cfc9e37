"""``dormant guard …``: the runtime guard's commands.

Each face of the guard adds its own subcommands from a sibling module with
``register(guard_sub)`` (``_guard_serve`` — the OpenAI-compatible proxy; ``_guard_mcp`` — the
MCP gateway; ``_guard_admin`` — approvals, audit verification, reports), so the parts can be
read and changed one at a time. A module that is not there is skipped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

GUARD_MODULES = (
    "dormant.cli._guard_serve",
    "dormant.cli._guard_mcp",
    "dormant.cli._guard_admin",
    "dormant.cli._guard_classify",
)


def register(root: Any, scan: Any) -> None:
    """Add ``dormant guard`` and its subcommands."""
    del scan
    guard = root.add_parser(
        "guard",
        help="contain triggered behaviour at run time: proxy, MCP gateway, approvals, audit",
        description="The runtime guard: least-privilege, provenance-gated tool access for agents.",
    )
    sub = guard.add_subparsers(dest="guard_command", metavar="COMMAND")
    guard.set_defaults(func=lambda a: _usage(guard))
    from . import register_modules

    register_modules(GUARD_MODULES, sub)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
