"""Property tests of the dataset readers and the report loader: any input gives a result or a
:class:`~dormant.errors.DormantError`, never another exception, never a hang, and the input
file is never modified.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _hostile import SUITE, json_values, record_lines, result_or_dormant_error
from hypothesis import given
from hypothesis import strategies as st

from dormant.errors import DormantError
from dormant.subjects.dataset import TextDataset

LABELLED = {"text_field": "text", "label_field": "label"}
INSTRUCTION = {"prompt_field": "prompt", "response_field": "response"}


def _read_all(path: Path, **kw: Any) -> Any:
    def run() -> Any:
        ds = TextDataset(path, **kw)
        return [(b.ids, b.texts, b.labels, b.responses) for b in ds.batches(batch_size=3)]

    return result_or_dormant_error(run)


def _check_file(name: str, data: bytes, **kw: Any) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        out = _read_all(path, **kw)
        assert path.read_bytes() == data, "the reader modified its input"
    return out


@SUITE
@given(
    lines=st.lists(record_lines(("id", "text", "label")), max_size=8),
    id_field=st.sampled_from([None, "id"]),
    strict=st.booleans(),
)
def test_jsonl_labelled(lines: list[bytes], id_field: str | None, strict: bool) -> None:
    out = _check_file(
        "d.jsonl", b"\n".join(lines), **LABELLED, id_field=id_field, strict_labels=strict
    )
    if not isinstance(out, DormantError):
        for _ids, texts, labels, _ in out:
            assert all(isinstance(t, str) for t in texts)
            assert labels is not None and all(isinstance(y, str) for y in labels)


@SUITE
@given(lines=st.lists(record_lines(("prompt", "response")), max_size=8))
def test_jsonl_instruction(lines: list[bytes]) -> None:
    _check_file("d.jsonl", b"\r\n".join(lines), **INSTRUCTION)


csv_cells = st.one_of(
    st.text(max_size=20),
    st.sampled_from(['"', '""', '"a,b"', "a\nb", "\r", "\x00", "\t", ",", "\ufeff"]),
)


@SUITE
@given(
    header=st.lists(st.sampled_from(["text", "label", "id", "", "text"]), max_size=4),
    rows=st.lists(st.lists(csv_cells, max_size=4), max_size=6),
    sep=st.sampled_from([",", "\t"]),
    junk=st.binary(max_size=30),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
)
def test_csv_and_tsv(
    header: list[str], rows: list[list[str]], sep: str, junk: bytes, encoding: str
) -> None:
    text = "\n".join(sep.join(r) for r in [header, *rows])
    data = text.encode(encoding, "replace") + junk
    _check_file("d.tsv" if sep == "\t" else "d.csv", data, **LABELLED)


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


VALID_PARQUET = _parquet_bytes([{"text": f"record {i}", "label": i % 2} for i in range(5)])


@SUITE
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(VALID_PARQUET) - 1), st.integers(0, 255)), max_size=6
    ),
    cut=st.integers(0, len(VALID_PARQUET)),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_parquet(flips: list[tuple[int, int]], cut: int, raw: bytes | None) -> None:
    if raw is not None:
        data = b"PAR1" + raw + b"PAR1"
    else:
        buf = bytearray(VALID_PARQUET)
        for at, value in flips:
            buf[at] = value
        data = bytes(buf[: max(cut, len(buf) - 64)])
    _check_file("d.parquet", data, **LABELLED)


@SUITE
@given(
    rows=st.lists(
        st.fixed_dictionaries({"text": json_values, "label": json_values}), min_size=1, max_size=4
    )
)
def test_parquet_with_any_column_types(rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    try:
        data = _parquet_bytes(rows)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        return  # pyarrow cannot write these: nothing to read
    _check_file("d.parquet", data, **LABELLED)


@SUITE
@given(state=json_values, dataset_dict=st.one_of(st.none(), json_values))
def test_hugging_face_directory_metadata(state: Any, dataset_dict: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "hf"
        root.mkdir()
        (root / "state.json").write_text(json.dumps(state))
        if dataset_dict is not None:
            (root / "dataset_dict.json").write_text(json.dumps(dataset_dict))
        _read_all(root, **LABELLED, format="hf")


@SUITE
@given(data=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_report_loader(data: bytes) -> None:
    from dormant.report import load_report_json

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "report.json"
        path.write_bytes(data)
        out = result_or_dormant_error(lambda: load_report_json(path))
        assert path.read_bytes() == data
        assert isinstance(out, (dict, DormantError))


@pytest.mark.parametrize("n", [200_000])
def test_report_loader_deep_nesting(tmp_path: Path, n: int) -> None:
    from dormant.report import load_report_json

    path = tmp_path / "report.json"
    path.write_text("[" * n + "]" * n)
    with pytest.raises(DormantError, match="nested too deeply"):
        load_report_json(path)


@SUITE
@given(
    lines=st.lists(record_lines(("text", "label")), max_size=6),
    codec=st.sampled_from(["gzip", "bz2", "lzma"]),
    cut=st.one_of(st.none(), st.integers(0, 200)),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
)
def test_compressed_jsonl(
    lines: list[bytes], codec: str, cut: int | None, flips: list[tuple[int, int]]
) -> None:
    import importlib

    packed = bytearray(importlib.import_module(codec).compress(b"\n".join(lines)))
    for at, value in flips:
        packed[at % len(packed)] = value
    if cut is not None:
        packed = packed[: cut % (len(packed) + 1)]
    suffix = {"gzip": ".gz", "bz2": ".bz2", "lzma": ".xz"}[codec]
    _check_file(f"d.jsonl{suffix}", bytes(packed), **LABELLED)
