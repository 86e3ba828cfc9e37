"""Scan zoo organisms with whatever ``dormant`` is importable: the baseline of a comparison.

Run it with the previous scanner's source first on ``PYTHONPATH`` (e.g. the main branch's
``src``) on the same organism directories as ``bench_model_verdict.py``; rows carry the same
fields that script's summary reads (``--baseline``). It reads only the organisms' files
(``organism.json`` for the ground truth, the model, ``clean_eval.jsonl``), so it needs no zoo
code of the newer version.

Usage::

    PYTHONPATH=/path/to/main/src python benchmarks/scan_baseline.py --root /tmp/zoo \
        --prefix vdic --out benchmarks/results/model_verdict_baseline.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--prefix", action="append", required=True, help="organism name prefix")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    import dormant
    from dormant.scanners.base import ScanContext
    from dormant.scanners.model.whitebox import TriggerInversionScanner
    from dormant.subjects.model import check_clean_data, load_classifier

    torch.set_num_threads(args.threads)
    src = Path(dormant.__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    done = set()
    if args.out.exists():
        done = {json.loads(x)["name"] for x in args.out.read_text("utf-8").splitlines()}
    for meta in sorted(args.root.glob("*/organism.json")):
        path = meta.parent
        if path.name in done or not any(path.name.startswith(p) for p in args.prefix):
            continue
        info = json.loads(meta.read_text("utf-8"))
        spec = info["spec"]
        rows = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
        model = load_classifier(path)
        model.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], model)
        t0 = time.perf_counter()
        res = TriggerInversionScanner().scan(model, context=ScanContext(seed=0))
        v = res.extras["model_verdict"]
        row = {
            "name": path.name,
            "scanner_source": f"{src} @ {commit}",
            "arch": spec["arch"],
            "attack": spec["attack"],
            "backdoored": spec["backdoored"],
            "true_trigger": spec["trigger"]["text"] if spec["trigger"] else None,
            "true_target": spec["target"],
            "attack_success_rate": info["attack_success_rate"],
            "n_labels": len(model.labels),
            "probability": v["probability"],
            "pred_target": v["target"],
            "pred_trigger": (res.findings[0].trigger.text if res.findings else v["trigger"]),
            "pred_flip_rate": res.extras.get("replay", {}).get("flip_rate"),
            "severity": res.findings[0].severity.value if res.findings else None,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
