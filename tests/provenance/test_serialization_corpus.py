"""Malicious and benign serialization corpora, built here by hand; nothing is ever unpickled.

Every malicious file carries a payload that would create ``PWNED`` in the corpus directory
(or spawn a process that would). The tests check that each file is flagged, that the marker
never appears, and (with an audit hook) that no unpickling, ``os.system`` or process spawn
happened while scanning.
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dormant.findings import Severity
from dormant.provenance import scan_artifact, scan_file
from dormant.provenance._scan_ctx import TORCH_LEGACY_MAGIC

WATCHED = {
    "pickle.find_class",
    "os.system",
    "subprocess.Popen",
    "os.posix_spawn",
    "os.exec",
    "os.spawn",
    "os.fork",
    "ctypes.dlopen",
}
_EVENTS: list[str] = []
_WATCHING = [False]


def _hook(event: str, args: tuple[object, ...]) -> None:
    if _WATCHING[0] and event in WATCHED:
        _EVENTS.append(event)


sys.addaudithook(_hook)


# -- opcode helpers ------------------------------------------------------------------------


def u(s: str) -> bytes:
    """BINUNICODE."""
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def su(s: str) -> bytes:
    """SHORT_BINUNICODE."""
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def stack_global(module: str, name: str) -> bytes:
    return su(module) + su(name) + b"\x93"


def call1(callable_ops: bytes, arg_ops: bytes) -> bytes:
    """callable(arg) with REDUCE."""
    return callable_ops + arg_ops + b"\x85R"


def torch_zip(data_pkl: bytes, *, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/version", b"3\n")
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return buf.getvalue()


def npy_object(payload_pickle: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload_pickle


def safetensors_bytes(header: dict[str, object], data: bytes, *, raw: bytes | None = None) -> bytes:
    h = raw if raw is not None else __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    d = tmp_path_factory.mktemp("malicious")
    marker = d / "PWNED"
    sh = f"touch {marker}"
    py = f"open({str(marker)!r}, 'w').write('x')"
    P2, P4 = b"\x80\x02", b"\x80\x04"
    files: dict[str, bytes] = {
        # GLOBAL + REDUCE, protocol 0 (text) and 2
        "global_os_system_p0.pkl": b"cos\nsystem\n(" + b"S'" + sh.encode() + b"'\ntR.",
        "global_posix_system_p2.pkl": P2 + call1(b"cposix\nsystem\n", u(sh)) + b".",
        "global_subprocess_popen.pkl": P2
        + b"csubprocess\nPopen\n"
        + b"]("
        + u("sh")
        + u("-c")
        + u(sh)
        + b"e\x85R.",
        "builtins_exec.pkl": P2 + call1(b"cbuiltins\nexec\n", u(py)) + b".",
        "py2_builtin_eval.pkl": P2 + call1(b"c__builtin__\neval\n", u(py)) + b".",
        "getattr_import.pkl": P2
        + b"cbuiltins\ngetattr\n"
        + b"cbuiltins\n__import__\n"
        + u("os")
        + b"\x85R"
        + u("system")
        + b"\x86R"
        + u(sh)
        + b"\x85R.",
        # STACK_GLOBAL, protocol 4, directly and through the memo
        "stack_global.pkl": P4 + call1(stack_global("os", "system"), su(sh)) + b".",
        "stack_global_memo.pkl": P4
        + su("subprocess")
        + b"\x94"
        + b"0"
        + su("check_call")
        + b"\x94"
        + b"0"
        + b"h\x00h\x01\x93"
        + b"("
        + u("sh")
        + u("-c")
        + u(sh)
        + b"l\x85R.",
        "stack_global_dynamic.pkl": P4
        + call1(b"cbuiltins\nstr\n", su("os"))
        + su("system")
        + b"\x93"
        + su(sh)
        + b"\x85R.",
        "dotted_dunder.pkl": P4
        + call1(stack_global("torch", "_utils.__builtins__"), su("x"))
        + b".",
        "numpy_runstring.pkl": P4
        + stack_global("numpy.testing._private.utils", "runstring")
        + su(py)
        + b"}\x86R.",
        "torch_load_nested.pkl": P4 + call1(stack_global("torch", "load"), su("/tmp/x.pt")) + b".",
        # INST, OBJ, NEWOBJ + BUILD(__setstate__), EXT
        "inst.pkl": b"(S'" + sh.encode() + b"'\nios\nsystem\n.",
        "obj.pkl": b"(cos\nsystem\nS'" + sh.encode() + b"'\no.",
        "newobj_build_setstate.pkl": P2
        + b"cargparse\nNamespace\n)\x81"
        + b"N}"
        + u("__setstate__")
        + b"cos\nsystem\n"
        + b"s\x86b"
        + u(sh)
        + b"b.",
        "ext1.pkl": P2 + b"\x82\x01" + u(sh) + b"\x85R.",
        "ext2.pkl": P2 + b"\x83\x01\x02" + u(sh) + b"\x85R.",
        "ext4.pkl": P2 + b"\x84\x01\x02\x03\x04" + u(sh) + b"\x85R.",
        # broken streams still run what comes before the break
        "truncated.pkl": (P2 + call1(b"cos\nsystem\n", u(sh)) + b".")[:-1],
        "bad_opcode_after_payload.pkl": P2 + call1(b"cos\nsystem\n", u(sh)) + b"\xff.",
        "second_pickle.pkl": pickle.dumps({"ok": 1}, protocol=2)
        + P2
        + call1(b"cos\nsystem\n", u(sh))
        + b".",
        # names that do not say "pickle"
        "model.bin": b"cos\nsystem\n(S'" + sh.encode() + b"'\ntR.",
        "weights.txt": P2 + call1(b"cos\nsystem\n", u(sh)) + b".",
        "persistent_id.pkl": P2 + u("x") + b"Q.",
    }
    evil = P2 + call1(b"cos\nsystem\n", u(sh)) + b"."
    evil4 = P4 + call1(stack_global("subprocess", "call"), su(sh)) + b"."
    good_torch = io.BytesIO()
    import torch

    torch.save({"w": torch.ones(2)}, good_torch)
    files["torch_zip_evil.pt"] = torch_zip(evil4)
    files["nested_zip.zip"] = zip_of({"inner/model.pt": torch_zip(evil)})
    deep = torch_zip(evil)
    for i in range(6):
        deep = zip_of({f"level{i}.zip": deep})
    files["too_deep.zip"] = deep
    files["truncated_torch.pt"] = torch_zip(evil)[:-40]
    files["truncated_real_checkpoint.pt"] = good_torch.getvalue()[:-100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        dup = io.BytesIO()
        with zipfile.ZipFile(dup, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps({"ok": 1}, protocol=2))
            zf.writestr("archive/data.pkl", evil)
    files["duplicate_member.pt"] = dup.getvalue()
    files["polyglot_pickle_zip.pt"] = evil + good_torch.getvalue()
    crc = bytearray(torch_zip(evil))
    i = crc.index(b"cos\nsystem")
    crc[i + 1] = ord("O")  # 'cOs': the stored CRC-32 no longer matches
    files["bad_crc.pt"] = bytes(crc)
    files["object_array.npy"] = npy_object(evil)
    files["object_array.npz"] = zip_of({"arr_0.npy": npy_object(evil)})
    files["compressed.joblib"] = zlib.compress(evil)
    files["gzipped.pkl.gz"] = gzip.compress(evil)
    files["legacy_torch.pt"] = (
        TORCH_LEGACY_MAGIC
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"protocol_version": 1001}, protocol=2)
        + evil
        + pickle.dumps([], protocol=2)
    )
    # safetensors whose headers lie
    ok_hdr = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    files["st_short_data.safetensors"] = safetensors_bytes(ok_hdr, b"\0" * 8)
    files["st_long_data.safetensors"] = safetensors_bytes(ok_hdr, b"\0" * 32)
    files["st_size_mismatch.safetensors"] = safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 16]}}, b"\0" * 16
    )
    files["st_overlap.safetensors"] = safetensors_bytes(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        },
        b"\0" * 24,
    )
    files["st_gap.safetensors"] = safetensors_bytes(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
        },
        b"\0" * 24,
    )
    files["st_header_past_end.safetensors"] = struct.pack("<Q", 10_000) + b'{"a": 1}'
    files["st_duplicate_key.safetensors"] = safetensors_bytes(
        {},
        b"\0" * 8,
        raw=b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        b'"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
    )
    files["st_bad_dtype.safetensors"] = safetensors_bytes(
        {"w": {"dtype": "PYOBJ", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8
    )
    files["st_not_json.safetensors"] = safetensors_bytes({}, b"", raw=b"{not json")
    paths = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths[name] = d / name
    return marker, paths


WELL_FORMED = [
    "global_os_system_p0.pkl",
    "global_posix_system_p2.pkl",
    "global_subprocess_popen.pkl",
    "builtins_exec.pkl",
    "py2_builtin_eval.pkl",
    "getattr_import.pkl",
    "stack_global.pkl",
    "stack_global_memo.pkl",
    "stack_global_dynamic.pkl",
    "inst.pkl",
    "obj.pkl",
    "newobj_build_setstate.pkl",
    "ext1.pkl",
]


@pytest.mark.parametrize("name", WELL_FORMED)
def test_payload_pickles_are_valid_programs(corpus: tuple[Path, dict[str, Path]], name: str):
    # pickletools.dis parses without executing: the payloads are real, loadable pickles.
    pickletools.dis(corpus[1][name].read_bytes(), out=io.StringIO())


EXPECT_CRITICAL = {
    "global_os_system_p0.pkl": "os.system",
    "global_posix_system_p2.pkl": "posix.system",
    "global_subprocess_popen.pkl": "subprocess.Popen",
    "builtins_exec.pkl": "builtins.exec",
    "py2_builtin_eval.pkl": "builtins.eval",
    "getattr_import.pkl": "builtins.getattr",
    "stack_global.pkl": "os.system",
    "stack_global_memo.pkl": "subprocess.check_call",
    "dotted_dunder.pkl": "__builtins__",
    "numpy_runstring.pkl": "numpy.testing._private.utils.runstring",
    "torch_load_nested.pkl": "torch.load",
    "inst.pkl": "os.system",
    "obj.pkl": "os.system",
    "newobj_build_setstate.pkl": "os.system",
    "truncated.pkl": "os.system",
    "bad_opcode_after_payload.pkl": "os.system",
    "second_pickle.pkl": "os.system",
    "model.bin": "os.system",
    "weights.txt": "os.system",
    "torch_zip_evil.pt": "subprocess.call",
    "nested_zip.zip": "os.system",
    "polyglot_pickle_zip.pt": "os.system",
    "object_array.npy": "os.system",
    "object_array.npz": "os.system",
    "compressed.joblib": "os.system",
    "gzipped.pkl.gz": "os.system",
    "legacy_torch.pt": "os.system",
}


def _scan_all(paths: dict[str, Path]) -> dict[str, object]:
    _EVENTS.clear()
    _WATCHING[0] = True
    try:
        return {name: scan_file(p) for name, p in paths.items()}
    finally:
        _WATCHING[0] = False


def test_every_malicious_file_is_flagged_and_nothing_runs(corpus):
    marker, paths = corpus
    results = _scan_all(paths)
    assert not marker.exists(), "a payload ran during the scan"
    assert _EVENTS == [], f"the scan unpickled or spawned: {_EVENTS}"
    for name, res in results.items():
        worst = max((i.severity for i in res.issues), default=None, key=lambda s: s.rank)
        assert worst is not None, f"{name} was not flagged"
        if name == "persistent_id.pkl":
            assert worst is Severity.MEDIUM
        else:
            assert worst >= Severity.HIGH, f"{name}: only {worst}"
    for name, needle in EXPECT_CRITICAL.items():
        crit = [i for i in results[name].issues if i.severity is Severity.CRITICAL]
        assert any(needle in i.title for i in crit), (name, [i.title for i in results[name].issues])


def test_specific_fail_closed_reasons(corpus):
    _, paths = corpus
    res = _scan_all(paths)
    kinds = {name: {i.kind for i in r.issues} for name, r in res.items()}
    assert "dynamic-global" in kinds["stack_global_dynamic.pkl"]
    assert {"extension"} <= kinds["ext1.pkl"] and "extension" in kinds["ext4.pkl"]
    assert "malformed" in kinds["truncated.pkl"]
    assert "malformed" in kinds["bad_opcode_after_payload.pkl"]
    assert "too-deep" in kinds["too_deep.zip"]
    assert "unreadable" in kinds["truncated_torch.pt"]
    assert "unreadable" in kinds["truncated_real_checkpoint.pt"]
    assert "unreadable" in kinds["duplicate_member.pt"]
    assert "unreadable" in kinds["bad_crc.pt"]
    assert "polyglot" in kinds["polyglot_pickle_zip.pt"]
    assert "object-array" in kinds["object_array.npy"]
    for name in [n for n in paths if n.startswith("st_")]:
        assert kinds[name] == {"malformed"}, name
    msgs = " ".join(i.title for i in res["st_overlap.safetensors"].issues)
    assert "overlaps" in msgs
    nested = [i for i in res["nested_zip.zip"].issues if i.severity is Severity.CRITICAL]
    assert nested[0].member == "inner/model.pt!archive/data.pkl"


def test_report_for_malicious_directory(corpus):
    marker, paths = corpus
    report = scan_artifact(next(iter(paths.values())).parent)
    assert not marker.exists()
    assert report.exit_code() == 1
    assert report.max_severity() is Severity.CRITICAL
    cats = {f.category for f in report.findings}
    assert cats == {"unsafe-serialization"}
    f = next(f for f in report.findings if "stack_global.pkl" in f.title)
    assert f.subject.name.endswith("stack_global.pkl")
    assert f.subject.digest.startswith("sha256:") and f.evidence_value("global") == "os.system"
    data = report.to_dict()
    assert data["summary"]["findings"] == len(report.findings)


# -- benign corpus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import datetime

    import torch
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("benign")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2)
    )
    torch.save(net.state_dict(), d / "pytorch_model.bin")
    torch.save(net.state_dict(), d / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(
        {
            "epoch": 3,
            "params": {"p": torch.nn.Parameter(torch.ones(3))},
            "half": torch.zeros(2, dtype=torch.float16),
            "bf": torch.zeros(2, dtype=torch.bfloat16),
            "ints": torch.arange(5),
            "bools": torch.ones(2, dtype=torch.bool),
            "size": torch.Size([2, 3]),
            "names": ["a", "b"],
        },
        d / "checkpoint.pt",
    )
    save_file({"w": torch.randn(3, 3), "b": torch.zeros(3)}, d / "model.safetensors")
    save_file({"e": torch.zeros(0)}, d / "empty_tensor.safetensors", metadata={"format": "pt"})
    np.save(d / "floats.npy", np.random.default_rng(0).normal(size=(5, 4)))
    np.save(d / "ints_fortran.npy", np.asfortranarray(np.arange(12).reshape(3, 4)))
    np.save(d / "structured.npy", np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8")]))
    np.savez(d / "arrays.npz", a=np.arange(3), b=np.ones(2))
    np.savez_compressed(d / "arrays_c.npz", a=np.arange(3))
    plain = {
        "list": [1, 2.5, "three", None, True],
        "tuple": (1, (2, 3)),
        "set": {1, 2},
        "frozen": frozenset({"a"}),
        "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"),
        "complex": 1 + 2j,
        "big": 2**100,
        "text": "héllo \u200b",
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "nested": {"a": [{"b": {}}]},
        "array": np.arange(4.0),
    }
    for proto in range(6):
        (d / f"plain_p{proto}.pkl").write_bytes(pickle.dumps(plain, protocol=proto))
    (d / "config.json").write_text('{"model_type": "bert"}')
    (d / "README.md").write_text("# a model\n")
    return d


def test_benign_corpus_has_no_false_positive(benign):
    report = scan_artifact(benign)
    assert report.findings == [], [f.title for f in report.findings]
    formats = {Path(f["path"]).name: f["format"] for f in report.extras["files"]}
    assert formats["pytorch_model.bin"] == "zip"
    assert formats["legacy.pt"] == "pickle"
    assert formats["model.safetensors"] == "safetensors"
    assert formats["README.md"] == "unknown"
    assert all(f["complete"] for f in report.extras["files"])
    assert report.exit_code() == 0
