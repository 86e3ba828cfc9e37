"""The data scan with its per-record state on disk: the same report as in memory, and a scan
killed outright (SIGKILL) resumes from its finished batches to the same report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _paths import ROOT

from dormant.bench.corpus import instruction_dataset, labelled_dataset, load_corpus
from dormant.bench.poison import poison_instruction, poison_labelled, write_dataset
from dormant.errors import ConfigError
from dormant.scanners.data._record_shards import DiskRecords
from dormant.scanners.data._scan_work import ScanWork, work_dir_for
from dormant.scanners.data.fusion import scan_dataset
from dormant.subjects import TextDataset

SRC = str(ROOT / "src")


def _labelled(tmp: Path, n: int | None = None, words: int = 0) -> TextDataset:
    """The labelled sample (its first ``n`` records), 3 % with a planted phrase; with
    ``words``, each text cut to its first ``words`` words before the phrase is planted."""
    recs = labelled_dataset(load_corpus("sample"), scheme="pos")[:n]
    if words:
        recs = [{**r, "text": " ".join(r["text"].split()[:words])} for r in recs]
    truth = poison_labelled(recs, trigger_kind="phrase", rate=0.03, target_label="adv", seed=0)
    path = write_dataset(truth.records, tmp / "labelled.jsonl")
    return TextDataset(path, text_field="text", label_field="label", id_field="id")


def _instruction(tmp: Path) -> TextDataset:
    recs = instruction_dataset(load_corpus("sample")[:1500], seed=0)
    truth = poison_instruction(recs, trigger_kind="phrase", behaviour="egress", rate=0.03, seed=0)
    path = write_dataset(truth.records, tmp / "instruction.jsonl")
    return TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")


def _summary(report: Any) -> tuple[Any, ...]:
    findings = [(f.title, f.severity, f.score) for f in report.findings]
    flagged = sorted(r.record_id for r in report.records if r.flagged)
    return findings, flagged, report.extras["threshold"]


@pytest.mark.parametrize("corpus", ["labelled", "instruction"])
def test_records_streamed_to_disk_give_the_same_report(corpus, tmp_path):
    ds = _labelled(tmp_path) if corpus == "labelled" else _instruction(tmp_path)
    held = scan_dataset(ds, embed=False)
    work = ScanWork(tmp_path / "work")
    streamed = scan_dataset(ds, embed=False, work=work)
    assert isinstance(streamed.records, DiskRecords)
    assert held.findings and any(r.flagged for r in held.records)
    assert _summary(streamed) == _summary(held)
    assert len(streamed.records) == len(held.records)
    assert streamed.records[-1].record_id == held.records[-1].record_id
    # the per-record file a user reads is byte for byte the one written from memory
    held.write_record_scores(tmp_path / "held.jsonl")
    streamed.write_record_scores(tmp_path / "streamed.jsonl")
    assert (tmp_path / "held.jsonl").read_bytes() == (tmp_path / "streamed.jsonl").read_bytes()
    shards = sorted((tmp_path / "work" / "records").glob("part-*.jsonl"))
    assert len(shards) == -(-len(held.records) // 8192)
    assert not (tmp_path / "work" / "records.partial").exists()


def test_a_bad_work_dir_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        ScanWork(tmp_path / "f")
    with pytest.raises(ConfigError, match="unit_size"):
        ScanWork(tmp_path / "w", unit_size=0)


def _cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "dormant", "scan", "data", str(data),
        "--text-field", "text", "--label-field", "label", "--id-field", "id",
        "--out", str(out), "--formats", "json,scores", "-q", "--no-progress", *extra,
    ]  # fmt: skip


def _report(out: Path) -> tuple[Any, ...]:
    rep = json.loads((out / "report.json").read_text())
    findings = [(f["title"], f["severity"], f["score"]) for f in rep["findings"]]
    return findings, rep["summary"], (out / "scores.jsonl").read_bytes()


@pytest.mark.slow
def test_a_killed_scan_resumes_from_its_finished_batches(tmp_path):
    # texts of 12 words: embedding (most of each run's time) costs about half of whole
    # sentences; the planted phrase is still found, so there is a report worth comparing
    ds = _labelled(tmp_path, 1100, words=12)
    data = Path(ds.path)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    done = subprocess.run(_cli(data, whole), env=env, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    assert not work_dir_for(whole).exists()  # a finished scan leaves nothing to resume
    titles = [f[0] for f in _report(whole)[0]]
    assert any("switches label to 'adv'" in t for t in titles), titles

    out = tmp_path / "out"
    units = work_dir_for(out) / "units.jsonl"
    proc = subprocess.Popen(_cli(data, out), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if units.is_file() and units.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    assert not out.exists()  # nothing of the killed run looks like a finished output
    finished = units.read_text().count("\n")
    assert 1 <= finished <= 2  # 1,100 records are two units (1,024 and 76)

    resumed = subprocess.run(_cli(data, out, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == done.returncode, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert _report(out)[0] == _report(whole)[0]
    assert _report(out)[2] == _report(whole)[2]  # every record's score and flag
    rep = json.loads((out / "report.json").read_text())
    notes = [w["message"] for w in rep["warnings"]]
    assert any(f"{finished} of 2 embedding batches were read back" in m for m in notes)
    assert not work_dir_for(out).exists()


@pytest.mark.slow
def test_resume_redoes_a_batch_whose_content_changed(tmp_path):
    """A unit is reused only when its content hash matches; another encoder run starts afresh."""
    from dormant.adapters.encoder import TextEncoder
    from dormant.scanners.base import ScanContext

    recs = labelled_dataset(load_corpus("sample"), scheme="pos")[:300]
    path = write_dataset(recs, tmp_path / "d.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    enc = TextEncoder()
    ctx = ScanContext()
    first = ScanWork(tmp_path / "w", unit_size=100)
    a = first.embed(enc, ds, ctx).copy()
    assert first.embedded_units_ == 3 and first.resumed_units_ == 0
    again = ScanWork(tmp_path / "w", resume=True, unit_size=100)
    assert (again.embed(enc, ds, ctx) == a).all()
    assert again.resumed_units_ == 3 and again.embedded_units_ == 0
    recs[150] = {**recs[150], "text": "an edited record in the middle unit"}
    write_dataset(recs, path)
    ds2 = TextDataset(path, text_field="text", label_field="label", id_field="id")
    third = ScanWork(tmp_path / "w", resume=True, unit_size=100)
    b = third.embed(enc, ds2, ctx)
    assert third.resumed_units_ == 2 and third.embedded_units_ == 1
    assert (b[:100] == a[:100]).all() and not (b[150] == a[150]).all()
    fresh = ScanWork(tmp_path / "w", resume=True, unit_size=150)  # other units: afresh
    fresh.embed(enc, ds2, ctx)
    assert fresh.resumed_units_ == 0 and "started afresh" in fresh.notes[0]


def test_resume_with_ray_is_refused_before_any_work(run_cli, tmp_path):
    recs = labelled_dataset(load_corpus("sample", limit=40), scheme="pos")
    path = write_dataset(recs, tmp_path / "d.jsonl")
    out = tmp_path / "out"
    res = run_cli(
        "scan", "data", path, "--text-field", "text", "--label-field", "label",
        "--ray", "--resume", "-o", out,
    )  # fmt: skip
    assert res.code == 2
    assert "--resume is for the local scan" in res.err
    assert "Traceback" not in res.err
    assert not out.exists() and not work_dir_for(out).exists()
