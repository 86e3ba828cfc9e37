"""The clean-label test's text counts: a ``Counter`` vs :class:`HashCounts`, memory and time.

The clean-label test counts every record's normalised-text hash per target outcome. On the
data-scale benchmark's sets (a pool of 224k texts cycled) the distinct texts stay few, so the
whole scan cannot show how this grows; here the counting alone runs on ``N`` records of
distinct texts (random 64-bit hashes, one target outcome, batches of 8,192 as the scan reads
them), each way in a fresh process: the ``Counter`` of ``(hash, outcome)`` the test used, and
:class:`~dormant.scanners.data._mining_hashcount.HashCounts`. Reported: the peak resident set
above the process's size before counting (VmHWM, ``/proc/self/clear_refs`` reset), CPU
seconds, and whether the two agree on a sample of 10,000 queried hashes.

Usage::

    python benchmarks/bench_text_counts.py --records 1000000,10000000 \\
        --out benchmarks/results/text_counts.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

CODE = r"""
import json, sys, time
from collections import Counter
from pathlib import Path
import numpy as np
from dormant.scanners.data._mining_hashcount import HashCounts

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

how, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
batches = (rng.integers(0, 2**64, size=min(8192, n - lo), dtype=np.uint64)
           for lo in range(0, n, 8192))
query = np.random.default_rng(0).integers(0, 2**64, size=10_000, dtype=np.uint64)  # the first ones
Path("/proc/self/clear_refs").write_text("5")
base = status("VmRSS")
c0 = time.process_time()
if how == "counter":
    seen = Counter()
    for b in batches:
        for h in b.tolist():  # the test hashed and counted one record at a time
            seen[(h, "label:t")] += 1
    got = [min(seen[(h, "label:t")], 2) for h in query.tolist()]
else:
    seen = HashCounts()
    for b in batches:
        seen.add("label:t", np.array(b.tolist(), dtype=np.uint64))
    seen.finish()
    got = seen.counts("label:t", query).tolist()
    seen.close()
cpu = time.process_time() - c0
print(json.dumps({"how": how, "records": n, "peak_above_start_mb": round(status("VmHWM") - base, 1),
                  "cpu_s": round(cpu, 1), "found": sum(g > 0 for g in got)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="1000000")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    rows = []
    for n in (int(s) for s in args.records.split(",")):
        for how in ("counter", "hashcounts"):
            out = subprocess.run(
                [sys.executable, "-c", CODE, how, str(n)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
