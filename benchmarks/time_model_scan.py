"""Time the white-box model scan on cached zoo organisms, with and without the robust search.

The quality benchmark (``bench_model_scan.py``) records seconds too, but it usually runs beside
other work; this script times the scan alone, on models already built, with a fixed number of
torch threads. Baseline, measured in the same run on the same models: the same scan with the
position-robust search turned off (``robust_len=0``), which is the scan before that search was
added.

Usage::

    python benchmarks/time_model_scan.py --root /tmp/zoo big3-clean0 big3-rare-word0 \\
        minilm5-clean0 minilm5-rare-word0 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from dormant.scanners.base import ScanContext
from dormant.scanners.model.whitebox import TriggerInversionScanner
from dormant.subjects.model import check_clean_data, load_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+", help="organism directories under --root")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per model and setting")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.names:
        path = args.root / name
        data = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
        model = load_classifier(path)
        model.clean = check_clean_data([r["text"] for r in data], [r["label"] for r in data], model)
        n_params = sum(p.numel() for p in model.adapter.model.parameters())
        for label, params in (("dormant", {}), ("baseline: no robust search", {"robust_len": 0})):
            secs = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                res = TriggerInversionScanner(**params).scan(model, context=ScanContext(seed=0))
                secs.append(time.perf_counter() - t0)
            v = res.extras["model_verdict"]
            rows.append(
                {
                    "model": name,
                    "params": n_params,
                    "setting": label,
                    "seconds": round(min(secs), 1),
                    "probability": v["probability"],
                    "trigger": v["trigger"],
                }
            )
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    print(f"machine: {platform.machine()} {platform.processor()}, torch threads {args.threads}")
    print("| model | parameters | dormant (s) | baseline: no robust search (s) |")
    print("|---|---|---|---|")
    for i in range(0, len(rows), 2):
        a, b = rows[i], rows[i + 1]
        print(f"| {a['model']} | {a['params'] / 1e6:.1f}M | {a['seconds']} | {b['seconds']} |")


if __name__ == "__main__":
    main()
