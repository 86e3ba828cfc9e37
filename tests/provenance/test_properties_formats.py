"""Property tests of the Keras, SavedModel, GGUF, ONNX and chat-template readers: any input
gives a result or a :class:`~dormant.errors.DormantError`, never another exception, never a
hang, and the input is never modified. Inputs are valid files mutated byte by byte, cut, or
extended, and raw bytes behind each format's magic."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from _hostile import SUITE, bounded, result_or_dormant_error
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("h5py")
pytest.importorskip("onnx")
pytest.importorskip("gguf")

from dormant.bench import model_files as mf
from dormant.bench._model_corpus import CHATML, MALICIOUS_TEMPLATES
from dormant.provenance._jinja_check import check_template
from dormant.provenance.serialization import FileScan, scan_file


def _samples() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as d:
        gguf = mf.gguf_file(Path(d) / "m.gguf", MALICIOUS_TEMPLATES["ssti-cycler"]).read_bytes()
        h5 = mf.h5_model(
            Path(d) / "m.h5", mf.legacy_config([mf.legacy_lambda(mf.lambda_bytecode())])
        ).read_bytes()
    lam = mf.keras3_lambda(mf.lambda_bytecode())
    return {
        "m.gguf": gguf,
        "m.h5": h5,
        "m.keras": mf.keras_zip(mf.keras3_config([mf._dense("d"), lam])),
        "saved_model.pb": mf.saved_model([*mf.SAFE_GRAPH, "ReadFile"], ("PyFunc",)),
        "keras_metadata.pb": mf.keras_metadata([mf._dense("d"), lam]),
        "m.onnx": mf.onnx_model(domain="x.y", op="Z", subgraph_location="../k"),
        "tokenizer_config.json": json.dumps(
            {"chat_template": [{"name": "x", "template": MALICIOUS_TEMPLATES["ssti-lipsum"]}]}
        ).encode(),
    }


SAMPLES = _samples()
#: The HDF5 reader starts a process per file: fewer cases for it keep the suite fast.
FAST = sorted(n for n in SAMPLES if n != "m.h5")


def _scan(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        out = result_or_dormant_error(lambda: scan_file(path, max_depth=3))
        assert path.read_bytes() == data, "the scanner modified its input"
    if isinstance(out, FileScan):
        assert all(i.title for i in out.issues)


mutations = {
    "flips": st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
    "cut": st.one_of(st.none(), st.integers(0, 1 << 20)),
    "tail": st.binary(max_size=16),
}


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
    buf = bytearray(data)
    for at, value in flips:
        buf[at % len(buf)] = value
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    return bytes(buf) + tail


@SUITE
@given(name=st.sampled_from(FAST), **mutations)
def test_mutated_model_files(
    name: str, flips: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    _scan(name, _mutate(SAMPLES[name], flips, cut, tail))


@SUITE.__class__(parent=SUITE, max_examples=8)
@given(**mutations)
def test_mutated_hdf5_files(flips: list[tuple[int, int]], cut: int | None, tail: bytes) -> None:
    _scan("m.h5", _mutate(SAMPLES["m.h5"], flips, cut, tail))


@SUITE
@given(
    magic=st.sampled_from([b"GGUF\x03\x00\x00\x00", b"GGUF\x01\x00\x00\x00", b"", b"\x0a"]),
    body=st.binary(max_size=300),
    name=st.sampled_from(FAST),
)
def test_raw_bytes_behind_each_magic(magic: bytes, body: bytes, name: str) -> None:
    _scan(name, magic + body)


@SUITE
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    "{{",
                    "}}",
                    "{%",
                    "%}",
                    "if",
                    "for",
                    "x",
                    ".__class__",
                    "|attr(",
                    "'",
                    "(",
                    ")",
                    CHATML[:40],
                    " in message.content ",
                    "{# ",
                    " #}",
                    "[",
                    "]",
                    "~",
                ]
            ),
            max_size=40,
        ).map("".join),
    )
)
def test_chat_template_checker(text: str) -> None:
    with bounded():
        hits = check_template(text)
    assert all(h.title for h in hits)
