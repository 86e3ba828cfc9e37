"""``dormant demo --scenario NAME``: the four cases end to end, printed one stage a line."""

from __future__ import annotations

import argparse
import sys

from . import EXIT_FINDINGS, EXIT_OK
from ._common import check_out_dir


def run_scenarios_cli(args: argparse.Namespace) -> int:
    """Run the chosen scenarios; exit 1 when any stage of any scenario missed the trigger."""
    from ..scenarios import SCENARIOS, run_scenarios
    from ..scenarios.runner import check_names

    names = check_names(args.scenario, SCENARIOS)
    out = check_out_dir(args.out)
    quiet = args.progress is False or (args.progress is None and not sys.stderr.isatty())

    def say(msg: str) -> None:
        if not quiet:
            print(f"   ... {msg}", file=sys.stderr, flush=True)

    results = run_scenarios(
        names,
        out,
        cache_dir=args.cache_dir,
        seed=args.seed,
        embed=args.embed is True,
        progress=say,
    )
    for r in results:
        print(f"== {r.name}: {r.title}")
        if r.build_error:
            print(f"   the organism could not be built: {r.build_error}")
        else:
            print(
                f"   trigger {r.trigger_display!r} -> {r.behaviour} "
                f"(built in {r.build_seconds:.0f} s)"
            )
        for s in r.stages:
            mark = "caught" if s.caught else "MISSED"
            print(f"   {s.title:<24} {mark:<7} {s.seconds:7.1f} s  {s.summary}")
            if s.error:
                print(f"   {'':<24} error: {s.error}")
        print(f"   story: {r.out_dir / 'story.html'}")
    caught = all(r.caught for r in results)
    print(
        f"summary: {out / 'summary.json'}  "
        f"({'every stage caught it' if caught else 'a stage missed'})"
    )
    return EXIT_OK if caught else EXIT_FINDINGS
