"""Benchmark of the data-scan verdicts on the corpus kept aside, with main's scan as baseline.

The held-out corpus (manual pages by section, :data:`_verdict_corpora.HELD_OUT`) was never used
to fit or tune the verdict. For each seed, every trigger kind is planted dirty-label at 0.5, 1
and 3% and the clean-label kinds (token, phrase, log token) at 3%, and the clean datasets are
scanned: the held-out corpus and fresh samples (another seed than calibration's) of the
calibration corpora, the Debian package descriptions among them. Each dataset is scanned by
trigger mining (statistical pass, as ``--no-embed``) of

- ``new``: this tree, with the calibrated ``P(planted)`` and the FDR quarantine (``fdr=0.05``);
- ``main``: the installed ``dormant`` (``/work/main``), in a subprocess on the same file — the
  baseline, in the same run;
- ``before``: this tree with the natural-neighbour test turned off (``neighbour_test=False``):
  the verdict as it was before that test, the baseline of the test's own rows.

``--full-packages`` adds the whole clean Debian package-description set (about 63,000
one-line descriptions, every section) as one more clean dataset.

Recorded per case: precision / recall / F1 of the quarantined (flagged) records, top-1 trigger
recovery, findings at medium or above that are not the planted trigger, and — for ``new`` —
every described candidate's ``P(planted)`` with its truth, for the reliability table and the
expected calibration error (ECE, 10 equal-width bins; Naeini et al., AAAI 2015).

Usage::

    python benchmarks/bench_data_verdicts.py --which main \
        --out benchmarks/results/verdicts_main.json
    python benchmarks/bench_data_verdicts.py --which new \
        --out benchmarks/results/verdicts_new.json

    python benchmarks/table_data_verdicts.py benchmarks/results/verdicts_{main,new}.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _verdict_corpora import CALIBRATION_CORPORA, HELD_OUT, corpus_records, grid, poison

from dormant.bench.poison import write_dataset

MAIN_SRC = "/work/main/src"
CLEAN_SEED = 5  # calibration sampled its corpora with seed 0

_MAIN_SCAN = r"""
import json, sys
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset
if sys.argv[2] == "instruction":
    ds = TextDataset(sys.argv[1], prompt_field="prompt", response_field="response", id_field="id")
else:
    ds = TextDataset(sys.argv[1], text_field="text", label_field="label", id_field="id")
res = TriggerMiner().scan(ds)
print(json.dumps({
    "flags": [int(i) for i, f in enumerate(res.record_flags) if f],
    "findings": [
        {"severity": f.severity.value, "trigger": f.trigger.text if f.trigger else None,
         "record_ids": list(f.locator.record_ids), "p": None}
        for f in res.findings
    ],
}))
"""


def full_packages() -> list[dict[str, Any]]:
    """Every one-line Debian package description on the machine, labelled by section."""
    from dormant.bench.corpus import labelled_dataset, load_corpus

    recs = labelled_dataset(list(load_corpus("packages", seed=7)), scheme="topic")
    return [
        {"id": f"pkg-{i:06d}", "text": r["text"], "label": r["label"]} for i, r in enumerate(recs)
    ]


def prf(flagged: set[str], truth: frozenset[str]) -> tuple[float, float, float]:
    tp = len(flagged & truth)
    p = tp / len(flagged) if flagged else (1.0 if not truth else 0.0)
    r = tp / len(truth) if truth else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _dataset(path: Path, kind: str) -> Any:
    from dormant.subjects import TextDataset

    if kind == "instruction":
        return TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    return TextDataset(path, text_field="text", label_field="label", id_field="id")


def _summary(res: Any, candidates: list[Any]) -> dict[str, Any]:
    return {
        "flags": [int(i) for i, f in enumerate(res.record_flags) if f],
        "findings": [
            {
                "severity": f.severity.value,
                "trigger": f.trigger.text if f.trigger else None,
                "record_ids": list(f.locator.record_ids),
                "p": next((e.value for e in f.evidence if e.name == "p_planted"), None),
            }
            for f in res.findings
        ],
        "candidates": [(m.probability, [int(r) for r in m.rows]) for m in candidates],
    }


def scan_new(path: Path, kind: str, *, neighbour_test: bool = True) -> dict[str, Any]:
    """This tree's scan; with the natural-neighbour test it also returns, under ``before``,
    the scan as it would be without it (the same groups with ``P(planted)`` before the test:
    the verdict model is deterministic, so this equals a second scan with the test off)."""
    from dataclasses import replace

    from dormant.scanners.data._mining_features import _merge_targets
    from dormant.scanners.data.mining import TriggerMiner

    ds = _dataset(path, kind)
    miner = TriggerMiner(fdr=0.05, neighbour_test=neighbour_test)
    res = miner.scan(ds)
    out = _summary(res, miner.candidates_)
    if neighbour_test:
        prior = [
            m
            if m.prior_probability is None
            else replace(
                m,
                probability=m.prior_probability,
                score=m.prior_probability,
                verdict="planted",
                neighbours=None,
                prior_probability=None,
                clean_label=None,
                junction=None,
                copies=False,
            )
            for m in miner.candidates_
        ]
        mined = miner._decide(_merge_targets([m for m in prior if m.verdict != "none"]))
        before = miner._result(ds, mined, miner.n_records_, kind == "labelled")
        out["before"] = _summary(before, prior)
        out["tested"] = [
            (
                m.trigger.display,
                round(m.prior_probability, 4),
                round(m.probability, 4),
                round(m.neighbours[0], 2),
                m.neighbours[2],
            )
            for m in miner.candidates_
            if m.neighbours is not None and m.prior_probability is not None
        ]
    return out


def scan_main(path: Path, kind: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": MAIN_SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN_SCAN, str(path), kind],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=1800,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one(which: str, records: list[dict], pd: Any, tmp: Path) -> dict[str, Any]:
    path = write_dataset(records, tmp / "data.jsonl")
    t0 = time.perf_counter()
    kind = "instruction" if "prompt" in records[0] else "labelled"
    if which == "main":
        out = scan_main(path, kind)
    else:
        out = scan_new(path, kind, neighbour_test=which == "new")
    secs = time.perf_counter() - t0
    row = _row(which, records, pd, out)
    row["seconds"] = round(secs, 2)
    if "before" in out:
        row["before"] = _row(which, records, pd, out["before"])
        row["tested"] = out["tested"]
    return row


def _row(which: str, records: list[dict], pd: Any, out: dict[str, Any]) -> dict[str, Any]:
    ids = [r["id"] for r in records]
    truth = pd.poisoned_ids if pd else frozenset()
    flagged = {ids[i] for i in out["flags"]}
    p, r, f = prf(flagged, truth)
    medium_plus = [x for x in out["findings"] if x["severity"] in ("medium", "high", "critical")]
    false_medium = [
        x
        for x in medium_plus
        if sum(i in truth for i in x["record_ids"]) < 0.5 * max(len(x["record_ids"]), 1)
    ]
    top = next((x for x in out["findings"] if x["severity"] != "info" and x["trigger"]), None)
    row = {
        "records": len(records),
        "poisoned": len(truth),
        "trigger": pd.trigger.display if pd else None,
        "flagged": len(flagged),
        "precision": p,
        "recall": r,
        "f1": f,
        "recovered": bool(pd and top and pd.trigger_matches(top["trigger"])),
        "top_trigger": top["trigger"] if top else None,
        "top_p": top["p"] if top else None,
        "non_trigger_medium_plus": len(false_medium),
        "non_trigger_examples": [x["trigger"] for x in false_medium[:5]],
        "high_plus": sum(x["severity"] in ("high", "critical") for x in out["findings"]),
    }
    if which != "main":
        row["calibration"] = [
            (round(prob, 4), int(sum(ids[i] in truth for i in rows) >= 0.5 * len(rows)))
            for prob, rows in out["candidates"]
        ]
    return row


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--which", choices=("new", "before", "main"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--full-packages", action="store_true")
    ap.add_argument("--only-seed", type=int, default=None, help="held-out grid of one seed")
    ap.add_argument("--no-clean-sets", action="store_true")
    ap.add_argument("--rates", default=None, help="dirty-label rates to keep, e.g. 0.005,0.03")
    ap.add_argument("--clean-first", action="store_true", help="clean sets and clean-label first")
    ap.add_argument("--shard", default="0/1", help="i/k: run every k-th case from the i-th")
    args = ap.parse_args()
    out = Path(args.out)
    res: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    res.setdefault("cases", {})
    res["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}"
    )
    res["which"] = args.which
    jobs: list[tuple[str, str, int, str, float, bool]] = []
    for seed in range(args.seeds):
        if args.only_seed is not None and seed != args.only_seed:
            continue
        for kind, rate, clean in grid():
            if args.rates and not clean and rate and str(rate) not in args.rates.split(","):
                continue
            jobs.append(
                (
                    f"{HELD_OUT}/{seed}/{kind}/{rate}/{'clean' if clean else 'dirty'}",
                    HELD_OUT,
                    seed,
                    kind,
                    rate,
                    clean,
                )
            )
    for corpus in () if args.no_clean_sets else CALIBRATION_CORPORA:
        jobs.append(
            (f"{corpus}/{CLEAN_SEED}/none/0.0/dirty", corpus, CLEAN_SEED, "none", 0.0, False)
        )
    if args.full_packages:
        jobs.append(("packages-full/0/none/0.0/dirty", "packages-full", 0, "none", 0.0, False))
    if args.clean_first:
        # the clean sets, then clean-label poisoning, then the highest rate first
        jobs.sort(key=lambda j: (j[3] != "none", not j[5], -j[4]))
    i_sh, k_sh = (int(v) for v in args.shard.split("/"))
    jobs = jobs[i_sh::k_sh]
    with tempfile.TemporaryDirectory() as d:
        for key, corpus, seed, kind, rate, clean in jobs:
            if key in res["cases"]:
                continue
            if corpus == "packages-full":
                base = full_packages()
            else:
                base = corpus_records(corpus, n=args.n, seed=seed)
            pd = poison(base, kind, rate, clean, seed)
            row = one(args.which, pd.records if pd else base, pd, Path(d))
            res["cases"][key] = row
            out.write_text(json.dumps(res, indent=1))
            print(
                key,
                {k: row[k] for k in ("f1", "recovered", "non_trigger_medium_plus", "seconds")},
                flush=True,
            )


if __name__ == "__main__":
    main()
