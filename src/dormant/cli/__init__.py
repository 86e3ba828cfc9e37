"""The ``dormant`` command line. The only part of the package that prints.

Exit codes (documented in the README; CI pipelines rely on them):

====  ==========================================================================
0     ran; no finding at or above ``--fail-on``
1     ran; at least one finding at or above ``--fail-on``
2     usage error or bad input (missing file, malformed data, bad option value)
3     a scanner failed (the report lists it under ``errors``), or the registry does not
      answer or does not exist (checked before a scan starts)
4     verification failed (provenance: signature or manifest does not verify)
70    internal error: a defect in dormant (not in the input); the message says how to report
      it; ``--debug`` (before the subcommand) shows the traceback
130   interrupted (SIGINT or SIGTERM)
====  ==========================================================================

Subcommands live in sibling modules; each has ``register(root, scan)`` that adds its parsers
to the root sub-parsers and to the ``scan`` group, setting ``func`` to a handler that returns an
exit code.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import (
    ConfigError,
    DormantError,
    InputError,
    MissingDependencyError,
    VerificationError,
)

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_SCAN_ERROR = 3
EXIT_VERIFY = 4
EXIT_INTERNAL = 70  # EX_SOFTWARE of sysexits.h: an unexpected exception, never "findings"
EXIT_INTERRUPTED = 130

#: Modules that add subcommands; a missing module is skipped (optional parts).
SUBCOMMAND_MODULES = (
    "dormant.cli.data",
    "dormant.cli.corpus",
    "dormant.cli.demo",
    "dormant.cli.model",
    "dormant.cli.probe",
    "dormant.cli.serve",
    "dormant.cli.provenance",
    "dormant.cli.registry",
    "dormant.cli.guard",
    "dormant.cli.fleet",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dormant",
        description="Find, prove and contain backdoor triggers in machine-learning systems.",
        epilog="Exit codes: 0 clean, 1 findings at/above --fail-on, 2 bad input or usage, "
        "3 a scanner failed, 4 verification failed, 70 internal error (a defect in dormant), "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"dormant {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an internal error (exit 70) instead of a one-line message",
    )
    root = parser.add_subparsers(dest="command", metavar="COMMAND")
    scan = root.add_parser("scan", help="scan data, a model or an artifact for backdoors")
    scan_sub = scan.add_subparsers(dest="subject", metavar="SUBJECT")
    scan.set_defaults(func=lambda a: _usage(scan))
    register_modules(SUBCOMMAND_MODULES, root, scan_sub)
    parser.set_defaults(func=lambda a: _usage(parser))
    return parser


def register_modules(names: Sequence[str], *parsers: Any) -> None:
    """Call ``register(*parsers)`` of each module in ``names``; a module not there is skipped."""
    for name in names:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(*parsers)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def error(msg: str) -> None:
    """Print a one-line error to stderr."""
    print(f"dormant: error: {msg}", file=sys.stderr)


def warning(msg: str) -> None:
    """Print a one-line warning to stderr."""
    print(f"dormant: warning: {msg}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dormant`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = _on_sigterm_interrupt()
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        error("interrupted; no output was left looking complete")
        return EXIT_INTERRUPTED
    except VerificationError as exc:
        error(str(exc))
        return EXIT_VERIFY
    except (InputError, ConfigError, MissingDependencyError) as exc:
        error(str(exc))
        return EXIT_USAGE
    except DormantError as exc:
        error(str(exc))
        return EXIT_SCAN_ERROR
    except Exception as exc:  # the catch-all: a defect must never read as "findings" (1)
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc(file=sys.stderr)
        error(
            f"internal error ({type(exc).__name__}: {_short(str(exc))}). This is a defect in "
            f"dormant {__version__}, not in your input: please report it with the command you "
            "ran and the output of 'dormant --debug ...' (which shows the traceback)."
        )
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _on_sigterm_interrupt() -> Any:
    """Make SIGTERM behave as Ctrl+C (its cleanup runs); returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run() -> None:
    """Console-script wrapper: exit with ``main``'s code."""
    sys.exit(main())
