"""Where the memory of a ``scan data --no-embed`` goes, stage by stage (benchmark helper).

Runs trigger mining on one labelled JSONL dataset (as ``scan data --no-embed`` configures it)
in this process, and reports for each stage of :meth:`TriggerMiner.scan` the peak resident set
reached inside it (VmHWM, reset between stages through ``/proc/self/clear_refs``) and, with
``--trace``, the top allocators by source line from :mod:`tracemalloc` snapshots taken inside
the stages at the point where their working state is largest (after the second pass has
collected every row, at the end of the grouping, at the context test's first AUC).

Usage::

    PYTHONPATH=src python benchmarks/profile_data_memory.py /tmp/ddisk/n100000 --trace \\
        --out benchmarks/results/data_memory_100k.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

STAGES = (
    ("_count", "count"),
    ("_second_pass", "second pass"),
    ("group_candidates", "grouping"),
    ("content_inconsistency", "content test"),
    ("context_fit", "context test"),
    ("explain_groups", "explain"),
    ("clean_label_tests", "clean-label test"),
    ("mined_result", "result"),
    ("_fuse", "fusion"),
    ("write_outputs", "written files"),
)


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    # not Linux, or not allowed: the peaks are then cumulative
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--trace", action="store_true", help="tracemalloc snapshots (slower)")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument(
        "--work", default=None, help="a working directory, as `dormant scan data` gives one"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from dormant import outputs
    from dormant.scanners.data import _mining_context, _mining_explain, fusion, mining
    from dormant.scanners.data.fusion import scan_dataset
    from dormant.subjects import TextDataset

    stages: list[dict[str, Any]] = []
    snaps: dict[str, list[dict[str, Any]]] = {}

    def snapshot(label: str) -> None:
        if not args.trace or label in snaps:
            return
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        snaps[label] = [
            {
                "where": f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}",
                "mb": round(s.size / 2**20, 1),
                "blocks": s.count,
            }
            for s in snap.statistics("lineno")[: args.top]
        ]

    def staged(owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def wrapper(*a: Any, **k: Any) -> Any:
            _reset_peak()
            t0 = time.process_time()
            out = fn(*a, **k)
            traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.trace else None
            stages.append(
                {
                    "stage": label,
                    "peak_rss_mb": round(_status("VmHWM"), 1),
                    "rss_after_mb": round(_status("VmRSS"), 1),
                    "anon_after_mb": round(_status("RssAnon"), 1),
                    "file_after_mb": round(_status("RssFile"), 1),
                    "traced_peak_mb": None if traced is None else round(traced, 1),
                    "cpu_s": round(time.process_time() - t0, 1),
                }
            )
            if args.trace:
                snapshot(f"after {label}")
                tracemalloc.reset_peak()
            return out

        setattr(owner, attr, wrapper)

    def inside(owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def wrapper(*a: Any, **k: Any) -> Any:
            snapshot(label)
            return fn(*a, **k)

        setattr(owner, attr, wrapper)

    owners = {"_fuse": fusion, "write_outputs": outputs}
    for attr, label in STAGES:
        owner = owners.get(attr) or (mining.TriggerMiner if attr.startswith("_") else mining)
        staged(owner, attr, label)
    inside(mining, "_extend", "inside second pass (every row collected)")
    inside(_mining_explain, "_length", "inside grouping (its index built)")
    inside(_mining_context, "_nb_auc", "inside context test (records read)")

    if args.trace:
        tracemalloc.start(1)
    ds = TextDataset(args.data, text_field="text", label_field="label", id_field="id")
    t0 = time.process_time()
    work = None
    if args.work:
        from dormant.scanners.data._scan_work import ScanWork

        work = ScanWork(Path(args.work))
    rep = scan_dataset(ds, scanners=["trigger-mining"], embed=False, work=work)
    if args.work:  # the files `dormant scan data --no-embed --formats json,scores` writes
        outputs.write_outputs(rep, ds, Path(args.work) / "out", formats=("json", "scores"))
    row = {
        "data": args.data,
        "records": rep.summary()["records"] if hasattr(rep, "summary") else None,
        "findings": len(rep.findings),
        "cpu_s": round(time.process_time() - t0, 1),
        "stages": stages,
        "top": snaps,
        "pid": os.getpid(),
    }
    text = json.dumps(row, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
