"""Statistical pass of the data scan at scale: records/s and peak memory, this tree vs a baseline.

Builds labelled JSONL datasets of 10^5 and 10^6 records (and 10^7 with ``--sizes``) from real
English — the four Debian dictionaries and Debian's package descriptions
(``benchmarks/_scale_data.py``) — and times the counting pass of trigger mining (tokenise,
count 1-2-grams and character features per outcome, lossy-counting prunes: what
``dormant scan data --no-embed`` does before its tests) in a fresh process per run, with 1 and
2 worker processes, alternating the baseline tree and this one so both see the same machine
load. Peak memory is the peak resident set (VmHWM) of the scanning process plus the largest of
its workers.

Usage::

    python benchmarks/bench_data_scale.py --baseline /work/main/src --sizes 100000,1000000 \\
        --repeats 2 --out benchmarks/results/data_scale.json
    python benchmarks/bench_data_scale.py --profile 100000   # top of a cProfile of one run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
from dormant.scanners.base import ScanContext
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

path, jobs = sys.argv[1], int(sys.argv[2])
ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
miner = TriggerMiner(n_jobs=jobs)
before = hwm()
t0, c0 = time.perf_counter(), time.process_time()
res = miner._count(ds, ScanContext())
n, ids = res[0], res[-1]
if hasattr(ids, "duplicates"):  # the duplicate-id check is part of the pass (and its spill)
    ids.duplicates()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "records": n, "jobs": jobs, "wall_s": round(wall, 2), "records_per_s": round(n / wall),
    "cpu_s": round(cpu + kids.ru_utime + kids.ru_stime, 2),
    "records_per_cpu_s": round(n / (cpu + kids.ru_utime + kids.ru_stime)),
    "peak_rss_mb": round(hwm(), 1), "peak_rss_mb_before": round(before, 1),
    "peak_rss_mb_worker": round(kids.ru_maxrss / 1024, 1), "prunes": miner.prunes_,
}))
"""

PROFILE = r"""
import cProfile, io, pstats, sys
from dormant.scanners.base import ScanContext
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset
ds = TextDataset(sys.argv[1], text_field="text", label_field="label", id_field="id")
pr = cProfile.Profile()
pr.enable()
ids = TriggerMiner()._count(ds, ScanContext())[-1]
if hasattr(ids, "duplicates"):
    ids.duplicates()
pr.disable()
out = io.StringIO()
pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(int(sys.argv[2]))
print(out.getvalue())
"""


def run(src: str, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=None, help="src directory of the baseline tree")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data-dir", default=None, help="where to build the datasets (kept)")
    ap.add_argument("--profile", type=int, default=0, help="profile one run of N records")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _scale_data import write_shards

    root = Path(args.data_dir or tempfile.mkdtemp(prefix="dormant-scale-"))
    sizes = [args.profile] if args.profile else [int(s) for s in args.sizes.split(",")]
    files = {}
    for n in sizes:
        d = root / f"n{n}"
        if not (d / "part-00000.jsonl").exists():
            write_shards(d, n, shard_size=min(n, 1_000_000))
        files[n] = d  # the folder: every shard of it, read in order
    if args.profile:
        for name, src in (("baseline", args.baseline), ("this tree", str(SRC))):
            if src:
                print(f"== {name}\n" + run(src, PROFILE, str(files[args.profile]), str(args.top)))
        return
    trees = [("this tree", str(SRC))]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline))
    rows = []
    for n in sizes:
        for rep in range(args.repeats):
            for jobs in (int(j) for j in args.jobs.split(",")):
                for name, src in trees:
                    row = {
                        "tree": name,
                        "repeat": rep,
                        **json.loads(run(src, PROBE, str(files[n]), str(jobs))),
                    }
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"machine": os.uname().nodename, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
