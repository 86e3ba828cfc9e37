"""``scan data --resume`` of the counting pass: a resumed run's time against a fresh one.

On a sharded labelled dataset (``benchmarks/_scale_data.py`` shards), three runs of
``dormant scan data --no-embed`` as a user runs it (``compare_data_files.py``'s arguments),
each a fresh process:

1. a fresh, uninterrupted scan (wall and CPU seconds, peak resident set);
2. the same scan into another ``--out``, killed with SIGKILL as soon as the counting pass's
   checkpoint covers ``--kill-at`` of its blocks (half by default);
3. that scan rerun with ``--resume``: wall and CPU seconds, peak resident set, the blocks read
   back (the report's ``resume:`` warning), and whether every written file equals the fresh
   run's (SHA-256; ``report.json`` without its clock fields and resume lines).

Usage::

    python benchmarks/bench_count_resume.py /tmp/ddisk/n1000000 --work /tmp/resume \\
        --out benchmarks/results/count_resume_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a folder of labelled JSONL shards (text, label, id)")
    ap.add_argument("--work", required=True, help="where the outputs are written")
    ap.add_argument("--kill-at", type=float, default=0.5, help="share of the blocks saved")
    ap.add_argument("--records", type=int, default=None, help="records (to find the blocks)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from compare_data_files import SCAN, output_digests, scan_args

    root = Path(args.work)
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    n = args.records or sum(p.read_bytes().count(b"\n") for p in Path(args.data).glob("*.jsonl"))
    batches = -(-n // 8192)
    blocks_saved = batches // 32  # full blocks of 32 batches (the default 262,144 records)
    target = max(round(blocks_saved * args.kill_at), 1)

    def timed(out: Path, *extra: str) -> dict:
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-c", SCAN, *scan_args(Path(args.data), out, *extra)],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if not res.stdout.strip():
            raise SystemExit(f"a scan failed:\n{res.stderr[-3000:]}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        return {**row, "wall_s": round(wall, 1)}

    fresh_out, out = root / "fresh", root / "resumed"
    for p in (fresh_out, out, root / ".resumed.work"):
        shutil.rmtree(p, ignore_errors=True)
    fresh = timed(fresh_out)
    print(json.dumps({"fresh": fresh}), file=sys.stderr, flush=True)

    state = root / ".resumed.work" / "count" / "state.json"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCAN, *scan_args(Path(args.data), out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = 0
    while proc.poll() is None:
        try:
            saved = json.loads(state.read_text())["block"] + 1
        except (OSError, ValueError, KeyError):
            saved = 0
        if saved >= target:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = {"wall_s": round(time.perf_counter() - t0, 1), "blocks_saved": saved}
    print(json.dumps({"killed": killed}), file=sys.stderr, flush=True)

    resumed = timed(out, "--resume")
    rep = json.loads((out / "report.json").read_text())
    notes = [w["message"] for w in rep["warnings"] if w["message"].startswith("resume:")]
    same = output_digests(out) == output_digests(fresh_out)
    row = {
        "records": n,
        "blocks": -(-batches // 32),
        "fresh": fresh,
        "killed": killed,
        "resumed": resumed,
        "resume_notes": notes,
        "same_files": same,
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=1))
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
