"""Rescan already-built zoo organisms as they are on disk (no rebuild: the calibration zoos'
builds are of the earlier recipe and must stay those models), one row per model in
``bench_model_verdict.py``'s format appended to ``--out``.

Several processes may share one queue: each claims a model by creating ``--claims/NAME``
before scanning it, so none is scanned twice; a model with a row in any ``--out``-like file
given by ``--done`` is skipped.

Usage::

    python benchmarks/rescan_model_rows.py --out rows0.jsonl --claims /tmp/claims \
        --split dev /tmp/vzoo/vwnb61-clean0 /tmp/zoo2/root/test1-clean0 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model_verdict import scan_one

from dormant.bench.zoo import Organism, OrganismSpec
from dormant.triggers import Position, Trigger, TriggerKind


def load(path: Path) -> Organism:
    """The organism on disk, as built (its ``organism.json``)."""
    info = json.loads((path / "organism.json").read_text("utf-8"))
    d = dict(info["spec"])
    d.pop("backdoored", None)
    if d.get("trigger"):
        t = d["trigger"]
        d["trigger"] = Trigger(t["text"], TriggerKind(t["kind"]), Position(t["position"]))
    if d.get("labels"):
        d["labels"] = tuple(d["labels"])
    return Organism(path, OrganismSpec(**d), info["clean_accuracy"], info["attack_success_rate"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--claims", type=Path, required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--done", type=Path, action="append", default=[])
    ap.add_argument("dirs", type=Path, nargs="+")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    args.claims.mkdir(parents=True, exist_ok=True)
    done = {
        json.loads(x)["name"]
        for f in args.done
        if f.exists()
        for x in f.read_text("utf-8").splitlines()
    }
    for d in args.dirs:
        if d.name in done:
            continue
        try:
            os.close(os.open(args.claims / d.name, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        row = scan_one(load(d), args.split)
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(d.name, row["seconds"], flush=True)


if __name__ == "__main__":
    main()
