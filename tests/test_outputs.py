"""write_outputs: reports plus a clean / quarantine split, written atomically, input untouched.

The reports here are built from known flags (every 7th record flagged) so that every split can
be checked record by record; the scan itself is exercised in ``test_cli_data.py``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import dormant.writers
from dormant.bench.corpus import labelled_dataset
from dormant.bench.poison import write_dataset
from dormant.errors import ConfigError, DataFormatError
from dormant.outputs import REPORT_FORMATS, check_outputs, write_outputs
from dormant.report import RecordScore, Report
from dormant.subjects.dataset import TextDataset

LABELLED = {"text_field": "text", "label_field": "label", "id_field": "id"}
REPORT_FILES = {"report.json", "report.sarif", "report.md", "report.html", "scores.jsonl"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` with its hash and mtime; plus the entries beside ``root``."""
    snap = {
        str(p.relative_to(root)): (sha256(p), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    snap["<siblings>"] = (",".join(sorted(e.name for e in root.parent.iterdir())), 0)
    return snap


def flagged_report(ds: TextDataset, every: int = 7) -> Report:
    """A finished report over ``ds`` whose records ``0, every, 2*every, ...`` are flagged."""
    records = []
    for batch in ds.batches():
        for i, rid in enumerate(batch.ids, start=batch.start):
            hit = i % every == 0
            records.append(RecordScore(rid, 0.9 if hit else 0.1, hit, (("test", 0.5),)))
    return Report(subject=ds.ref(), records=records).finish()


@pytest.fixture(scope="module")
def records(sample_entries: list[Any]) -> list[dict[str, Any]]:
    return labelled_dataset(sample_entries[:120], scheme="pos")[:100]


@pytest.fixture
def jsonl(tmp_path: Path, records: list) -> TextDataset:
    return TextDataset(write_dataset(records, tmp_path / "in" / "data.jsonl"), **LABELLED)


def test_jsonl_split_keeps_lines_byte_for_byte(tmp_path: Path, jsonl: TextDataset) -> None:
    src = Path(jsonl.path)
    before = (sha256(src), src.stat().st_mtime_ns)
    report = flagged_report(jsonl)
    out = tmp_path / "out"
    paths = write_outputs(report, jsonl, out)

    assert {p.name for p in out.iterdir()} == REPORT_FILES | {
        "clean.jsonl",
        "quarantine.jsonl",
        "split.json",
    }
    assert all(p.parent == out and p.exists() for p in paths.values())
    lines = src.read_bytes().splitlines(keepends=True)
    flags = [r.flagged for r in report.records]
    clean = paths["clean"].read_bytes().splitlines(keepends=True)
    quarantine = paths["quarantine"].read_bytes().splitlines(keepends=True)
    assert clean == [ln for ln, f in zip(lines, flags, strict=True) if not f]
    assert quarantine == [ln for ln, f in zip(lines, flags, strict=True) if f]
    assert len(clean) + len(quarantine) == len(lines) == 100
    scores = [json.loads(x) for x in paths["scores"].read_text().splitlines()]
    assert {s["id"] for s in scores if s["flagged"]} == {json.loads(q)["id"] for q in quarantine}
    manifest = json.loads(paths["split"].read_text())
    assert manifest["records"] == 100
    assert (manifest["clean"], manifest["quarantine"]) == (len(clean), len(quarantine))
    assert manifest["input_digest"] == "sha256:" + before[0]
    assert manifest["files"]["quarantine"]["digest"] == "sha256:" + sha256(paths["quarantine"])
    assert (sha256(src), src.stat().st_mtime_ns) == before  # the input is only read


def test_csv_split_with_blank_lines_stays_aligned(tmp_path: Path, records: list) -> None:
    plain = write_dataset(records, tmp_path / "plain.csv", format="csv")
    lines = plain.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "gaps.csv"  # blank lines in the middle and at the end, as hand edits leave
    path.write_text("".join([*lines[:30], "\n", *lines[30:], "\n", "\n"]), encoding="utf-8")
    ds = TextDataset(path, **LABELLED)
    paths = write_outputs(flagged_report(ds), ds, tmp_path / "out", formats=("json",))
    with open(paths["quarantine"], encoding="utf-8", newline="") as fh:
        quarantined = [row["id"] for row in csv.DictReader(fh)]
    assert quarantined == [r["id"] for i, r in enumerate(records) if i % 7 == 0]
    with open(paths["clean"], encoding="utf-8", newline="") as fh:
        assert len(list(csv.DictReader(fh))) + len(quarantined) == 100


def test_tsv_split_keeps_every_column(tmp_path: Path, records: list) -> None:
    path = tmp_path / "d.tsv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["id", "text", "label", "source"])
        w.writerows([r["id"], r["text"], r["label"], "wordnet"] for r in records)
    ds = TextDataset(path, **LABELLED)
    paths = write_outputs(flagged_report(ds), ds, tmp_path / "out", formats=("json",))
    assert paths["quarantine"].name == "quarantine.tsv"
    with open(paths["quarantine"], encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert rows[1] == {**records[7], "source": "wordnet"}


@pytest.mark.parametrize("kind", ["parquet", "hf"])
def test_arrow_split_is_parquet_with_all_columns(tmp_path: Path, records: list, kind: str) -> None:
    import pyarrow.parquet as pq

    rows = [{**r, "n": i} for i, r in enumerate(records)]
    if kind == "parquet":
        path = write_dataset(rows, tmp_path / "d.parquet", format="parquet")
    else:
        import datasets

        datasets.disable_progress_bars()
        path = tmp_path / "hf"
        datasets.Dataset.from_list(rows).save_to_disk(str(path), num_shards=2)
    ds = TextDataset(path, **LABELLED)
    paths = write_outputs(flagged_report(ds), ds, tmp_path / "out", formats=("json",))
    quarantine = pq.read_table(paths["quarantine"]).to_pylist()
    clean = pq.read_table(paths["clean"])
    assert quarantine == [r for r in rows if r["n"] % 7 == 0]
    assert clean.num_rows + len(quarantine) == 100
    assert clean.column_names == ["id", "text", "label", "n"]


def test_byte_order_mark_line_is_split_like_the_others(tmp_path: Path, records: list) -> None:
    plain = write_dataset(records, tmp_path / "plain.jsonl")
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    ds = TextDataset(path, **LABELLED)
    paths = write_outputs(flagged_report(ds), ds, tmp_path / "out", formats=("json",))
    quarantine = paths["quarantine"].read_bytes().splitlines(keepends=True)
    assert quarantine[0] == path.read_bytes().splitlines(keepends=True)[0]  # row 0, with BOM
    assert len(quarantine) == 15


def test_a_rerun_replaces_the_previous_output_whole(tmp_path: Path, jsonl: TextDataset) -> None:
    out = tmp_path / "out"
    write_outputs(flagged_report(jsonl), jsonl, out)
    write_outputs(flagged_report(jsonl, every=3), jsonl, out, formats=("json",), split=False)
    assert {p.name for p in out.iterdir()} == {"report.json"}  # no stale files mixed in
    assert sorted(e.name for e in tmp_path.iterdir()) == ["in", "out"]  # no temporaries left


def test_unknown_formats_fail_before_anything_is_written(
    tmp_path: Path, jsonl: TextDataset
) -> None:
    for formats in (("json", "pdf"), ()):
        with pytest.raises(ConfigError, match="'formats' parameter"):
            write_outputs(flagged_report(jsonl), jsonl, tmp_path / "out", formats=formats)
    assert not (tmp_path / "out").exists()
    assert set(REPORT_FORMATS) == {"json", "sarif", "md", "html", "scores"}


def test_out_dir_holding_the_input_is_refused(tmp_path: Path, jsonl: TextDataset) -> None:
    data_dir = Path(jsonl.path).parent
    (data_dir / "notes.txt").write_text("mine")
    before = snapshot(data_dir)
    for out in (data_dir, tmp_path):  # the input's folder, and a folder above it
        with pytest.raises(ConfigError, match=r"holds the input .*--out"):
            write_outputs(flagged_report(jsonl), jsonl, out)
    assert snapshot(data_dir) == before


def test_out_dir_with_other_files_is_refused(tmp_path: Path, jsonl: TextDataset) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "summary.xlsx").write_text("a user's own file")
    (out / "plots").mkdir()
    before = snapshot(out)
    with pytest.raises(ConfigError, match=r"files dormant did not write \(plots, summary.xlsx\)"):
        check_outputs(jsonl, out)
    with pytest.raises(ConfigError, match="dormant did not write"):
        write_outputs(flagged_report(jsonl), jsonl, out)
    assert snapshot(out) == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        write_outputs(flagged_report(jsonl), jsonl, tmp_path / "afile")


def _complete_output(tmp_path: Path, ds: TextDataset) -> tuple[Path, dict]:
    out = tmp_path / "out"
    write_outputs(flagged_report(ds), ds, out)
    return out, snapshot(out)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_interrupted_write_leaves_no_partial_output(
    tmp_path: Path, jsonl: TextDataset, monkeypatch: pytest.MonkeyPatch, exc: Any
) -> None:
    real = dormant.writers.write_all

    def write_then_fail(report: Report, out_dir: Path, **kw: Any) -> Any:
        real(report, out_dir, formats=("json",))  # a file is already written when it breaks
        raise exc

    out, before = _complete_output(tmp_path, jsonl)
    monkeypatch.setattr(dormant.writers, "write_all", write_then_fail)
    with pytest.raises(type(exc) if isinstance(exc, OSError) else exc):
        write_outputs(flagged_report(jsonl, every=2), jsonl, out)
    assert snapshot(out) == before  # the earlier complete output is as it was
    fresh = tmp_path / "fresh"
    with pytest.raises(type(exc) if isinstance(exc, OSError) else exc):
        write_outputs(flagged_report(jsonl), jsonl, fresh)
    assert not fresh.exists()
    assert sorted(e.name for e in tmp_path.iterdir()) == ["in", "out"]


def test_input_changed_during_the_scan_fails_the_split(tmp_path: Path, jsonl: TextDataset) -> None:
    out, before = _complete_output(tmp_path, jsonl)
    report = flagged_report(jsonl)
    with open(jsonl.path, "a", encoding="utf-8") as fh:  # a record appended after the scan
        fh.write('{"id": "late", "text": "appended later", "label": "noun"}\n')
    with pytest.raises(DataFormatError, match="changed during the scan"):
        write_outputs(report, jsonl, out)
    assert snapshot(out) == before


def test_output_permissions_follow_the_umask(tmp_path: Path, jsonl: TextDataset) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        write_outputs(flagged_report(jsonl), jsonl, out, formats=("json",))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
