"""Property tests of the serialization scanners (pickle, zip, .npy, safetensors, compressed
streams) and of serve-model's OpenAI request parser: any input gives a result or a
:class:`~dormant.errors.DormantError` (a :class:`RequestError` 4xx for the parser), never
another exception, never a hang, and the input is never modified.

Files are built from valid samples mutated byte by byte, and from raw bytes behind each
format's magic, so that the cases reach past the first check of each reader.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import pickle
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from _hostile import SUITE, bounded, json_values, result_or_dormant_error
from hypothesis import given
from hypothesis import strategies as st

from dormant.errors import DormantError
from dormant.provenance.pickles import scan_pickle
from dormant.provenance.serialization import FileScan, scan_file


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    return buf.getvalue()


def _safetensors() -> bytes:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"a": "b"}}
    ).encode()
    return struct.pack("<Q", len(header)) + header + b"\x00" * 8


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


PICKLE = pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=4)
SAMPLES = {
    ".pkl": PICKLE,
    ".pt": _zip({"archive/data.pkl": PICKLE, "archive/data/0": b"\x00" * 16}),
    ".npy": _npy(),
    ".safetensors": _safetensors(),
    ".zip": _zip({"a/model.pkl": PICKLE, "inner.zip": _zip({"x.pkl": PICKLE})}),
    ".gz": gzip.compress(PICKLE),
    ".bin": pickle.dumps([1, 2, 3], protocol=2),
}


def _scan_bytes(name: str, data: bytes) -> FileScan | DormantError:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        out = result_or_dormant_error(lambda: scan_file(path, max_depth=3))
        assert path.read_bytes() == data, "the scanner modified its input"
    if isinstance(out, FileScan):
        assert all(i.title for i in out.issues)
    return out


@SUITE
@given(
    suffix=st.sampled_from(sorted(SAMPLES)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    tail=st.binary(max_size=16),
)
def test_mutated_valid_files(
    suffix: str, flips: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    buf = bytearray(SAMPLES[suffix])
    for at, value in flips:
        buf[at % len(buf)] = value
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    _scan_bytes(f"model{suffix}", bytes(buf) + tail)


MAGICS = [b"", b"\x80\x04", b"PK\x03\x04", b"\x93NUMPY\x01\x00", b"\x1f\x8b", b"BZh", b"c"]


@SUITE
@given(
    magic=st.sampled_from(MAGICS),
    body=st.binary(max_size=300),
    suffix=st.sampled_from([*sorted(SAMPLES), "", ".ckpt", ".joblib", ".dat"]),
)
def test_raw_bytes_behind_each_magic(magic: bytes, body: bytes, suffix: str) -> None:
    _scan_bytes(f"f{suffix}", magic + body)


tensor_entries = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from(["F32", "BF16", "I8", "BOOL", "F8_E4M3"]), json_values),
        "shape": st.one_of(st.lists(st.integers(-2, 2**70), max_size=4), json_values),
        "data_offsets": st.one_of(st.lists(st.integers(-1, 2**66), max_size=3), json_values),
    }
)
safetensors_headers = st.dictionaries(
    st.text(max_size=6), st.one_of(tensor_entries, json_values), max_size=3
)


@SUITE
@given(
    header=st.one_of(safetensors_headers, json_values, st.binary(max_size=80)),
    declared=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    payload=st.binary(max_size=64),
)
def test_safetensors_headers(header: Any, declared: int | None, payload: bytes) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if declared is None else declared
    _scan_bytes("m.safetensors", struct.pack("<Q", n) + raw + payload)


@SUITE
@given(
    names=st.lists(st.text(max_size=20), min_size=1, max_size=4),
    payloads=st.lists(st.sampled_from([PICKLE, b"", b"\x80\x05junk", _npy()]), max_size=4),
)
def test_zip_member_names_and_contents(names: list[str], payloads: list[bytes]) -> None:
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
            warnings.simplefilter("ignore")  # duplicate names are part of the test
            for name, data in zip(names, payloads or [b""], strict=False):
                zf.writestr(zipfile.ZipInfo(name or "x"), data)
    except (ValueError, UnicodeEncodeError):
        return  # zipfile itself refuses these names
    _scan_bytes("m.zip", buf.getvalue())


@SUITE
@given(data=st.binary(max_size=400), proto=st.sampled_from([b"", b"\x80\x02", b"\x80\x05"]))
def test_pickle_opcode_walker(data: bytes, proto: bytes) -> None:
    with bounded(), contextlib.suppress(DormantError):
        scan_pickle(proto + data)


# -- the OpenAI request parser of serve-model -------------------------------------------

messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.one_of(st.sampled_from(["system", "user", "assistant", "tool"]), json_values)},
        optional={
            "content": st.one_of(st.text(max_size=20), json_values),
            "tool_calls": json_values,
            "tool_call_id": json_values,
            "name": json_values,
        },
    ),
    max_size=4,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"messages": st.one_of(messages, json_values)},
        optional={
            "model": st.one_of(st.just("m"), json_values),
            "max_tokens": st.one_of(st.integers(-5, 5000), json_values),
            "max_completion_tokens": json_values,
            "temperature": st.one_of(st.floats(), json_values),
            "seed": st.one_of(st.integers(), json_values),
            "n": json_values,
            "tools": json_values,
            "tool_choice": json_values,
            "stream": json_values,
            "stream_options": json_values,
        },
    ),
)


@SUITE
@given(body=bodies)
def test_openai_request_parser(body: Any) -> None:
    from dormant.serve._http import RequestError
    from dormant.serve._request import parse_request

    before = copy.deepcopy(body)
    with bounded():
        try:
            parse_request(body, model_name="m", max_tokens_limit=1024)
        except RequestError as exc:
            assert 400 <= exc.status < 500 and exc.message
    assert body == before or body != body, "the parser modified the request"  # NaN != NaN
