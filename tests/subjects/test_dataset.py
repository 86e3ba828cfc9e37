"""TextDataset: every supported format reads the same records, and bad input fails with its place.

The records are real English (the dictionary sample shipped in the package), written in each
format the way a user's export would be: JSONL, CSV, TSV, Parquet and Hugging Face
``save_to_disk`` directories (a ``Dataset`` in two shards and a ``DatasetDict``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from dormant.bench.corpus import instruction_dataset, labelled_dataset
from dormant.bench.poison import write_dataset
from dormant.errors import (
    ConfigError,
    DataFormatError,
    DataValidationError,
    InputError,
    InputNotFoundError,
)
from dormant.subjects.dataset import TextDataset

N = 120
LABELLED = {"text_field": "text", "label_field": "label"}


def write_tsv(records: list[dict[str, Any]], path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(list(records[0]))
        for r in records:
            w.writerow(list(r.values()))
    return path


def save_hf(records: list[dict[str, Any]], path: Path, **splits: list[dict[str, Any]]) -> Path:
    """``Dataset.save_to_disk`` (two shards), or a ``DatasetDict`` when ``splits`` are given."""
    import datasets

    datasets.disable_progress_bars()
    if splits:
        dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
        dd.save_to_disk(str(path))
    else:
        datasets.Dataset.from_list(records).save_to_disk(str(path), num_shards=2)
    return path


@pytest.fixture(scope="module")
def records(sample_entries: list[Any]) -> list[dict[str, Any]]:
    recs = labelled_dataset(sample_entries[:200], scheme="pos")[:N]
    # a text with the characters exports get wrong: quotes, a comma, a tab, a newline, non-ASCII
    recs[7] = {**recs[7], "text": 'He said "café, naïve"\tthen left;\nsecond line — ok'}
    return recs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]) -> dict:
    d = tmp_path_factory.mktemp("formats")
    return {
        "jsonl": write_dataset(records, d / "data.jsonl"),
        "csv": write_dataset(records, d / "data.csv", format="csv"),
        "tsv": write_tsv(records, d / "data.tsv"),
        "parquet": write_dataset(records, d / "data.parquet", format="parquet"),
        "hf": save_hf(records, d / "hf"),
        "hf-dict": save_hf(records, d / "hfdict", train=records, test=records[:30]),
    }


def read_all(ds: TextDataset, batch_size: int = 8192) -> tuple[list, list, list | None]:
    ids: list[str] = []
    texts: list[str] = []
    labels: list[str] | None = None
    for b in ds.batches(batch_size):
        ids += b.ids
        texts += b.texts
        if b.labels is not None:
            labels = (labels or []) + b.labels
    return ids, texts, labels


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet", "hf", "hf-dict"])
def test_every_format_reads_the_same_records(fmt: str, files: dict, records: list) -> None:
    split = "train" if fmt == "hf-dict" else None
    ds = TextDataset(files[fmt], **LABELLED, id_field="id", split=split)
    assert ds.format == ("hf" if fmt.startswith("hf") else fmt)
    assert ds.kind == "labelled"
    ids, texts, labels = read_all(ds, batch_size=50)
    assert ids == [r["id"] for r in records]
    assert texts == [r["text"] for r in records]  # quotes, tab, newline, non-ASCII intact
    assert labels == [r["label"] for r in records]


def test_hf_dataset_in_shards_reads_in_order_and_digests_every_shard(files: dict) -> None:
    ds = TextDataset(files["hf"], **LABELLED)
    shards = ds.files()
    assert len(shards) == 2 and all(f.suffix == ".arrow" for f in shards)
    ids, _, _ = read_all(ds)
    assert ids == [str(i) for i in range(N)]  # row numbers continue across shards
    one = [hashlib.sha256(f.read_bytes()).hexdigest() for f in shards]
    manifest = hashlib.sha256("\n".join(one).encode()).hexdigest()
    assert ds.digest() == "sha256:" + manifest


def test_datasetdict_split_is_chosen_and_checked(files: dict) -> None:
    ids, _, _ = read_all(TextDataset(files["hf-dict"], **LABELLED, split="test"))
    assert len(ids) == 30
    with pytest.raises(ConfigError, match=r"several splits \(train, test\).*--split"):
        TextDataset(files["hf-dict"], **LABELLED).files()
    with pytest.raises(ConfigError, match=r"Split 'dev' not found.*available: train, test"):
        TextDataset(files["hf-dict"], **LABELLED, split="dev").files()


def test_row_numbers_are_the_ids_without_an_id_field(files: dict) -> None:
    for fmt in ("jsonl", "parquet"):
        ids, _, _ = read_all(TextDataset(files[fmt], **LABELLED))
        assert ids == [str(i) for i in range(N)]


def test_batches_stream_with_row_offsets(files: dict) -> None:
    ds = TextDataset(files["jsonl"], **LABELLED)
    batches = list(ds.batches(50))
    assert [len(b) for b in batches] == [50, 50, 20]
    assert [b.start for b in batches] == [0, 50, 100]
    with pytest.raises(ConfigError, match="batch_size"):
        next(ds.batches(0))


def test_non_string_ids_and_labels_become_strings(tmp_path: Path) -> None:
    rows = [{"id": 10 + i, "text": f"text number {i}", "label": i % 2 == 0} for i in range(4)]
    path = write_dataset(rows, tmp_path / "d.parquet", format="parquet")
    ids, _, labels = read_all(TextDataset(path, **LABELLED, id_field="id"))
    assert ids == ["10", "11", "12", "13"]
    assert labels == ["True", "False", "True", "False"]


def test_instruction_data_reads_prompts_and_responses(tmp_path: Path, sample_entries: list) -> None:
    recs = instruction_dataset(sample_entries[:40], seed=0)
    path = write_dataset(recs, tmp_path / "ins.jsonl")
    ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    assert ds.kind == "instruction" and ds.input_field == "prompt"
    (batch,) = list(ds.batches())
    assert batch.texts == [r["prompt"] for r in recs]
    assert batch.responses == [r["response"] for r in recs]
    assert batch.labels is None
    longest = max(len(r["response"]) for r in recs)
    tight = TextDataset(
        path, prompt_field="prompt", response_field="response", max_chars=longest - 1
    )
    with pytest.raises(DataValidationError, match=r"field 'response' is [\d,]+ characters long"):
        list(tight.batches())


def test_suffix_decides_the_format_unless_format_is_given(files: dict, tmp_path: Path) -> None:
    txt = tmp_path / "export.txt"
    txt.write_bytes(files["jsonl"].read_bytes())
    with pytest.raises(DataFormatError, match=r"'export.txt'.*\.jsonl.*--format"):
        TextDataset(txt, **LABELLED)
    assert len(read_all(TextDataset(txt, **LABELLED, format="jsonl"))[0]) == N
    with pytest.raises(ConfigError, match="'format' parameter must be one of"):
        TextDataset(txt, **LABELLED, format="xml")


def test_byte_order_mark_is_ignored(tmp_path: Path, records: list) -> None:
    bom = b"\xef\xbb\xbf"
    for name, fmt in (("d.jsonl", "jsonl"), ("d.csv", "csv")):
        plain = write_dataset(records[:10], tmp_path / f"plain-{name}", format=fmt)
        path = tmp_path / name
        path.write_bytes(bom + plain.read_bytes())
        ids, texts, _ = read_all(TextDataset(path, **LABELLED, id_field="id"))
        assert ids == [r["id"] for r in records[:10]]
        assert texts[0] == records[0]["text"]


def test_max_chars_is_inclusive(tmp_path: Path) -> None:
    rows = [{"text": "a" * 10, "label": "x"}, {"text": "b" * 11, "label": "y"}]
    path = write_dataset(rows, tmp_path / "d.jsonl")
    with pytest.raises(
        DataValidationError, match=r"line 2: field 'text' is 11 characters.*--max-chars"
    ):
        list(TextDataset(path, **LABELLED, max_chars=10).batches())
    assert len(read_all(TextDataset(path, **LABELLED, max_chars=11))[0]) == 2
    with pytest.raises(ConfigError, match="max_chars"):
        TextDataset(path, **LABELLED, max_chars=0)


def _jsonl(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(
        b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines)
    )
    return path


OK = '{"text": "a fine record", "label": "x"}'

# (file name, file lines, extra TextDataset args, error type, message pattern)
BAD_JSONL = [
    (
        "blank line counted",
        [OK, "", '{"text": "broken", "label"'],
        {},
        DataFormatError,
        r"line 3 is not valid JSON",
    ),
    (
        "non-utf8",
        [OK, b'{"text": "caf\xe9", "label": "x"}'],
        {},
        DataFormatError,
        r"line 2 is not valid UTF-8",
    ),
    ("array line", [OK, '["a", "x"]'], {}, DataFormatError, r"line 2 holds a JSON list"),
    (
        "missing text",
        [OK, '{"txt": "b", "label": "y"}'],
        {},
        DataFormatError,
        r"line 2: field 'text' is missing",
    ),
    (
        "text wrong type",
        [OK, '{"text": 5, "label": "y"}'],
        {},
        DataFormatError,
        r"line 2: field 'text' must be a string; got int 5",
    ),
    (
        "label null",
        [OK, '{"text": "b", "label": null}'],
        {},
        DataFormatError,
        r"line 2: field 'label' must be a label .*got NoneType",
    ),
    (
        "label list",
        [OK, '{"text": "b", "label": ["y"]}'],
        {},
        DataFormatError,
        r"line 2: field 'label' must be a label",
    ),
    (
        "id missing",
        ['{"id": "a", "text": "b", "label": "y"}', OK],
        {"id_field": "id"},
        DataFormatError,
        r"line 2: field 'id' is missing",
    ),
    (
        "id dict",
        ['{"id": {"k": 1}, "text": "b", "label": "y"}'],
        {"id_field": "id"},
        DataFormatError,
        r"line 1: field 'id' must be an id",
    ),
]


@pytest.mark.parametrize(
    ("lines", "extra", "exc", "pattern"),
    [c[1:] for c in BAD_JSONL],
    ids=[c[0] for c in BAD_JSONL],
)
def test_bad_jsonl_names_the_line_and_field(
    tmp_path: Path, lines: list, extra: dict, exc: type, pattern: str
) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", *lines)
    with pytest.raises(exc, match=pattern) as info:
        list(TextDataset(path, **LABELLED, **extra).batches())
    assert str(path) in str(info.value)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


def test_bad_csv_names_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,lab\nfirst,x\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 2: field 'label' is missing"):
        list(TextDataset(path, **LABELLED).batches())
    path.write_bytes(b"text,label\nfirst,x\ncaf\xe9,y\n")
    with pytest.raises(DataFormatError, match="not valid UTF-8"):
        list(TextDataset(path, **LABELLED).batches())


def test_bad_parquet_names_the_row_or_column(tmp_path: Path) -> None:
    rows = [{"text": "fine", "label": "x"}, {"text": None, "label": "y"}]
    path = write_dataset(rows, tmp_path / "d.parquet", format="parquet")
    with pytest.raises(DataFormatError, match=r"row 1: field 'text' must be a string"):
        list(TextDataset(path, **LABELLED).batches())
    with pytest.raises(DataFormatError, match=r"field 'category' not found; available fields: "):
        list(TextDataset(path, text_field="text", label_field="category").batches())
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataFormatError, match="cannot read as parquet"):
        list(TextDataset(broken, **LABELLED).batches())


def test_not_a_dataset_directory(tmp_path: Path, files: dict) -> None:
    with pytest.raises(DataFormatError, match="not a Hugging Face dataset saved with save_to_disk"):
        TextDataset(tmp_path, **LABELLED)
    state = json.loads((files["hf"] / "state.json").read_text())
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "state.json").write_text(json.dumps(state))  # lists arrow files that are not there
    with pytest.raises(
        DataFormatError, match=r"data file .*\.arrow listed in state.json is missing"
    ):
        TextDataset(copy, **LABELLED).files()


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="Dataset not found") as info:
        TextDataset(tmp_path / "nope.jsonl", **LABELLED)
    assert isinstance(info.value, FileNotFoundError)
    sock_path = tmp_path / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as sock:  # exists, but cannot be opened as a file
        sock.bind(str(sock_path))
        with pytest.raises(DataFormatError, match="Cannot read the dataset"):
            TextDataset(sock_path, **LABELLED)


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"text_field": "text", "prompt_field": "text"}, "not both"),
        ({}, "Name the field that holds the text"),
        ({"text_field": "text"}, r"needs label_field \(--label-field\)"),
        ({"prompt_field": "prompt"}, r"needs response_field \(--response-field\)"),
    ],
)
def test_field_settings_are_checked(files: dict, fields: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        TextDataset(files["jsonl"], **fields)


def test_digest_is_of_the_bytes_and_follows_edits(tmp_path: Path, records: list) -> None:
    path = write_dataset(records[:5], tmp_path / "d.jsonl")
    ds = TextDataset(path, **LABELLED)
    assert ds.digest() == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.ref().digest == ds.digest() and ds.ref().kind == "dataset"
    path.write_bytes(path.read_bytes() + b'{"text": "one more", "label": "x"}\n')
    assert TextDataset(path, **LABELLED).digest() != ds.digest()
