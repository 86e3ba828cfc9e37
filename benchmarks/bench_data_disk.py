"""The whole data scan at scale, per-record state on disk: peak memory and records/s vs a baseline.

Two measurements, each in a fresh process per run, alternating the baseline tree and this one
so both see the same machine load:

``--scale`` (default): ``dormant scan data --no-embed`` as a user runs it (statistical pass,
second pass, fusion, ``report.json`` + ``scores.jsonl`` + the clean / quarantine split) on
labelled JSONL shards of 10^5 and 10^6 records of real English (``benchmarks/_scale_data.py``:
the Debian dictionaries and package descriptions, cycled). Peak memory is the scanning
process's peak resident set (VmHWM).

``--fusion``: the per-record stage alone at 10^6 (and 10^7) records — fusing the scanners'
per-record scores into the report's records and writing ``scores.jsonl`` — with the
statistical scanner replaced by fixed scores (``scan_dataset(miner=...)``), so the figure is
the memory the per-record state takes, not the counting tables.

``--embed N``: the default scan (with embeddings) of N records vs the encoder alone on the same
records, and the representation scanners' own cost on the precomputed embeddings; CPU seconds
(less sensitive to other load than wall time) and wall seconds. ``--profile`` adds the top of a
cProfile of the default scan.

Usage::

    python benchmarks/bench_data_disk.py --baseline /work/main/src --sizes 100000,1000000 \\
        --out benchmarks/results/data_disk.json
    python benchmarks/bench_data_disk.py --fusion --baseline /work/main/src --sizes 1000000
    python benchmarks/bench_data_disk.py --embed 2000 --profile --out benchmarks/results/embed.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

SCAN = r"""
import json, sys, time
from pathlib import Path
from dormant.cli import main

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

data, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0, c0 = time.perf_counter(), time.process_time()
try:
    rc = main(["scan", "data", data, "--text-field", "text", "--label-field", "label",
               "--id-field", "id", "--no-embed", "--out", out, "--formats", "json,scores",
               "-q", "--no-progress"])
except SystemExit as exc:
    rc = exc.code
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
rep = json.loads((Path(out) / "report.json").read_text())
print(json.dumps({"records": n, "rc": rc, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                  "records_per_s": round(n / wall), "records_per_cpu_s": round(n / cpu),
                  "peak_rss_mb": round(hwm(), 1), "findings": len(rep["findings"]),
                  "flagged": rep["summary"]["flagged_records"]}))
"""

FUSE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from dormant.scanners.base import ScanResult
from dormant.scanners.data.fusion import scan_dataset
from dormant.subjects import TextDataset

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

data, out, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

class FixedScores:  # stands in for the statistical scanner: the per-record stage is measured
    def scan(self, subject, *, context=None):
        scores = np.random.default_rng(0).random(n, dtype=np.float32) * 0.5
        flags = np.zeros(n, dtype=bool)
        flags[::1000] = True
        return ScanResult(findings=[], record_scores=scores, record_flags=flags)

kw = {}
try:
    from dormant.scanners.data._scan_work import ScanWork
    kw["work"] = ScanWork(out / "work")
except ImportError:  # the baseline: records held in memory
    pass
ds = TextDataset(data, text_field="text", label_field="label", id_field="id")
before = hwm()
t0, c0 = time.perf_counter(), time.process_time()
rep = scan_dataset(ds, scanners=["trigger-mining"], embed=False, miner=FixedScores(), **kw)
rep.write_record_scores(out / "scores.jsonl")
flagged = sum(1 for r in rep.records if r.flagged)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"records": len(rep.records), "flagged": flagged, "wall_s": round(wall, 1),
                  "cpu_s": round(cpu, 1), "records_per_cpu_s": round(n / cpu),
                  "peak_rss_mb": round(hwm(), 1), "rss_before_mb": round(before, 1)}))
"""

EMBED = r"""
import cProfile, io, json, pstats, sys, time
import torch
torch.set_num_threads(1)
from dormant.adapters.encoder import TextEncoder
from dormant.scanners.base import ScanContext
from dormant.scanners.data.fusion import REPRESENTATION_SCANNERS, scan_dataset, record_outcomes
from dormant.scanners.base import REGISTRY
from dormant.scanners.catalog import _load_builtin
from dormant.subjects import TextDataset

path, profile = sys.argv[1], sys.argv[2] == "1"
ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
def clock():
    return time.perf_counter(), time.process_time()
def since(t):
    return round(time.perf_counter() - t[0], 2), round(time.process_time() - t[1], 2)
enc = TextEncoder().load()
enc.encode(["warm up"])
t = clock(); x = enc.embed_dataset(ds, context=ScanContext()); encoder = since(t)
_load_builtin()
outcomes = record_outcomes(ds)
t = clock()
for name in REPRESENTATION_SCANNERS:
    REGISTRY[name]().scan(ds, embeddings=x, outcomes=outcomes)
rep_only = since(t)
pr = cProfile.Profile() if profile else None
t = clock()
if pr: pr.enable()
scan_dataset(ds)
if pr: pr.disable()
full = since(t)
top = ""
if pr:
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(15)
    top = s.getvalue()
print(json.dumps({"records": len(x), "encoder_wall_s": encoder[0], "encoder_cpu_s": encoder[1],
    "representation_wall_s": rep_only[0], "representation_cpu_s": rep_only[1],
    "scan_wall_s": full[0], "scan_cpu_s": full[1],
    "scan_over_encoder_cpu": round(full[1] / encoder[1], 2),
    "representation_over_encoder_cpu": round(rep_only[1] / encoder[1], 3), "profile": top}))
"""


def run(src: str, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"a benchmark run failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=None, help="src directory of the baseline tree")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--embed", type=int, default=0, help="time the default scan of N records")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--fusion", action="store_true", help="the per-record stage alone")
    ap.add_argument("--data-dir", default=None, help="where to build the datasets (kept)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _scale_data import write_shards

    root = Path(args.data_dir or tempfile.mkdtemp(prefix="dormant-disk-"))
    trees = [("this tree", str(SRC))]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline))
    rows = []
    sizes = [args.embed] if args.embed else [int(s) for s in args.sizes.split(",")]
    for n in sizes:
        d = root / f"n{n}"
        if not (d / "part-00000.jsonl").exists():
            write_shards(d, n, shard_size=max(n // 4, 1))
        for rep in range(args.repeats):
            for name, src in trees:
                if args.embed:
                    row = json.loads(run(src, EMBED, str(d), "1" if args.profile else "0"))
                    print(row.pop("profile"), file=sys.stderr)
                else:
                    out = root / f"out-{n}-{rep}-{name.replace(' ', '_')}"
                    if args.fusion:
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir(parents=True)
                    code = FUSE if args.fusion else SCAN
                    row = json.loads(run(src, code, str(d), str(out), str(n)))
                    if args.fusion:
                        shutil.rmtree(out, ignore_errors=True)
                row = {"tree": name, "repeat": rep, **row}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"machine": os.uname().nodename, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
