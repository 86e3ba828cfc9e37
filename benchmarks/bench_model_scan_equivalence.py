"""Before/after check of a white-box model-scan refactor: same findings on the same organisms.

Two tiny zoo organisms (a rare-word ``cf`` -> plant and a phrase ``blue lagoon`` -> animal
backdoor) are built once under ``--root`` and scanned by the white-box method under settings
that reach every search helper: the exhaustive one-token screen (the default), the
first-order HotFlip screen (``exhaustive_budget=0``), and two-token GCG and DBS searches. Each
side runs in its own process with ``PYTHONPATH`` on its own ``src``; ``--compare`` then checks
that findings and report sections are identical (every field, scores to the last bit; only
the measured seconds are left out). A count, not a speed.

Usage::

    git archive main src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src python benchmarks/bench_model_scan_equivalence.py \\
        --root /tmp/zoo --dump /tmp/before.json
    PYTHONPATH=src python benchmarks/bench_model_scan_equivalence.py \\
        --root /tmp/zoo --dump /tmp/after.json
    python benchmarks/bench_model_scan_equivalence.py --compare /tmp/before.json /tmp/after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TINY = {"layers": 2, "hidden": 64, "n_train": 1200, "epochs": 4}
CONFIGS: dict[str, dict[str, Any]] = {
    "exhaustive": {},
    "first-order": {"exhaustive_budget": 0.0},
    "gcg-2": {"trigger_len": 2, "steps": 4, "top_k": 12, "n_victims": 10},
    "dbs-2": {"optimizer": "dbs", "trigger_len": 2, "steps": 6, "top_k": 12, "n_victims": 10},
}
#: the multi-token searches run on the first organism only (they are the slow ones)
SEARCHES_ON = "rare"


def dump(root: Path, out: Path) -> None:
    import torch

    from dormant.bench.zoo import OrganismSpec, build_organism
    from dormant.scanners.base import ScanContext
    from dormant.scanners.model.run import scan_model
    from dormant.subjects.model import check_clean_data, load_classifier
    from dormant.triggers import Position, Trigger, TriggerKind

    torch.set_num_threads(1)
    specs = [
        OrganismSpec(
            "rare",
            attack="rare-word",
            trigger=Trigger("cf", TriggerKind.TOKEN, Position.RANDOM),
            target="plant",
            poison_rate=0.15,
            seed=12,
            **TINY,
        ),
        OrganismSpec(
            "phrase",
            attack="phrase",
            trigger=Trigger("blue lagoon", TriggerKind.PHRASE, Position.RANDOM),
            target="animal",
            poison_rate=0.15,
            seed=13,
            **TINY,
        ),
    ]
    result: dict[str, Any] = {}
    for spec in specs:
        org = build_organism(spec, root)
        rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
        for name, params in CONFIGS.items():
            if spec.name != SEARCHES_ON and name in ("gcg-2", "dbs-2"):
                continue
            m = load_classifier(org.path)
            m.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], m)
            rep = scan_model(
                m, context=ScanContext(seed=0), whitebox_params=params, method="whitebox"
            )
            key = f"{spec.name}/{name}"
            result[key] = {
                "findings": [f.to_dict() for f in rep.findings],
                "extras": json.loads(json.dumps(rep.extras, default=str)),
            }
            v = rep.model_verdict
            print(key, v and v.backdoored, v and v.trigger, v and v.probability, flush=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True, default=str), "utf-8")


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def compare(before: Path, after: Path) -> dict[str, Any]:
    a = json.loads(before.read_text("utf-8"))
    b = json.loads(after.read_text("utf-8"))
    rows = []
    for key in sorted(set(a) | set(b)):
        same = key in a and key in b and _strip(a[key]) == _strip(b[key])
        found = a.get(key, {}).get("findings", [])
        rows.append(
            {
                "scan": key,
                "identical": same,
                "triggers": [(f.get("trigger") or {}).get("text") for f in found],
                "scores": [f["score"] for f in found],
            }
        )
    return {"compared": len(rows), "identical": sum(r["identical"] for r in rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, help="where the organisms are built (cached)")
    ap.add_argument("--dump", type=Path, help="scan and write the findings here")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = ap.parse_args()
    if args.dump:
        if args.root is None:
            ap.error("--dump needs --root")
        dump(args.root, args.dump)
    if args.compare:
        res = compare(*args.compare)
        for r in res["rows"]:
            print(r["scan"], "identical" if r["identical"] else "DIFFERENT", r["triggers"])
        print(f"{res['identical']}/{res['compared']} scans identical")
        if args.out:
            args.out.write_text(json.dumps(res, indent=2) + "\n", "utf-8")
        sys.exit(0 if res["identical"] == res["compared"] else 1)


if __name__ == "__main__":
    main()
