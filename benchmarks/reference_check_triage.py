"""Which stored positive verdicts could the task-explained check change?

The check (:mod:`dormant.scanners.model._reference`) runs only on positive verdicts (p >= 0.5)
and leaves a label out only when *every* trigger shown for it moves a clean reference classifier
of the task at least half as often as it moves the model. This script rebuilds, for each stored
positive row of ``--rows`` (no model needed: the zoo's clean data is regenerated from its spec),
the reference the scan would fit and measures its flip rate with the row's proof trigger and the
target label's position-robust trigger, stamped at the start and at the end of the held-out
inputs it classifies right. The model's flip rate pooled over both ends is at least half its
stored one-position flip rate, so a row whose triggers all stay below a quarter of the stored
flip rate cannot be changed by the check; any other row is marked ``rescan``.

Usage::

    python benchmarks/reference_check_triage.py > benchmarks/results/reference_check_triage.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np

from dormant.bench.zoo import LEXNAMES, load_glosses, zoo_specs
from dormant.scanners.model._reference import Reference
from dormant.scanners.model.decision import probability
from dormant.triggers import Position, Trigger, TriggerKind

RESULTS = Path(__file__).resolve().parent / "results"
#: the zoo splits of bench_model_scan.py: (seed, prefix, clean models, size)
SPLITS = [
    (7, "cal", 6, {}),
    (11, "dev", 6, {}),
    (1, "test", 10, {}),
    (13, "hold", 6, {}),
    (17, "fresh", 6, {}),
    (3, "big", 4, {"layers": 6, "hidden": 256}),
    (5, "minilm", 2, {"arch": "minilm", "n_train": 2000, "epochs": 2}),
]


def _text(display: str) -> str:
    """A trigger's text from its display form (``<U+200B>`` back to the character)."""
    return re.sub(r"<U\+([0-9A-F]{4,6})>", lambda m: chr(int(m.group(1), 16)), display)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--rows",
        type=Path,
        action="append",
        default=[RESULTS / "model_scan.jsonl", RESULTS / "model_scan_large.jsonl"],
    )
    args = ap.parse_args()
    specs = {
        s.name: s
        for seed, prefix, n, size in SPLITS
        for s in zoo_specs(n_clean=n, seed=seed, prefix=prefix, **size)
    }
    labels = sorted(LEXNAMES.values())
    for f in args.rows:
        for line in f.read_text("utf-8").splitlines():
            r = json.loads(line)
            p = probability(r["features"], "whitebox")
            if p < 0.5:
                continue
            spec = specs[r["name"]]
            per_label = (spec.n_train + 400) // len(LEXNAMES) + 1
            records = load_glosses(per_label=per_label, seed=spec.seed)[spec.n_train :]
            lab = dict(records)
            texts = [t for t, _ in records]
            random.Random(0).shuffle(texts)  # as split_clean(seed=0)
            half = len(texts) // 2
            opt, held = texts[:half], texts[half:][:300]
            ref = Reference.fit(opt, [lab[t] for t in opt], labels, (held, [lab[t] for t in held]))
            assert not isinstance(ref, str), ref
            tgt = r["pred_target"]
            pred = ref.predict(held)
            keep = [t for t, y in zip(held, pred, strict=True) if lab[t] != tgt and y == lab[t]]
            flips = []
            for trig in dict.fromkeys([r["pred_trigger"], r["label_robust"].get(tgt)]):
                if not trig:
                    continue
                rng = random.Random(0)
                stamped = [
                    Trigger(_text(trig), TriggerKind.PHRASE, pos).insert(t, rng=rng)
                    for pos in (Position.START, Position.END)
                    for t in keep
                ]
                flips.append([trig, round(float(np.mean(ref.predict(stamped) == tgt)), 3)])
            stored = float(r["pred_flip_rate"])
            row = {
                "name": r["name"],
                "split": r["split"],
                "backdoored": r["backdoored"],
                "p": round(p, 3),
                "target": tgt,
                "stored_flip_rate": stored,
                "reference_accuracy": round(ref.accuracy, 3),
                "reference_flip_rates": flips,
                "rescan": all(fr >= 0.25 * stored for _, fr in flips),
            }
            print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
