"""Side by side: ``dormant scan artifact`` vs ModelScan vs picklescan on one corpus of model files.

The corpus (:func:`dormant.bench._model_corpus.artifact_corpus`) holds benign and malicious
files of every format an artifact scanner is expected to read — GGUF chat templates, Keras
``.keras`` and ``.h5``, TensorFlow ``saved_model.pb`` / ``keras_metadata.pb``, ONNX, and
pickle / PyTorch / NumPy — one folder per case, each built by that format's own writer and
never loaded. Every tool scans each case folder; a case counts as *flagged* by dormant when
it has a finding of severity medium or higher, by ModelScan when its JSON report lists an
issue, by picklescan when it exits 1 (infected). A tool that reports an error or scans no
file for a case has *not scanned* it (ModelScan needs TensorFlow for ``.keras`` and ``.pb``).

ModelScan and picklescan are a benchmark-only install, not dependencies of dormant; put them
in a separate environment so their pins do not touch dormant's::

    python -m venv /tmp/scanners
    /tmp/scanners/bin/pip install 'modelscan[h5py]' picklescan   # + tensorflow-cpu for .pb/.keras
    PYTHONPATH=src python benchmarks/bench_artifact_formats.py \\
        --modelscan /tmp/scanners/bin/modelscan --picklescan /tmp/scanners/bin/picklescan \\
        --out benchmarks/results/artifact_formats.json

With ``--tf-python PY`` (a Python that has ``tensorflow``, e.g. the scanners' environment after
``pip install tensorflow-cpu``), nine more cases are written by the real Keras 3 and
``tf.saved_model`` writers (``benchmarks/_tf_artifacts.py``): ``.keras`` and legacy ``.h5``
models with and without Lambda layers, and SavedModels with and without file and Python ops.

Held aside (never used while the checks were written): the chat templates shipped inside the
installed ``transformers`` package's processor modules, each written into a GGUF file and
scanned the same way (all benign: a flag is a false positive).

Prints a Markdown table (per format: malicious flagged, benign flagged, not scanned) and
writes the per-case rows to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

SERIOUS = {"medium", "high", "critical"}


def run_dormant(folder: Path) -> dict[str, Any]:
    from dormant.provenance.artifact import ArtifactScanner

    report = ArtifactScanner(max_workers=1).scan_path(folder)
    serious = [f for f in report.findings if f.severity.value in SERIOUS]
    files = report.extras.get("files", [])
    scanned = any(f["format"] != "unknown" for f in files)
    return {
        "flagged": bool(serious),
        "scanned": scanned,
        "detail": sorted({f.title.split(": ", 1)[-1][:80] for f in serious})[:3],
    }


def run_modelscan(exe: str, folder: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "report.json"
        proc = subprocess.run(
            [exe, "-p", str(folder), "-r", "json", "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if not out.exists():
            return {"flagged": False, "scanned": False, "detail": [proc.stderr[-200:]]}
        rep = json.loads(out.read_text())
    issues = rep.get("issues", [])
    errors = rep.get("errors", [])
    scanned = rep.get("summary", {}).get("scanned", {}).get("total_scanned", 0) > 0
    return {
        "flagged": bool(issues),
        "scanned": scanned and not (errors and not issues),
        "detail": [i.get("description", "")[:80] for i in issues][:3]
        + [str(e.get("description", e))[:80] for e in errors][:2],
    }


def run_picklescan(exe: str, folder: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [exe, "-p", str(folder)], capture_output=True, text=True, timeout=600, check=False
    )
    text = proc.stdout + proc.stderr
    scanned = "Scanned files: 0" not in text and proc.returncode in (0, 1)
    found = [ln.strip()[:80] for ln in text.splitlines() if "FOUND" in ln]
    return {"flagged": proc.returncode == 1, "scanned": scanned, "detail": found[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modelscan", default=shutil.which("modelscan"))
    ap.add_argument("--picklescan", default=shutil.which("picklescan"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tf-python", default=None, help="a Python with tensorflow (real writers)")
    args = ap.parse_args()

    from dormant.bench._model_corpus import artifact_corpus

    tools: dict[str, Any] = {"dormant": run_dormant}
    if args.modelscan:
        tools["modelscan"] = lambda f: run_modelscan(args.modelscan, f)
    if args.picklescan:
        tools["picklescan"] = lambda f: run_picklescan(args.picklescan, f)
    versions = {"dormant": _version("dormant")}
    for name in ("modelscan", "picklescan"):
        exe = getattr(args, name)
        if exe:
            versions[name] = _tool_version(exe, name)
    rows = []
    seconds: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory(prefix="artifact-corpus-") as d:
        cases = artifact_corpus(Path(d))
        if args.tf_python:
            cases += _real_writer_cases(args.tf_python, Path(d) / "real")
        cases += _held_aside_templates(Path(d) / "held-aside")
        for case in cases:
            row: dict[str, Any] = {
                "case": case.name,
                "format": case.fmt,
                "malicious": case.malicious,
                "note": case.note,
            }
            for tool, fn in tools.items():
                t0 = time.perf_counter()
                row[tool] = fn(case.path.parent)
                seconds[tool] += time.perf_counter() - t0
            rows.append(row)
    table = _table(rows, list(tools))
    print(table)
    print()
    print(
        f"wall seconds (measured under load): {dict((k, round(v, 1)) for k, v in seconds.items())}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
            "versions": versions,
            "seconds": seconds,
            "cases": len(rows),
            "malicious": sum(r["malicious"] for r in rows),
        }
        args.out.write_text(json.dumps({"meta": meta, "table": table, "rows": rows}, indent=1))


def _table(rows: list[dict[str, Any]], tools: list[str]) -> str:
    fmts = sorted({r["format"] for r in rows}, key=lambda f: [r["format"] for r in rows].index(f))
    head = "| format | malicious / benign | " + " | ".join(
        f"{t}: detected · false pos. · not scanned" for t in tools
    )
    lines = [head + " |", "|" + "---|" * (2 + len(tools))]
    for fmt in [*fmts, "all"]:
        sel = [r for r in rows if fmt in ("all", r["format"])]
        mal = [r for r in sel if r["malicious"]]
        ben = [r for r in sel if not r["malicious"]]
        cells = []
        for t in tools:
            det = sum(r[t]["flagged"] for r in mal)
            fp = sum(r[t]["flagged"] for r in ben)
            miss = sum(not r[t]["scanned"] for r in sel)
            cells.append(f"{det}/{len(mal)} · {fp}/{len(ben)} · {miss}")
        name = f"**{fmt}**" if fmt == "all" else fmt
        lines.append(f"| {name} | {len(mal)} / {len(ben)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _real_writer_cases(python: str, root: Path) -> list[Any]:
    from dormant.bench._model_corpus import CorpusFile

    root.mkdir(parents=True)
    script = Path(__file__).with_name("_tf_artifacts.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [python, str(script), str(root)], capture_output=True, text=True, check=True, env=env
    )
    out = []
    for name, path, fmt, bad, note in json.loads(proc.stdout):
        p = Path(path)
        # case.path.parent is what every tool scans: point at a file inside the folder
        out.append(CorpusFile(name, p / "saved_model.pb" if p.is_dir() else p, fmt, bad, note))
    return out


def _held_aside_templates(root: Path) -> list[Any]:
    """Chat templates found as string constants in ``transformers/models/*/processing_*.py``."""
    import ast
    from importlib.util import find_spec

    from dormant.bench._model_corpus import CorpusFile
    from dormant.bench.model_files import gguf_file

    spec = find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return []
    out = []
    base = Path(next(iter(spec.submodule_search_locations))) / "models"
    for src in sorted(base.glob("*/processing_*.py")):
        text = src.read_text(encoding="utf-8", errors="replace")
        if "{%" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            value = getattr(node, "value", None)
            if isinstance(value, str) and "{%" in value and "message" in value:
                folder = root / f"{src.parent.name}-{len(out)}"
                folder.mkdir(parents=True)
                path = gguf_file(folder / "model.gguf", value)
                out.append(CorpusFile(folder.name, path, "gguf (held aside)", False, str(src.name)))
    return out


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def _tool_version(exe: str, name: str) -> str:
    py = Path(exe).parent / "python"
    if not py.exists():
        return "unknown"
    code = f"from importlib.metadata import version; print(version('{name}'))"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
