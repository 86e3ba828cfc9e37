"""Held-out check of the junction test: this tree against a baseline tree, same files, alternated.

For each seed of the corpus kept aside (manual pages by section,
:data:`_verdict_corpora.HELD_OUT`), the clean dataset, the clean-label kinds (token, phrase,
log token) at 3 % and every dirty-label kind at 3 % are written once and scanned by trigger
mining of both trees, each in a fresh process (``PYTHONPATH`` set to its ``src``), one after
the other; ``--clean-sets`` adds fresh samples (seed 5) of the calibration corpora as clean
datasets. Recorded per case and tree (the rows of ``bench_data_verdicts.py``): F1 of the
quarantined records, top-1 recovery, findings at medium or above that are not the planted
trigger, and the planted trigger's own findings (severity, ``P(planted)``, junction ``z``).
``--cases`` scans development cases of the calibration corpora instead (e.g.
``wordnet-topic:token:0.03:clean:31``), to show what a change does where it was developed.
``--embed`` turns the natural-neighbour test (the encoder) on in both trees; without it the
scan is the statistical pass alone (``neighbour_test=False``), about a hundred times faster.

Usage::

    python benchmarks/bench_junction_heldout.py --seeds 4,5 --baseline /path/to/main/src \\
        --clean-sets --out benchmarks/results/junction_heldout.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_data_verdicts as bdv  # noqa: E402
from _verdict_corpora import (  # noqa: E402
    CALIBRATION_CORPORA,
    CLEAN_KINDS,
    HELD_OUT,
    KINDS,
    corpus_records,
    poison,
)

from dormant.bench.poison import write_dataset  # noqa: E402

SCAN = r"""
import json, sys
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset
if sys.argv[3] == "instruction":
    ds = TextDataset(sys.argv[1], prompt_field="prompt", response_field="response", id_field="id")
else:
    ds = TextDataset(sys.argv[1], text_field="text", label_field="label", id_field="id")
res = TriggerMiner(neighbour_test=sys.argv[2] == "1").scan(ds)
ev = lambda f, k: next((e.value for e in f.evidence if e.name == k), None)
print(json.dumps({"flags": [int(i) for i, f in enumerate(res.record_flags) if f],
  "findings": [{"severity": f.severity.value, "trigger": f.trigger.text if f.trigger else None,
    "record_ids": list(f.locator.record_ids), "p": ev(f, "p_planted"),
    "jz": ev(f, "junction_z")} for f in res.findings]}))
"""


def scan(src: str, path: Path, embed: bool, kind: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", SCAN, str(path), "1" if embed else "0", kind],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="", help="held-out seeds, e.g. 4,5")
    ap.add_argument(
        "--cases",
        default="",
        help="development cases instead, corpus:kind:rate:clean|dirty:seed, comma-separated "
        "(never the held-out corpus)",
    )
    ap.add_argument("--baseline", required=True, help="src directory of the baseline tree")
    ap.add_argument("--out", required=True)
    ap.add_argument("--clean-sets", action="store_true")
    ap.add_argument("--embed", action="store_true")
    ap.add_argument("--only", default=None, help="cases as kind/clean|dirty, comma-separated")
    args = ap.parse_args()
    trees = {"baseline": args.baseline, "this tree": str(HERE.parent / "src")}
    jobs: list[tuple[str, int, str, float, bool]] = []
    for spec in filter(None, args.cases.split(",")):
        corpus, kind, rate, cl, seed = spec.split(":")
        if corpus == HELD_OUT:
            ap.error(f"--cases: {HELD_OUT} is kept aside; use --seeds for it")
        jobs.append((corpus, int(seed), kind, float(rate), cl == "clean"))
    for seed in (int(s) for s in args.seeds.split(",") if s):
        jobs.append((HELD_OUT, seed, "none", 0.0, False))
        jobs += [(HELD_OUT, seed, k, 0.03, True) for k in CLEAN_KINDS]
        jobs += [(HELD_OUT, seed, k, 0.03, False) for k in KINDS]
    if args.clean_sets:
        jobs += [(c, bdv.CLEAN_SEED, "none", 0.0, False) for c in CALIBRATION_CORPORA]
    if args.only:
        keep = set(args.only.split(","))
        jobs = [j for j in jobs if f"{j[2]}/{'clean' if j[4] else 'dirty'}" in keep]
    out = Path(args.out)
    res: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory() as d:
        for corpus, seed, kind, rate, clean in jobs:
            key = f"{corpus}/{seed}/{kind}/{rate}/{'clean' if clean else 'dirty'}"
            if key in res:
                continue
            pd = poison(corpus_records(corpus, n=3000, seed=seed), kind, rate, clean, seed)
            recs = pd.records if pd else corpus_records(corpus, n=3000, seed=seed)
            path = write_dataset(recs, Path(d) / "data.jsonl")
            row: dict[str, Any] = {}
            for tree, src in trees.items():
                t0 = time.perf_counter()
                kind = "instruction" if "prompt" in recs[0] else "labelled"
                o = scan(src, path, args.embed, kind)
                r = bdv._row("main", recs, pd, o)
                r["seconds"] = round(time.perf_counter() - t0, 1)
                if pd:
                    r["trigger_findings"] = [
                        (x["trigger"], x["severity"], x["p"], x["jz"])
                        for x in o["findings"]
                        if x["trigger"] and pd.trigger_matches(x["trigger"])
                    ][:3]
                row[tree] = r
            res[key] = row
            out.write_text(json.dumps(res, indent=1))
            print(
                key,
                {
                    t: (r["f1"], r["recovered"], r["non_trigger_medium_plus"])
                    for t, r in row.items()
                },
                flush=True,
            )


if __name__ == "__main__":
    main()
