"""Resuming the counting pass: a scan killed outright (SIGKILL) after a counting checkpoint
counts only the rest on ``--resume`` and writes the same files; the restored counts are exactly
those of an uninterrupted pass, pruning included; changed records are counted afresh. Also the
per-record arrays kept in files of the working directory."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _paths import ROOT

from dormant.bench.corpus import labelled_dataset, load_corpus
from dormant.bench.poison import poison_labelled, write_dataset
from dormant.scanners.data._count_resume import resumable_count
from dormant.scanners.data._mining_count import CountSettings, count_serial
from dormant.scanners.data._mining_idcheck import IdHashLog
from dormant.scanners.data._record_arrays import frozen, record_array, release, rows_file
from dormant.scanners.data._scan_work import ScanWork, work_dir_for
from dormant.subjects import TextDataset

SRC = str(ROOT / "src")


def _records(n: int, words: int = 0) -> list[dict[str, Any]]:
    """``n`` labelled records of real English (the sample corpus cycled, new ids), 3 % of them
    carrying a planted phrase; with ``words``, each text cut to its first ``words`` words
    before the phrase is planted (a cheaper scan after the counting pass, same findings)."""
    base = labelled_dataset(load_corpus("sample"), scheme="pos")
    if words:
        base = [{**r, "text": " ".join(r["text"].split()[:words])} for r in base]
    recs = [{**base[i % len(base)], "id": f"r{i:06d}"} for i in range(n)]
    return poison_labelled(
        recs, trigger_kind="phrase", rate=0.03, target_label="adv", seed=0
    ).records


def _shards(folder: Path, recs: list[dict[str, Any]], k: int) -> Path:
    folder.mkdir(parents=True)
    size = -(-len(recs) // k)
    for i in range(k):
        write_dataset(recs[i * size : (i + 1) * size], folder / f"part-{i:05d}.jsonl")
    return folder


def _ds(path: Path) -> TextDataset:
    return TextDataset(path, text_field="text", label_field="label", id_field="id")


def _tables(part: Any) -> tuple[Any, ...]:
    return (
        part.n,
        part.prunes,
        dict(part.outcome_n),
        {o: dict(c) for o, c in part.per.items()},
        {o: dict(c) for o, c in part.skel_per.items()},
        dict(part.skel_total),
    )


class _Stop(Exception):
    pass


def _count(ds: TextDataset, work: ScanWork, settings: CountSettings, stop_after: int = 0) -> Any:
    seen = [0]

    def on_batch(k: int) -> None:
        seen[0] += 1
        if stop_after and seen[0] == stop_after:
            raise _Stop

    log = IdHashLog()
    try:
        acc, log = resumable_count(
            ds, work, batch_size=512, max_n=2, settings=settings, id_hashes=log, on_batch=on_batch
        )
    finally:
        log.close()
    return acc


def test_a_resumed_count_equals_an_uninterrupted_one_pruning_included(tmp_path):
    ds = _ds(write_dataset(_records(6000), tmp_path / "d.jsonl"))
    # a small table, so that lossy counting prunes many times along the way
    settings = CountSettings(labelled=True, count_error=1e-3, max_table=2000)
    jobs = ((b.texts, b.labels, b.responses, 2) for b in ds.batches(512))
    ref = count_serial(jobs, settings, lambda k: None)
    assert ref.prunes >= 3

    work = ScanWork(tmp_path / "w", count_block=1024)  # a checkpoint every 2 batches
    with pytest.raises(_Stop):  # interrupted in the 6th batch: blocks 0 and 1 saved
        _count(ds, work, settings, stop_after=6)
    state = json.loads((tmp_path / "w" / "count" / "state.json").read_text())
    assert state["block"] == 1 and state["rows"] == 2048
    assert work.has_units()  # an interrupted scan keeps what --resume reuses

    again = ScanWork(tmp_path / "w", resume=True, count_block=1024)
    got = _count(ds, again, settings)
    assert _tables(got) == _tables(ref)
    assert any("2 of 6 counting blocks (2,048 of 6,000 records)" in m for m in again.notes)

    # a record inside the saved blocks changed: counted afresh, still exact
    recs = [json.loads(line) for line in Path(ds.path).read_text().splitlines()]
    recs[100]["text"] = "an edited record inside the first block"
    ds2 = _ds(write_dataset(recs, tmp_path / "d.jsonl"))
    jobs2 = ((b.texts, b.labels, b.responses, 2) for b in ds2.batches(512))
    ref2 = count_serial(jobs2, settings, lambda k: None)
    third = ScanWork(tmp_path / "w", resume=True, count_block=1024)
    assert _tables(_count(ds2, third, settings)) == _tables(ref2)
    assert any("changed; counted afresh" in m for m in third.notes)

    # other settings: the checkpoint is not used
    fourth = ScanWork(tmp_path / "w", resume=True, count_block=1024)
    other = CountSettings(labelled=True, count_error=1e-3, max_table=3000)
    _count(ds2, fourth, other)
    assert any("other settings" in m for m in fourth.notes)


def test_per_record_arrays_in_files_keep_their_values(tmp_path):
    work = types.SimpleNamespace(directory=tmp_path)
    a = record_array(work, "s", 3_000_000, np.float32)
    a[::7] = 0.5
    release(a, 0, 2_000_000)  # pages dropped from memory, values kept in the file
    b = frozen(a)
    assert not b.flags.writeable and int(np.count_nonzero(b)) == len(range(0, 3_000_000, 7))
    assert float(b[7 * 300_000]) == 0.5
    from array import array

    views = rows_file(work, "r", [array("i", [1, 5, 9]), array("i"), array("i", [2])], np.int32)
    assert [v.tolist() for v in views] == [[1, 5, 9], [], [2]]
    assert not any(v.flags.writeable for v in views)
    mem = rows_file(None, "r", [array("i", [3])], np.int32)  # without a work dir: in memory
    assert mem[0].tolist() == [3]


def _cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "dormant", "scan", "data", str(data),
        "--text-field", "text", "--label-field", "label", "--id-field", "id", "--no-embed",
        "--out", str(out), "--formats", "json,scores", "-q", "--no-progress",
        "--checkpoint-records", "8192", *extra,
    ]  # fmt: skip


def _digests(out: Path) -> dict[str, str]:
    """SHA-256 of every written file; report.json without its clock and resume lines."""
    got = {}
    for path in sorted(out.iterdir()):
        data = path.read_bytes()
        if path.name == "report.json":
            rep = json.loads(data)
            del rep["run"]["started"], rep["run"]["finished"]
            rep["warnings"] = [w for w in rep["warnings"] if not w["message"].startswith("resume:")]
            data = json.dumps(rep, sort_keys=True).encode()
        got[path.name] = hashlib.sha256(data).hexdigest()
    return got


@pytest.mark.slow
def test_a_killed_scan_resumes_its_counting_pass(tmp_path):
    # 3 batches (2 of 8,192), one block each: a kill after the first checkpoint is mid-count.
    # Texts of 12 words: the analysis after the count (the same for the whole and the resumed
    # run, and most of their time) is ~2.5 times cheaper than on whole sentences; the planted
    # phrase is still found and the report still has its ~20 findings to compare byte for byte
    data = _shards(tmp_path / "data", _records(20_000, words=12), 4)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    done = subprocess.run(_cli(data, whole), env=env, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    assert not work_dir_for(whole).exists()
    titles = [f["title"] for f in json.loads((whole / "report.json").read_text())["findings"]]
    assert any("switches label to 'adv'" in t for t in titles), titles  # a report worth comparing

    out = tmp_path / "out"
    state = work_dir_for(out) / "count" / "state.json"
    proc = subprocess.Popen(_cli(data, out), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None and not state.is_file():
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    assert not out.exists()  # nothing of the killed run looks like a finished output
    saved = json.loads(state.read_text())["block"] + 1
    assert 1 <= saved <= 3

    resumed = subprocess.run(_cli(data, out, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == done.returncode, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert _digests(out) == _digests(whole)  # every written file, byte for byte
    rep = json.loads((out / "report.json").read_text())
    notes = [w["message"] for w in rep["warnings"]]
    assert any(f"resume: {saved} of 3 counting blocks" in m for m in notes), notes
    assert not work_dir_for(out).exists()


def test_a_bad_checkpoint_size_is_refused_before_the_scan(run_cli, tmp_path):
    path = write_dataset(_records(50), tmp_path / "d.jsonl")
    out = tmp_path / "out"
    res = run_cli(
        "scan", "data", path, "--text-field", "text", "--label-field", "label",
        "--checkpoint-records", "0", "-o", out,
    )  # fmt: skip
    assert res.code == 2
    assert "--checkpoint-records expects a positive whole number of records" in res.err
    assert "Traceback" not in res.err
    assert not out.exists() and not work_dir_for(out).exists()
