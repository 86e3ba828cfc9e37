"""``dormant scan data`` as a user runs it: formats, outputs, exit codes and bad input.

The data is real English (the dictionary sample shipped in the package) with a planted
backdoor from :mod:`dormant.bench.poison`: a rare token that switches labels to ``adv`` in 4% of
the records, so every check compares the scan with a known ground truth. Scans run with
``--no-embed`` (statistical pass only) except one small ``slow`` test with the packaged encoder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dormant.writers
from dormant.bench.corpus import instruction_dataset, labelled_dataset
from dormant.bench.poison import (
    PoisonedDataset,
    poison_instruction,
    poison_labelled,
    write_dataset,
)

LABEL = ["--text-field", "text", "--label-field", "label"]
INSTR = ["--prompt-field", "prompt", "--response-field", "response"]
FORMATS = ("jsonl", "csv", "tsv", "parquet", "hf")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(path: Path) -> list[tuple[str, str, int]]:
    """Name, hash and mtime of a file, or of every file under a directory."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [(str(p), sha256(p), p.stat().st_mtime_ns) for p in files]


def snapshot(root: Path) -> dict[str, Any]:
    """Every file under ``root`` (hash and mtime) and the names beside ``root``."""
    return {
        "files": fingerprint(root),
        "siblings": sorted(e.name for e in root.parent.iterdir()),
    }


def read_scores(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]


def flagged_ids(out: Path) -> set[str]:
    return {s["id"] for s in read_scores(out) if s["flagged"]}


def assert_one_line_error(res: Any, *patterns: str, code: int = 2) -> None:
    assert res.code == code, res.err
    assert "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("dormant: error: ")
    for pattern in patterns:
        assert re.search(pattern, lines[0]), (pattern, lines[0])
    assert res.out == ""


def dormant_script() -> str:
    """The installed ``dormant`` console script (beside this Python first)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("dormant", path=path)
    if exe is None:
        pytest.skip("the dormant console script is not installed (pip install -e .)")
    return exe


# ---------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Poisoned:
    truth: PoisonedDataset
    files: dict[str, Path]


def write_tsv(records: list[dict[str, Any]], path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(list(records[0]))
        w.writerows(list(r.values()) for r in records)
    return path


def save_to_disk(records: list[dict[str, Any]], path: Path, **splits: list) -> Path:
    import datasets

    datasets.disable_progress_bars()
    if splits:
        datasets.DatasetDict(
            {k: datasets.Dataset.from_list(v) for k, v in splits.items()}
        ).save_to_disk(str(path))
    else:
        datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory, sample_entries: list) -> Poisoned:
    """About 620 labelled records, 25 of them with the token trigger and the label ``adv``."""
    records = labelled_dataset(sample_entries[:640], scheme="pos")
    truth = poison_labelled(records, trigger_kind="token", rate=0.04, target_label="adv", seed=1)
    d = tmp_path_factory.mktemp("poisoned")
    files = {
        "jsonl": write_dataset(truth.records, d / "data.jsonl"),
        "csv": write_dataset(truth.records, d / "data.csv", format="csv"),
        "tsv": write_tsv(truth.records, d / "data.tsv"),
        "parquet": write_dataset(truth.records, d / "data.parquet", format="parquet"),
        "hf": save_to_disk(truth.records, d / "hf"),
    }
    return Poisoned(truth, files)


@dataclass(frozen=True)
class ProcessScan:
    proc: subprocess.CompletedProcess[str]
    out: Path
    input: Path
    before: list[tuple[str, str, int]]


@pytest.fixture(scope="module")
def process_scan(tmp_path_factory: pytest.TempPathFactory, poisoned: Poisoned) -> ProcessScan:
    """One real ``dormant scan data`` process on the poisoned JSONL, with an id field."""
    src = poisoned.files["jsonl"]
    before = fingerprint(src)
    out = tmp_path_factory.mktemp("process") / "out"
    cmd = [dormant_script(), "scan", "data", str(src), *LABEL, "--id-field", "id"]
    cmd += ["--no-embed", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    return ProcessScan(proc, out, src, before)


# ------------------------------------------------------------------- a real process


def test_process_exits_1_on_poisoned_data_and_summarises(
    process_scan: ProcessScan, poisoned: Poisoned
) -> None:
    proc = process_scan.proc
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    assert f"{len(poisoned.truth.records):,} records" in proc.stdout
    token = poisoned.truth.trigger.text
    assert f"Trigger '{token}' (token) switches label to 'adv'" in proc.stdout
    assert f"{poisoned.truth.n_poisoned} record(s) flagged" in proc.stdout
    assert str(process_scan.out / "report.html") in proc.stdout


def test_input_is_byte_identical_after_the_scan(process_scan: ProcessScan) -> None:
    assert fingerprint(process_scan.input) == process_scan.before  # same bytes, same mtime


def test_report_json_holds_the_finding(process_scan: ProcessScan, poisoned: Poisoned) -> None:
    report = json.loads((process_scan.out / "report.json").read_text())
    assert report["subject"]["digest"] == "sha256:" + sha256(process_scan.input)
    assert report["summary"]["max_severity"] == "high"
    assert report["summary"]["records"] == len(poisoned.truth.records)
    assert report["run"]["config"]["embed"] is False
    assert {s["scanner"] for s in report["skips"]} >= {"spectral-signature", "spectre"}
    top = report["findings"][0]
    assert top["scanner"] == "trigger-mining"
    token = poisoned.truth.trigger.text
    assert top["title"] == f"Trigger '{token}' (token) switches label to 'adv'"
    assert top["severity"] == "high"
    assert 0.75 <= top["score"] <= 1.0
    assert top["trigger"]["text"] == token and top["trigger"]["kind"] == "token"
    assert poisoned.truth.trigger_matches(top["trigger"]["text"])
    assert top["target"] == "label:adv" and top["locator"]["label"] == "adv"
    assert len(top["locator"]["record_ids"]) == poisoned.truth.n_poisoned
    evidence = {e["name"]: e["value"] for e in top["evidence"]}
    assert evidence["support"] == evidence["hits"] == poisoned.truth.n_poisoned
    assert evidence["p_value"] < 1e-6
    assert "mitre-atlas:AML.T0020" in top["mappings"]
    assert any(m.startswith("owasp-llm-2025:") for m in top["mappings"])
    for other in ("report.sarif", "report.md", "report.html"):
        assert (process_scan.out / other).stat().st_size > 0


def test_finding_record_ids_are_the_id_field_values(
    process_scan: ProcessScan, poisoned: Poisoned
) -> None:
    report = json.loads((process_scan.out / "report.json").read_text())
    assert set(report["findings"][0]["locator"]["record_ids"]) == poisoned.truth.poisoned_ids


def test_split_adds_up_and_quarantines_the_flagged(
    process_scan: ProcessScan, poisoned: Poisoned
) -> None:
    out = process_scan.out
    scores = read_scores(out)
    assert [s["id"] for s in scores] == [r["id"] for r in poisoned.truth.records]
    flagged = flagged_ids(out)
    assert flagged == poisoned.truth.poisoned_ids
    lines = process_scan.input.read_bytes().splitlines(keepends=True)
    clean = (out / "clean.jsonl").read_bytes().splitlines(keepends=True)
    quarantine = (out / "quarantine.jsonl").read_bytes().splitlines(keepends=True)
    assert len(clean) + len(quarantine) == len(lines)
    assert {json.loads(q)["id"] for q in quarantine} == flagged
    assert clean == [ln for ln in lines if json.loads(ln)["id"] not in flagged]  # byte for byte
    split = json.loads((out / "split.json").read_text())
    assert (split["records"], split["quarantine"]) == (len(lines), len(flagged))


def test_process_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "x"}\n{"text": "broken"\n', encoding="utf-8")
    out = tmp_path / "out"
    cmd = [dormant_script(), "scan", "data", str(bad), *LABEL, "--no-embed", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"dormant: error: {bad}: line 2 is not valid JSON")
    assert not out.exists()


# ------------------------------------------------------------------ formats and ids


def test_every_format_finds_the_same_trigger_and_records(
    run_cli: Callable[..., Any], poisoned: Poisoned, tmp_path: Path
) -> None:
    truth = poisoned.truth
    for fmt in FORMATS:
        src = poisoned.files[fmt]
        before = fingerprint(src)
        out = tmp_path / fmt
        res = run_cli(
            "scan", "data", src, *LABEL, "--id-field", "id", "--no-embed", "-q", "-o", out
        )
        assert (res.code, res.out, res.err) == (1, "", ""), fmt  # --quiet prints nothing
        top = json.loads((out / "report.json").read_text())["findings"][0]
        assert (top["trigger"]["text"], top["target"], top["severity"]) == (
            truth.trigger.text,
            "label:adv",
            "high",
        ), fmt
        assert flagged_ids(out) == truth.poisoned_ids, fmt
        split = json.loads((out / "split.json").read_text())
        assert split["clean"] + split["quarantine"] == len(truth.records), fmt
        assert split["quarantine"] == truth.n_poisoned, fmt
        assert fingerprint(src) == before, fmt
    assert (tmp_path / "hf" / "quarantine.parquet").exists()
    assert (tmp_path / "tsv" / "quarantine.tsv").exists()


def test_row_numbers_are_ids_without_an_id_field(
    run_cli: Callable[..., Any], poisoned: Poisoned, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = run_cli("scan", "data", poisoned.files["csv"], *LABEL, "--no-embed", "-q", "-o", out)
    assert res.code == 1
    records = poisoned.truth.records
    rows = {str(i) for i, r in enumerate(records) if r["id"] in poisoned.truth.poisoned_ids}
    assert [s["id"] for s in read_scores(out)] == [str(i) for i in range(len(records))]
    assert flagged_ids(out) == rows
    top = json.loads((out / "report.json").read_text())["findings"][0]
    assert set(top["locator"]["record_ids"]) == rows


def test_formats_option_and_no_split(
    run_cli: Callable[..., Any], poisoned: Poisoned, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["--formats", "json,sarif", "--no-split", "--fail-on", "never", "-o", out]
    res = run_cli("scan", "data", poisoned.files["parquet"], *LABEL, "--no-embed", *args)
    assert res.code == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.sarif"]
    assert "1 finding(s), max severity high" in res.out
    sarif = json.loads((out / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]


# ------------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(("fail_on", "code"), [("never", 0), ("critical", 0), ("medium", 1)])
def test_fail_on_threshold(
    run_cli: Callable[..., Any], poisoned: Poisoned, tmp_path: Path, fail_on: str, code: int
) -> None:
    # a labelled-data trigger is "high"; "critical" is kept for security behaviours
    args = [*LABEL, "--no-embed", "-q", "--fail-on", fail_on, "-o", tmp_path / "out"]
    assert run_cli("scan", "data", poisoned.files["jsonl"], *args).code == code


def test_instruction_backdoor_is_critical(
    run_cli: Callable[..., Any], sample_entries: list, tmp_path: Path
) -> None:
    records = instruction_dataset(sample_entries[:500], seed=0)
    truth = poison_instruction(records, trigger_kind="phrase", rate=0.05, behaviour="egress")
    src = write_dataset(truth.records, tmp_path / "instr.jsonl")
    out = tmp_path / "out"
    args = [*INSTR, "--id-field", "id", "--no-embed", "--fail-on", "critical", "-o", out]
    res = run_cli("scan", "data", src, *args)
    assert res.code == 1
    assert "[critical] Trigger 'all things considered' (phrase)" in res.out
    top = json.loads((out / "report.json").read_text())["findings"][0]
    assert top["target"] == truth.target and top["locator"]["behaviour"] == truth.target
    assert flagged_ids(out) == truth.poisoned_ids


@pytest.mark.parametrize("kind", ["labelled", "instruction"])
def test_clean_data_exits_0_without_high_findings(
    run_cli: Callable[..., Any], sample_entries: list, tmp_path: Path, kind: str
) -> None:
    entries = sample_entries[2000:2600]
    if kind == "labelled":
        src = write_dataset(labelled_dataset(entries, scheme="pos"), tmp_path / "clean.jsonl")
        fields = LABEL
    else:
        src = write_dataset(instruction_dataset(entries, seed=1), tmp_path / "clean.jsonl")
        fields = INSTR
    out = tmp_path / "out"
    res = run_cli("scan", "data", src, *fields, "--no-embed", "--fail-on", "high", "-o", out)
    assert res.code == 0, res.out
    assert res.err == ""
    assert "0 record(s) flagged" in res.out
    report = json.loads((out / "report.json").read_text())
    assert not [f for f in report["findings"] if f["severity"] in ("high", "critical")]
    assert (out / "quarantine.jsonl").read_bytes() == b""
    assert (out / "clean.jsonl").read_bytes() == src.read_bytes()


# ------------------------------------------------------------------------- bad input


@dataclass(frozen=True)
class Fx:
    tmp: Path
    good: Path
    hf_dict: Path


def _jsonl(fx: Fx, *lines: str | bytes, name: str = "data.jsonl") -> Path:
    path = fx.tmp / name
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def _socket(fx: Fx) -> Path:
    path = fx.tmp / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the socket file stays; opening it for reading fails
    return path


def _corrupt_parquet(fx: Fx) -> Path:
    path = fx.tmp / "data.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    return path


def _csv(fx: Fx, text: str | bytes) -> Path:
    path = fx.tmp / "data.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _non_hf_dir(fx: Fx) -> Path:
    d = fx.tmp / "exported"
    d.mkdir()
    # a folder of data files is read as shards; one without any is neither
    (d / "notes.txt").write_text(OK + "\n")
    return d


OK = '{"id": "a", "text": "a short definition of a word", "label": "noun"}'
OK2 = '{"id": "b", "text": "to move quickly on foot", "label": "verb"}'
LONG = json.dumps({"id": "c", "text": "word " * 20, "label": "adj"})

# (case, build args from the fixture, patterns the one-line message must match)
BAD: list[tuple[str, Callable[[Fx], list[Any]], list[str]]] = [
    ("missing file", lambda fx: [fx.tmp / "nope.jsonl", *LABEL], [r"Dataset not found: .*nope"]),
    (
        "non-utf8 jsonl",
        lambda fx: [_jsonl(fx, OK, b'{"text": "caf\xe9", "label": "x"}'), *LABEL],
        [r"line 2 is not valid UTF-8"],
    ),
    (
        "non-utf8 csv",
        lambda fx: [_csv(fx, b"text,label\ncaf\xe9 noir,noun\n"), *LABEL],
        [r"data.csv: not valid UTF-8"],
    ),
    ("unreadable file", lambda fx: [_socket(fx), *LABEL], [r"Cannot read the dataset .*s.jsonl"]),
    ("corrupt parquet", lambda fx: [_corrupt_parquet(fx), *LABEL], ["cannot read as parquet"]),
    (
        "malformed jsonl line",
        lambda fx: [_jsonl(fx, OK, OK2, '{"text": "oops", "label": noun}'), *LABEL],
        [r"data.jsonl: line 3 is not valid JSON"],
    ),
    (
        "missing field jsonl",
        lambda fx: [_jsonl(fx, OK, '{"id": "b", "body": "x", "label": "verb"}'), *LABEL],
        [r"line 2: field 'text' is missing"],
    ),
    (
        "missing field csv",
        lambda fx: [_csv(fx, "text,lab\na word,noun\n"), *LABEL],
        [r"line 2: field 'label' is missing"],
    ),
    (
        "label field absent from the records",
        lambda fx: [_jsonl(fx, OK, OK2), "--text-field", "text", "--label-field", "category"],
        [r"line 1: field 'category' is missing"],
    ),
    (
        "wrong type",
        lambda fx: [_jsonl(fx, OK, '{"id": "b", "text": 42, "label": "verb"}'), *LABEL],
        [r"line 2: field 'text' must be a string; got int 42"],
    ),
    (
        "wrong label type",
        lambda fx: [_jsonl(fx, OK, '{"id": "b", "text": "x", "label": {"a": 1}}'), *LABEL],
        [r"line 2: field 'label' must be a label"],
    ),
    ("empty jsonl", lambda fx: [_jsonl(fx), *LABEL], [r"data.jsonl: the dataset has no records"]),
    ("empty csv", lambda fx: [_csv(fx, "text,label\n"), *LABEL], ["the dataset has no records"]),
    (
        "single class",
        lambda fx: [_jsonl(fx, OK, OK.replace('"a"', '"b"')), *LABEL],
        [r"every record has the label 'noun'", "two classes"],
    ),
    (
        "over --max-chars",
        lambda fx: [_jsonl(fx, OK, LONG), *LABEL, "--max-chars", "50"],
        [r"line 2: field 'text' is 100 characters long, over the limit of 50", "--max-chars"],
    ),
    (
        "duplicate ids",
        lambda fx: [_jsonl(fx, OK, OK2, OK, OK2), *LABEL, "--id-field", "id"],
        [r"2 record id\(s\) occur more than once \(e\.g\. 'a', 'b'\)"],
    ),
    (
        "unknown suffix",
        lambda fx: [_jsonl(fx, OK, OK2, name="data.txt"), *LABEL],
        [r"Cannot tell the format of 'data.txt'", "--format"],
    ),
    ("not a HF dataset", lambda fx: [_non_hf_dir(fx), *LABEL], ["not a Hugging Face dataset"]),
    (
        "several splits",
        lambda fx: [fx.hf_dict, *LABEL],
        [r"several splits \(train, test\)", "--split"],
    ),
    (
        "unknown split",
        lambda fx: [fx.hf_dict, *LABEL, "--split", "dev"],
        [r"Split 'dev' not found .*available: train, test"],
    ),
    (
        "text and prompt fields",
        lambda fx: [fx.good, *LABEL, "--prompt-field", "text"],
        ["not both", "--text-field", "--prompt-field"],
    ),
    (
        "no label field",
        lambda fx: [fx.good, "--text-field", "text"],
        [r"needs label_field \(--label-field\)"],
    ),
    (
        "bad --fail-on",
        lambda fx: [fx.good, *LABEL, "--fail-on", "bogus"],
        [r"'--fail-on'.*info, low, medium, high, critical.*'bogus'"],
    ),
    (
        "bad --formats",
        lambda fx: [fx.good, *LABEL, "--formats", "json,pdf"],
        [r"'--formats'.*json, sarif, md, html, scores.*'pdf' unknown"],
    ),
    ("bad --max-chars", lambda fx: [fx.good, *LABEL, "--max-chars", "0"], ["--max-chars"]),
]


@pytest.fixture(scope="module")
def hf_dict(tmp_path_factory: pytest.TempPathFactory, poisoned: Poisoned) -> Path:
    records = poisoned.truth.records
    d = tmp_path_factory.mktemp("hfdict") / "dd"
    return save_to_disk([], d, train=records[:60], test=records[60:90])


@pytest.mark.parametrize(("build", "patterns"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_clear_line_and_writes_nothing(
    run_cli: Callable[..., Any],
    tmp_path: Path,
    poisoned: Poisoned,
    process_scan: ProcessScan,
    hf_dict: Path,
    build: Callable[[Fx], list[Any]],
    patterns: list[str],
) -> None:
    outs = tmp_path / "outs"
    outs.mkdir()
    prev = outs / "prev"
    shutil.copytree(process_scan.out, prev)  # an earlier complete output
    before = snapshot(prev)
    fx = Fx(tmp_path, poisoned.files["jsonl"], hf_dict)
    args = build(fx)
    for out in (prev, outs / "new"):
        res = run_cli("scan", "data", *args, "--no-embed", "-o", out)
        assert_one_line_error(res, *patterns)
        assert snapshot(prev) == before  # untouched, and nothing new beside it
    assert not (outs / "new").exists()


def test_out_folder_holding_the_input_is_refused_before_scanning(
    run_cli: Callable[..., Any], poisoned: Poisoned, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    src = data / "train.jsonl"
    shutil.copy2(poisoned.files["jsonl"], src)
    before = snapshot(data)
    res = run_cli("scan", "data", src, *LABEL, "--no-embed", "-o", data)
    assert_one_line_error(res, r"Output directory .*data holds the input .*train.jsonl", "--out")
    assert snapshot(data) == before


# -------------------------------------------------------------------- interrupted writes


@pytest.mark.parametrize(
    ("exc", "code", "pattern"),
    [
        (KeyboardInterrupt(), 130, "interrupted; no output was left looking complete"),
        (OSError(28, "No space left on device"), 2, "cannot write the outputs .*No space left"),
    ],
    ids=["interrupt", "disk-full"],
)
def test_interrupted_write_leaves_earlier_output_intact(
    run_cli: Callable[..., Any],
    poisoned: Poisoned,
    process_scan: ProcessScan,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    code: int,
    pattern: str,
) -> None:
    real = dormant.writers.write_all

    def write_then_fail(report: Any, out_dir: Any, **kw: Any) -> Any:
        real(report, out_dir, formats=("json",))  # part of the output exists when it breaks
        raise exc

    monkeypatch.setattr(dormant.writers, "write_all", write_then_fail)
    prev = tmp_path / "prev"
    shutil.copytree(process_scan.out, prev)
    before = snapshot(prev)
    for out in (prev, tmp_path / "new"):
        res = run_cli(
            "scan", "data", poisoned.files["jsonl"], *LABEL, "--no-embed", "-q", "-o", out
        )
        assert_one_line_error(res, pattern, code=code)
    assert snapshot(prev) == before
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------- with embeddings


@pytest.mark.slow
def test_scan_with_embeddings_on_a_small_dataset(
    run_cli: Callable[..., Any], sample_entries: list, tmp_path: Path
) -> None:
    records = labelled_dataset(sample_entries[3000:3300], scheme="pos")
    assert len(records) <= 300
    truth = poison_labelled(records, trigger_kind="token", rate=0.08, target_label="adv", seed=1)
    src = write_dataset(truth.records, tmp_path / "small.jsonl")
    out = tmp_path / "out"
    res = run_cli("scan", "data", src, *LABEL, "--id-field", "id", "--no-progress", "-o", out)
    assert res.code == 1, res.err
    assert res.err == ""
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["config"]["embed"] is True
    assert report["errors"] == [] and report["run"]["partial"] is False
    assert truth.trigger_matches(report["findings"][0]["trigger"]["text"])
    # each representation scanner either scored every record or says why it was skipped
    ran = {k.removeprefix("score_") for k in read_scores(out)[0] if k.startswith("score_")}
    skipped = {s["scanner"]: s["message"] for s in report["skips"]}
    for name in ("spectral-signature", "activation-clustering", "spectre"):
        assert (name in ran) != bool(skipped.get(name)), name
        assert "disabled" not in skipped.get(name, "")
    assert truth.poisoned_ids <= flagged_ids(out)


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "five"])
def test_bad_fdr_is_one_clear_line(run_cli: Callable[..., Any], tmp_path: Path, value: str) -> None:
    src = write_dataset(
        [{"id": str(i), "text": f"word {i}", "label": "ab"[i % 2]} for i in range(20)],
        tmp_path / "d.jsonl",
    )
    out = tmp_path / "out"
    res = run_cli("scan", "data", src, *LABEL, "--no-embed", "--fdr", value, "-o", out)
    assert_one_line_error(res, r"--fdr expects a number strictly between 0 and 1", re.escape(value))
    assert not out.exists()
