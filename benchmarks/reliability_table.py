"""Run each class of bad input through the ``dormant`` command (in process) and write the
table of exit codes and messages to RELIABILITY.md.

Every row is a case the tests check (tests/test_reliability_*.py and the property tests);
this script shows what a user sees. Nothing here needs a model or the network.

    PYTHONPATH=src python benchmarks/reliability_table.py [RELIABILITY.md]
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from dormant.cli import main

LABEL = ["--text-field", "text", "--label-field", "label", "--no-embed", "--no-progress", "-q"]


def _jsonl(d: Path, extra: str = "", n: int = 40) -> Path:
    p = d / "d.jsonl"
    rows = [
        json.dumps({"id": i, "text": f"record {i} on item {i % 7}", "label": i % 2})
        for i in range(n)
    ]
    p.write_text("\n".join(rows) + "\n" + extra, encoding="utf-8")
    return p


def _zip(d: Path, names: list[str]) -> Path:
    p = d / "m.zip"
    with zipfile.ZipFile(p, "w") as zf:
        for n in names:
            zf.writestr(zipfile.ZipInfo(n), b"x")
    return p


def _pkl_dir(d: Path) -> Path:
    m = d / "ckpt"
    m.mkdir()
    (m / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    return m


def _bad_config(d: Path) -> Path:
    m = d / "model"
    m.mkdir()
    (m / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    (m / "config.json").write_text('{"architectures": [')
    return m


def _loop(d: Path, target: str) -> Path:
    m = d / "model"
    m.mkdir()
    (m / "w.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00" + b" " * 118)
    os.symlink(target, m / "link")
    return m


def _gz(d: Path) -> Path:
    p = d / "d.jsonl.gz"
    p.write_bytes(gzip.compress(_jsonl(d).read_bytes())[:-30])  # cut short
    return p


def _zipped_data(d: Path) -> Path:
    p = d / "d.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.write(_jsonl(d), "d.jsonl")
    return p


def _file(d: Path) -> Path:
    p = d / "taken"
    p.write_text("x")
    return p


Case = tuple[str, str, Callable[[Path], list[str]]]
CASES: list[Case] = [
    (
        "JSONL line nested 200,000 deep",
        "scan data",
        lambda d: [
            "scan",
            "data",
            str(_jsonl(d, "[" * 200_000 + "]" * 200_000)),
            *LABEL,
            "-o",
            str(d / "o"),
        ],
    ),
    (
        "JSONL id of 5,000 digits",
        "scan data",
        lambda d: [
            "scan",
            "data",
            str(_jsonl(d, '{"id": ' + "9" * 5000 + "}")),
            *LABEL,
            "-o",
            str(d / "o"),
        ],
    ),
    (
        "JSONL line not JSON",
        "scan data",
        lambda d: ["scan", "data", str(_jsonl(d, "{oops")), *LABEL, "-o", str(d / "o")],
    ),
    (
        "truncated gzip data file (a whole one is read)",
        "scan data",
        lambda d: ["scan", "data", str(_gz(d)), *LABEL, "-o", str(d / "o")],
    ),
    (
        "zip archive given as a data file",
        "scan data",
        lambda d: [
            "scan",
            "data",
            str(_zipped_data(d)),
            *LABEL,
            "--format",
            "jsonl",
            "-o",
            str(d / "o"),
        ],
    ),
    (
        "mixed label types with --strict",
        "scan data",
        lambda d: [
            "scan",
            "data",
            str(_jsonl(d, '{"text": "t", "label": "x"}\n')),
            *LABEL,
            "--strict",
            "-o",
            str(d / "o"),
        ],
    ),
    (
        "--out is an existing file",
        "scan artifact",
        lambda d: ["scan", "artifact", str(_pkl_dir(d)), "--out", str(_file(d))],
    ),
    (
        "--out in a read-only place",
        "scan artifact",
        lambda d: ["scan", "artifact", str(_pkl_dir(d)), "--out", "/proc/dormant-out"],
    ),
    (
        "--out is an existing file",
        "scan model",
        lambda d: [
            "scan",
            "model",
            str(_bad_config(d)),
            "--data",
            str(_jsonl(d)),
            "--out",
            str(_file(d)),
        ],
    ),
    (
        "config.json not JSON",
        "scan model",
        lambda d: [
            "scan",
            "model",
            str(_bad_config(d)),
            "--data",
            str(_jsonl(d)),
            "-o",
            str(d / "o"),
        ],
    ),
    (
        "unknown report format",
        "scan artifact",
        lambda d: [
            "scan",
            "artifact",
            str(_pkl_dir(d)),
            "--formats",
            "json,pdf",
            "-o",
            str(d / "o"),
        ],
    ),
    (
        "zip member ../../evil (zip-slip)",
        "scan artifact",
        lambda d: ["scan", "artifact", str(_zip(d, ["../../evil", "/abs/evil2"]))],
    ),
    (
        "symlink loop -> .",
        "scan artifact",
        lambda d: ["scan", "artifact", str(_loop(d, ".")), "--allow-symlinks"],
    ),
    (
        "symlink out of the artifact -> /",
        "scan artifact",
        lambda d: ["scan", "artifact", str(_loop(d, "/")), "--allow-symlinks"],
    ),
    (
        "registry file that does not exist",
        "registry list",
        lambda d: ["registry", "list", "--registry", f"sqlite:///{d}/none/x.db"],
    ),
    ("malicious pickle", "scan artifact", lambda d: ["scan", "artifact", str(_pkl_dir(d))]),
]


def run_case(argv_of: Callable[[Path], list[str]]) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        argv = argv_of(Path(tmp))
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
        text = err.getvalue().strip() or out.getvalue().strip()
        first = (
            text.splitlines()[-1]
            if code != 1
            else next((ln.strip() for ln in text.splitlines() if "[" in ln), text.splitlines()[0])
        )
        return code, first.replace(tmp, "…").replace("|", "\\|")[:230]


def main_table(path: Path) -> None:
    rows = ["| bad input | command | exit | what the user reads |", "|---|---|---|---|"]
    for name, command, argv_of in CASES:
        code, msg = run_case(argv_of)
        rows.append(f"| {name} | `{command}` | {code} | {msg} |")
        print(f"{code:>3}  {name}", file=sys.stderr)
    text = path.read_text("utf-8") if path.exists() else ""
    start, end = "<!-- table:start -->", "<!-- table:end -->"
    table = start + "\n" + "\n".join(rows) + "\n" + end
    if start in text:
        text = text[: text.index(start)] + table + text[text.index(end) + len(end) :]
    else:
        text += "\n" + table + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main_table(Path(sys.argv[1] if len(sys.argv) > 1 else "RELIABILITY.md"))
