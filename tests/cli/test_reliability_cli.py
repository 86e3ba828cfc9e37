"""Hostile inputs to the command line: each test reproduces one defect found by trying
161 bad inputs as a new user would, and checks the clean error (message and exit code) now given.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import signal
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _paths import ROOT

from dormant.bench.corpus import labelled_dataset
from dormant.bench.poison import poison_labelled, write_dataset
from dormant.cli import EXIT_INTERNAL

LABEL = ["--text-field", "text", "--label-field", "label"]
FAST = ["--no-embed", "--no-progress", "-q"]


def small_jsonl(path: Path, n: int = 40) -> Path:
    rows = [
        {"id": i, "text": f"record number {i} about item {i % 7}", "label": i % 2} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_clean_error(res: Any, code: int, *words: str) -> None:
    assert res.code == code, res.err
    assert "Traceback" not in res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res.err
    for w in words:
        assert w in res.err, res.err


# ---------------------------------------------------------------- 1: malformed JSONL lines


@pytest.mark.parametrize(
    ("bad_line", "word"),
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"id": ' + "9" * 5000 + ', "text": "x", "label": 0}', "digits"),
    ],
    ids=["deep-nesting", "5000-digit-int"],
)
def test_malformed_jsonl_line_is_exit_2_naming_the_line(
    run_cli: Callable[..., Any], tmp_path: Path, bad_line: str, word: str
) -> None:
    src = small_jsonl(tmp_path / "d.jsonl", 10)
    with open(src, "a", encoding="utf-8") as fh:
        fh.write(bad_line + "\n")
    before = src.read_bytes()
    res = run_cli("scan", "data", src, *LABEL, *FAST, "-o", tmp_path / "out")
    assert_clean_error(res, 2, "line 11", word)
    assert src.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_unexpected_exception_is_exit_70_with_how_to_report(
    run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a defect stand-in: the data scan itself blows up with a non-dormant exception
    import dormant.scanners.data.fusion as fusion

    def broken(*a: Any, **k: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(fusion, "scan_dataset", broken)
    src = small_jsonl(tmp_path / "d.jsonl")
    res = run_cli("scan", "data", src, *LABEL, *FAST, "-o", tmp_path / "out")
    assert res.code == EXIT_INTERNAL == 70
    assert "internal error" in res.err and "report" in res.err
    assert "ZeroDivisionError" in res.err and "Traceback" not in res.err
    res = run_cli("--debug", "scan", "data", src, *LABEL, *FAST, "-o", tmp_path / "out")
    assert res.code == 70 and "Traceback" in res.err


def test_exit_70_is_documented() -> None:
    import dormant.cli

    readme = (ROOT / "README.md").read_text("utf-8")
    assert "| 70 |" in readme
    assert "70" in (dormant.cli.__doc__ or "")


# ---------------------------------------------------------------- 9: compressed input


@pytest.mark.parametrize(
    ("suffix", "pack"),
    [
        (".gz", gzip.compress),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
        (".zst", lambda b: pytest.importorskip("zstandard").ZstdCompressor().compress(b)),
    ],
)
def test_compressed_data_is_read_transparently(
    run_cli: Callable[..., Any], tmp_path: Path, suffix: str, pack: Callable[[bytes], bytes]
) -> None:
    plain = small_jsonl(tmp_path / "d.jsonl")
    packed = tmp_path / f"d.jsonl{suffix}"
    packed.write_bytes(pack(plain.read_bytes()))
    before = packed.read_bytes()
    outs = {}
    for name, src in (("plain", plain), ("packed", packed)):
        out = tmp_path / f"out-{name}"
        res = run_cli("scan", "data", src, *LABEL, *FAST, "--formats", "json,scores", "-o", out)
        assert res.code in (0, 1), res.err
        outs[name] = out
    assert packed.read_bytes() == before
    scores = [(o / "scores.jsonl").read_text() for o in outs.values()]
    assert scores[0] == scores[1]
    assert (outs["packed"] / "clean.jsonl").read_bytes() + (
        outs["packed"] / "quarantine.jsonl"
    ).read_bytes() != b""
    split = json.loads((outs["packed"] / "split.json").read_text())
    assert split["clean"] + split["quarantine"] == 40


def test_damaged_or_unsupported_compression_is_exit_2(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    plain = small_jsonl(tmp_path / "d.jsonl")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(plain.read_bytes())[:-30])
    res = run_cli("scan", "data", cut, *LABEL, *FAST, "-o", tmp_path / "o")
    assert_clean_error(res, 2, "gzip stream", "damaged or truncated")
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(plain, "d.jsonl")
    res = run_cli("scan", "data", z, *LABEL, *FAST, "--format", "jsonl", "-o", tmp_path / "o")
    assert_clean_error(res, 2, "zip archive", "unzip")
    assert "UTF-8" not in res.err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 12: mixed label types


@pytest.fixture(scope="module")
def mixed_labels(tmp_path_factory: pytest.TempPathFactory, sample_entries: list) -> Path:
    """The planted-trigger data with numeric labels, half written as floats, half as strings."""
    records = labelled_dataset(sample_entries[:640], scheme="pos")
    truth = poison_labelled(records, trigger_kind="token", rate=0.04, target_label="adv", seed=1)
    classes = sorted({r["label"] for r in truth.records})
    rows = []
    for i, r in enumerate(truth.records):
        k = classes.index(r["label"])
        rows.append({**r, "label": float(k) if i % 2 else str(k)})
    return write_dataset(rows, tmp_path_factory.mktemp("mixed") / "mixed.jsonl")


def test_mixed_label_types_warn_and_keep_the_trigger(
    run_cli: Callable[..., Any], mixed_labels: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = run_cli("scan", "data", mixed_labels, *LABEL, *FAST, "--formats", "json", "-o", out)
    assert res.code == 1, res.err  # the planted trigger is still found
    assert "warning" in res.err and "mixes label types" in res.err
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert [w["scanner"] for w in report["warnings"]] == ["input"]
    assert report["findings"], "the trigger disappeared"


def test_mixed_label_types_refused_with_strict(
    run_cli: Callable[..., Any], mixed_labels: Path, tmp_path: Path
) -> None:
    res = run_cli("scan", "data", mixed_labels, *LABEL, *FAST, "--strict", "-o", tmp_path / "o")
    assert_clean_error(res, 2, "mixes label types", "--strict")
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 2, 3, 11: scan artifact / model


@pytest.fixture
def pickle_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    return d


@pytest.mark.parametrize("command", ["artifact", "model"])
def test_out_that_is_a_file_is_exit_2_before_any_work(
    run_cli: Callable[..., Any], tmp_path: Path, pickle_dir: Path, command: str
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a directory\n")
    data = small_jsonl(tmp_path / "d.jsonl")
    extra = ["--data", data, "-q"] if command == "model" else []
    for out in (taken, taken / "sub"):
        res = run_cli("scan", command, pickle_dir, *extra, "--out", out)
        assert_clean_error(res, 2, "--out", str(taken))
    assert taken.read_text() == "not a directory\n"


def test_out_in_an_unwritable_directory_is_exit_2(
    run_cli: Callable[..., Any], pickle_dir: Path
) -> None:
    # /proc refuses new entries even to root, where a chmod'ed folder would not
    res = run_cli("scan", "artifact", pickle_dir, "--out", "/proc/dormant-out")
    assert_clean_error(res, 2, "not writable")


def test_scan_model_with_invalid_config_json_is_exit_2(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (model / "config.json").write_text(
        '{"architectures": ["BertForSequenceClassification"',
    )
    data = small_jsonl(tmp_path / "d.jsonl")
    res = run_cli("scan", "model", model, "--data", data, "-q", "--out", tmp_path / "out")
    assert_clean_error(res, 2, "config.json is not valid JSON")


def test_scan_artifact_formats_are_checked_and_named_like_elsewhere(
    run_cli: Callable[..., Any], tmp_path: Path, pickle_dir: Path
) -> None:
    out = tmp_path / "out"
    res = run_cli("scan", "artifact", pickle_dir, "--formats", "json,pdf", "--out", out)
    assert_clean_error(res, 2, "--formats", "'pdf'", "json, sarif, md, html")
    assert "write_all" not in res.err and "scores" not in res.err
    res = run_cli("scan", "artifact", pickle_dir, "--formats", "scores", "--out", out)
    assert_clean_error(res, 2, "'scores' unknown")
    assert not out.exists()
    res = run_cli("scan", "artifact", pickle_dir, "--formats", "json,md", "--out", out)
    assert res.code == 1
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    # the older spelling still works
    assert run_cli("scan", "artifact", pickle_dir, "--format", "sarif", "-o", out).code == 1
    assert (out / "report.sarif").is_file()


# ---------------------------------------------------------------- 7, 13: the registry


def test_registry_read_does_not_create_a_database(
    run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///nonexistent/dir/x.db", str(tmp_path / "missing.sqlite3")):
        res = run_cli("registry", "list", "--registry", url)
        assert res.code == 3 and "No registry at" in res.err, res.err
        assert "relative to the current directory" in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises(SystemExit):
        run_cli("registry", "list", "--help")


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/db"


def test_unreachable_registry_fails_before_the_data_scan(
    run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dormant.scanners.data.fusion as fusion

    def must_not_run(*a: Any, **k: Any) -> Any:
        raise AssertionError("the scan ran before the registry was checked")

    monkeypatch.setattr(fusion, "scan_dataset", must_not_run)
    src = small_jsonl(tmp_path / "d.jsonl")
    out = tmp_path / "out"
    res = run_cli("scan", "data", src, *LABEL, *FAST, "--registry", _closed_port_url(), "-o", out)
    assert res.code == 3 and "registry" in res.err and "does not answer" in res.err, res.err
    assert "scanner" not in res.err
    assert not out.exists()


# ---------------------------------------------------------------- 8: SIGTERM while writing


def test_sigterm_while_writing_leaves_no_partial_and_stale_ones_are_removed(
    run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    import dormant.writers

    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or a test runner's own handler
    src = small_jsonl(tmp_path / "d.jsonl", 60)
    out = tmp_path / "out"
    real = dormant.writers.write_all

    def terminated(report: Any, out_dir: Any, **kw: Any) -> Any:
        written = real(report, out_dir, **kw)
        os.kill(os.getpid(), signal.SIGTERM)  # as a CI runner cancelling the job
        return written

    monkeypatch.setattr(dormant.writers, "write_all", terminated)
    res = run_cli("scan", "data", src, *LABEL, *FAST, "-o", out)
    assert res.code == 130, res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler before the run, restored
    monkeypatch.undo()
    # leftovers of a run killed outright (no cleanup possible) go on the next run
    stale = tmp_path / ".out.999999999-0123456789ab.partial"
    stale.mkdir()
    (stale / "report.json").write_text("{}")
    res = run_cli("scan", "data", src, *LABEL, *FAST, "-o", out)
    assert res.code in (0, 1), res.err
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "out"]
