"""``dormant registry list | show DIGEST | triggers``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from . import EXIT_OK, EXIT_USAGE, error


def register(root: Any, scan: Any) -> None:
    reg = root.add_parser(
        "registry",
        help="artifacts, provenance status, scans and triggers on record",
        description="Read the registry: SQLite in the user data directory by default "
        "($DORMANT_REGISTRY overrides), PostgreSQL by URL.",
    )
    sub = reg.add_subparsers(dest="action", metavar="ACTION")
    reg.set_defaults(func=lambda a: _help(reg))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--registry",
            metavar="URL",
            help="sqlite:///NAME (relative to the current directory), sqlite:////ABS/NAME "
            "(absolute), postgresql://..., or a file path; a read never creates a registry",
        )
        p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("list", help="artifacts on record with their provenance status")
    p.add_argument("--kind", help="only this kind (model, file, dataset ...)")
    p.add_argument("--limit", type=int, default=100)
    common(p)
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="one artifact: paths, provenance history, scans")
    p.add_argument("digest", help="sha256:<hex> or a unique prefix of the hex")
    common(p)
    p.set_defaults(func=_show)

    p = sub.add_parser("triggers", help="triggers found by recorded scans")
    p.add_argument("--min-severity", help="only triggers at or above this severity")
    common(p)
    p.set_defaults(func=_triggers)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _open(args: argparse.Namespace) -> Any:
    from ..registry import Registry

    return Registry.open(args.registry, create=False)


def _list(args: argparse.Namespace) -> int:
    with _open(args) as reg:
        rows = [
            (a, reg.provenance_status(a.digest))
            for a in reg.artifacts(kind=args.kind, limit=args.limit)
        ]
    if args.json:
        print(json.dumps([{**asdict(a), "status": s.status} for a, s in rows], indent=2))
        return EXIT_OK
    if not rows:
        print("the registry holds no artifact yet")
        return EXIT_OK
    for a, s in rows:
        print(f"{a.digest}  {s.status:10}  {a.kind:8}  {a.last_seen}  {a.path}")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    with _open(args) as reg:
        art = reg.artifact(args.digest)
        if art is None:
            error(f"no artifact with digest {args.digest!r} in {reg.display_url}")
            return EXIT_USAGE
        status = reg.provenance_status(art.digest)
        scans = reg.scans_for(art.digest)
    if args.json:
        out = {
            "artifact": asdict(art),
            "provenance": asdict(status),
            "scans": [{k: v for k, v in asdict(s).items() if k != "report"} for s in scans],
        }
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"{art.digest}\n  kind: {art.kind}\n  first seen: {art.first_seen}")
    print(f"  last seen: {art.last_seen}")
    for p in art.paths:
        print(f"  path: {p}")
    print(f"  provenance: {status.status}")
    for ev in status.history:
        who = f" by {ev.signer}" if ev.signer else ""
        detail = f" — {ev.detail}" if ev.detail else ""
        print(f"    {ev.at}  {ev.status}{who} ({ev.method}, run by {ev.actor}){detail}")
    print(f"  scans: {len(scans)}")
    for s in scans:
        print(
            f"    {s.recorded_at}  {s.max_severity or 'clean':8}  {s.findings} finding(s)  {s.id}"
        )
    return EXIT_OK


def _triggers(args: argparse.Namespace) -> int:
    with _open(args) as reg:
        trig = reg.known_triggers(min_severity=args.min_severity)
    if args.json:
        print(json.dumps([asdict(t) for t in trig], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not trig:
        print("no trigger on record")
    for t in trig:
        from ..triggers import describe_text

        target = f" -> {t.target}" if t.target else ""
        shown = describe_text(t.text)
        print(f"{t.max_severity:8}  {t.kind:9}  {shown!r}{target}  ({t.scans} scan(s))")
    return EXIT_OK
