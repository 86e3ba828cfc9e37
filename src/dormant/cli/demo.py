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
    )
    p.add_argument(
        "--out", "-o", default="dormant-demo", help="output directory (default: %(default)s)"
    )
    p.add_argument(
        "--embed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="embed the data with the sentence encoder (representation scanners, the "
        "natural-neighbour test); --no-embed runs the statistical scan only (default: on for "
        "the example datasets, off with --scenario, where it adds minutes)",
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=("support", "coding", "nhi", "rag", "all"),
        help="run one of the four cases end to end instead (data scan, model scan or probe, "
        "provenance, runtime guard) and write its story page; repeatable",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="with --scenario: the seed that draws the trigger, the data and the training "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--cache-dir",
        help="with --scenario: where trained organisms are kept and reused (default: "
        "$DORMANT_CACHE/scenarios, else ~/.cache/dormant/scenarios)",
    )
    prog = p.add_mutually_exclusive_group()
    prog.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="report progress on stderr (default: only when stderr is a terminal)",
    )
    prog.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never report progress"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scenario:
        from ._demo_scenarios import run_scenarios_cli

        return run_scenarios_cli(args)
    from ..scanners.base import ScanContext
    from ..scenarios.quickstart import run_demo

    progress = Progress(progress_enabled(args.progress))
    try:
        embed = args.embed is not False
        cases = run_demo(args.out, embed=embed, context=ScanContext(progress=progress))
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
