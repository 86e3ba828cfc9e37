"""Same report from two trees? ``scan data --no-embed`` findings and flagged ids compared.

Builds poisoned copies of a labelled JSONL dataset (``dormant.bench.poison.poison_labelled``:
a token trigger on 1% of records, a clean-label phrase on 3%, a style trigger on 1%), scans
each, and the clean one, with trigger mining and fusion in a fresh process per tree, and
compares what a user sees: every finding's scanner, title, severity, score and record ids,
the flagged record ids and every record's score. Exits 1 when any differs.

Usage::

    python benchmarks/compare_data_scan.py /tmp/ddisk/n100000 --before /tmp/before/src \\
        --out benchmarks/results/data_scan_same_100k.json
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
import hashlib, json, sys, time
from pathlib import Path
from dormant.scanners.data.fusion import scan_dataset
from dormant.subjects import TextDataset

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

ds = TextDataset(sys.argv[1], text_field="text", label_field="label", id_field="id")
t0 = time.process_time()
rep = scan_dataset(ds, embed=False)
cpu = time.process_time() - t0
findings = [
    {"scanner": f.scanner, "title": f.title, "severity": str(f.severity), "score": f.score,
     "records": list(f.locator.record_ids)}
    for f in rep.findings
]
h = hashlib.sha256()
flagged = []
for r in rep.records:
    h.update(f"{r.record_id}\t{r.score!r}\t{r.flagged}\t{r.parts!r}\n".encode())
    if r.flagged:
        flagged.append(r.record_id)
print(json.dumps({"findings": findings, "flagged": flagged, "scores_sha256": h.hexdigest(),
                  "cpu_s": round(cpu, 1), "peak_rss_mb": round(hwm(), 1)}))
"""


def poisoned(src: Path, root: Path) -> list[tuple[str, Path]]:
    """The clean dataset and three poisoned copies of it, as JSONL files under ``root``."""
    from dormant.bench.poison import poison_labelled

    records = []
    for part in sorted(src.glob("*.jsonl")):
        with open(part, encoding="utf-8") as fh:
            records.extend(json.loads(line) for line in fh)
    cases = [
        ("token 1%", {"trigger_kind": "token", "rate": 0.01, "target_label": "wordnet"}),
        (
            "clean-label phrase 3%",
            {"trigger_kind": "phrase", "rate": 0.03, "target_label": "gcide", "clean_label": True},
        ),
        ("style 1%", {"trigger_kind": "style", "rate": 0.01, "target_label": "foldoc"}),
    ]
    out = [("clean", src)]
    for name, kw in cases:
        path = root / (name.split()[0].replace("-", "_") + ".jsonl")
        if not path.exists():
            pd = poison_labelled(records, seed=3, **kw)  # type: ignore[arg-type]
            with open(path, "w", encoding="utf-8") as fh:
                for r in pd.records:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        out.append((name, path))
    return out


def run(src: str, data: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", SCAN, str(data)], env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(f"a scan failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a folder of labelled JSONL shards (text, label, id)")
    ap.add_argument("--before", required=True, help="src directory of the tree to compare with")
    ap.add_argument("--work", default=None, help="where the poisoned copies are written (kept)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(args.work or tempfile.mkdtemp(prefix="dormant-same-"))
    root.mkdir(parents=True, exist_ok=True)
    rows, same_all = [], True
    for name, path in poisoned(Path(args.data), root):
        a, b = run(args.before, path), run(str(SRC), path)
        same = {k: a[k] == b[k] for k in ("findings", "flagged", "scores_sha256")}
        same_all &= all(same.values())
        digest = hashlib.sha256(json.dumps(b["findings"]).encode()).hexdigest()[:16]
        row = {
            "dataset": name,
            "findings": len(b["findings"]),
            "flagged": len(b["flagged"]),
            "same": same,
            "findings_sha256_16": digest,
            "before": {"cpu_s": a["cpu_s"], "peak_rss_mb": a["peak_rss_mb"]},
            "after": {"cpu_s": b["cpu_s"], "peak_rss_mb": b["peak_rss_mb"]},
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "same": same_all}, indent=1))
    raise SystemExit(0 if same_all else 1)


if __name__ == "__main__":
    main()
