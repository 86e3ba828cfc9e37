"""Same written files from two trees? ``dormant scan data --no-embed`` outputs compared by hash.

Runs the CLI as a user does (``report.json``, ``scores.jsonl`` and the clean / quarantine
split) on a labelled dataset and three poisoned copies of it (the cases of
``compare_data_scan.py``: a token trigger on 1 % of records, a clean-label phrase on 3 %, a
style trigger on 1 %), once with each tree, a fresh process per run, and compares the SHA-256
of every written file. ``report.json`` is hashed without its two clock fields
(``run.started``, ``run.finished``) and without ``resume:`` warnings; every other file must be
byte-identical. Also records each run's peak resident set (VmHWM) and CPU seconds. Exits 1 when
any file differs.

Usage::

    python benchmarks/compare_data_files.py /tmp/ddisk/n100000 --before /tmp/before/src \\
        --work /tmp/poison --out benchmarks/results/data_files_same_100k.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

SCAN = r"""
import json, resource, sys
from pathlib import Path
from dormant.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
hwm = next(int(l.split()[1]) / 1024 for l in Path("/proc/self/status").read_text().splitlines()
           if l.startswith("VmHWM:"))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rc": rc, "peak_rss_mb": round(hwm, 1),
                  "cpu_s": round(ru.ru_utime + ru.ru_stime, 1)}))
"""


def scan_args(data: Path, out: Path, *extra: str) -> list[str]:
    """The CLI arguments of the compared scan (the data-scale benchmarks' settings)."""
    return [
        "scan", "data", str(data), "--text-field", "text", "--label-field", "label",
        "--id-field", "id", "--no-embed", "--out", str(out), "--formats", "json,scores",
        "-q", "--no-progress", *extra,
    ]  # fmt: skip


def output_digests(out: Path) -> dict[str, str]:
    """SHA-256 of every file under ``out`` (``report.json`` without its clock fields and
    ``resume:`` warnings)."""
    digests = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "report.json":
            rep = json.loads(data)
            rep.get("run", {}).pop("started", None)
            rep.get("run", {}).pop("finished", None)
            rep["warnings"] = [
                w
                for w in rep.get("warnings", [])
                if not str(w.get("message", "")).startswith("resume:")
            ]
            data = json.dumps(rep, sort_keys=True).encode()
        digests[str(path.relative_to(out))] = hashlib.sha256(data).hexdigest()
    return digests


def run_cli(src: str, args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", SCAN, *args], env=env, capture_output=True, text=True
    )
    if res.returncode != 0 or not res.stdout.strip():
        raise SystemExit(f"a scan failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a folder of labelled JSONL shards (text, label, id)")
    ap.add_argument("--before", required=True, help="src directory of the tree to compare with")
    ap.add_argument("--work", default=None, help="where the poisoned copies are written (kept)")
    ap.add_argument("--cases", default="clean,token,clean-label,style")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from compare_data_scan import poisoned

    root = Path(args.work or tempfile.mkdtemp(prefix="dormant-files-"))
    root.mkdir(parents=True, exist_ok=True)
    wanted = args.cases.split(",")
    rows, same_all = [], True
    for name, path in poisoned(Path(args.data), root):
        if name.split()[0] not in wanted:
            continue
        tag = name.split()[0]
        got = {}
        for tree, src in (("before", args.before), ("after", str(SRC))):
            out = root / f"out-{tag}-{tree}"
            stats = run_cli(src, scan_args(path, out))
            got[tree] = (stats, output_digests(out))
        same = got["before"][1] == got["after"][1]
        same_all &= same
        rep = json.loads((root / f"out-{tag}-after" / "report.json").read_text())
        row = {
            "dataset": name,
            "same_files": same,
            "files": sorted(got["after"][1]),
            "differing": sorted(
                k for k in got["after"][1] if got["before"][1].get(k) != got["after"][1][k]
            ),
            "findings": len(rep["findings"]),
            "flagged": rep["summary"]["flagged_records"],
            "before": got["before"][0],
            "after": got["after"][0],
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "same": same_all}, indent=1))
    raise SystemExit(0 if same_all else 1)


if __name__ == "__main__":
    main()
