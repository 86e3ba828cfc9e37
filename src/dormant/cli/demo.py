"""``dormant demo``: build poisoned example datasets, scan them, show where the reports are."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import Progress, progress_enabled, summarise


def register(root: Any, scan: Any) -> None:
    p = root.add_parser(
        "demo",
        help="run the built-in example: poison two datasets, scan them, write reports",
        description="Builds a labelled and an instruction dataset from the real-English sample "
        "shipped with dormant, plants a known trigger in each, scans both and compares the "
        "result with the ground truth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", "-o", default="dormant-demo", help="output directory")
    p.add_argument("--no-embed", action="store_true", help="statistical scan only")
    p.add_argument(
        "--scenario",
        action="append",
        choices=("support", "coding", "nhi", "rag", "all"),
        help="run one of the four cases end to end instead (data scan, model scan or probe, "
        "provenance, runtime guard) and write its story page; repeatable",
    )
    p.add_argument("--seed", type=int, default=0, help="with --scenario: trigger, data, training")
    p.add_argument("--cache-dir", help="with --scenario: where trained organisms are kept")
    p.add_argument("--embed", action="store_true", help="with --scenario: also embed the data")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None)
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scenario:
        from ._demo_scenarios import run_scenarios_cli

        return run_scenarios_cli(args)
    from ..scanners.base import ScanContext
    from ..scenarios.quickstart import run_demo

    progress = Progress(progress_enabled(args.progress))
    try:
        cases = run_demo(args.out, embed=not args.no_embed, context=ScanContext(progress=progress))
    finally:
        progress.close()
    for case in cases:
        t = case.truth
        print(f"== {case.name} dataset: {case.dataset}")
        print(
            f"   planted: {t.trigger.kind.value} trigger {t.trigger.display!r} -> {t.target} "
            f"in {len(t.poisoned_ids)} of {len(t.records)} records"
        )
        print(summarise(case.report, case.outputs))
        print(
            f"   against the ground truth: precision {case.precision:.2f}, recall "
            f"{case.recall:.2f}, trigger recovered: {'yes' if case.recovered else 'no'}"
        )
    return 0
