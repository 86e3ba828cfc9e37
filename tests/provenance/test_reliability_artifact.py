"""Hostile artifacts: archive member names that escape (zip-slip) and symbolic links that loop
or leave the artifact. Each test reproduces a defect found by trying bad inputs as a new user
would."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _paths import TESTS

from dormant.errors import InputError
from dormant.provenance.hashing import hash_path
from dormant.provenance.serialization import scan_file


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(zipfile.ZipInfo(n), b"harmless bytes\n")
    return path


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../evil", "climbs out"),
        ("/abs/evil2", "absolute path"),
        ("a\\..\\..\\evil3", "climbs out"),
        ("C:/Windows/evil4", "drive letter"),
    ],
)
def test_zip_member_escaping_the_folder_is_a_finding(tmp_path: Path, name: str, why: str) -> None:
    archive = _zip(tmp_path / "model.zip", ["ok/weights.bin", name])
    result = scan_file(archive)
    slips = [i for i in result.issues if i.kind == "path-traversal"]
    assert len(slips) == 1 and why in slips[0].title and "zip-slip" in slips[0].title
    assert slips[0].member == name


def test_clean_member_names_are_not_flagged(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "model.zip", ["a/b.bin", "a..b/c.bin", "x/..y"])
    assert [i for i in scan_file(archive).issues if i.kind == "path-traversal"] == []


def test_scan_artifact_reports_zip_slip_and_exits_1(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    archive = _zip(tmp_path / "model.zip", ["../../evil", "/abs/evil2"])
    before = archive.read_bytes()
    res = run_cli("scan", "artifact", archive, "--json")
    assert res.code == 1, res.err
    report = json.loads(res.out)
    titles = [f["title"] for f in report["findings"]]
    assert sum("zip-slip" in t for t in titles) == 2
    assert archive.read_bytes() == before
    assert not (tmp_path.parent / "evil").exists()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00" + b" " * 118)
    return d


def test_symlink_loop_is_named_a_loop(model_dir: Path) -> None:
    os.symlink(".", model_dir / "loop")
    with pytest.raises(InputError, match="loop"):
        hash_path(model_dir, allow_symlinks=True)


@pytest.mark.parametrize("target", ["/", "/etc/hostname"])
def test_symlink_out_of_the_artifact_is_refused(model_dir: Path, target: str) -> None:
    os.symlink(target, model_dir / "up")
    with pytest.raises(InputError, match="outside the artifact"):
        hash_path(model_dir, allow_symlinks=True)


def test_symlink_inside_the_artifact_is_followed(model_dir: Path) -> None:
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / "a.bin").write_bytes(b"x")
    os.symlink("sub", model_dir / "alias")
    os.symlink("sub/a.bin", model_dir / "b.bin")
    paths = [f.path for f in hash_path(model_dir, allow_symlinks=True).files]
    assert paths == ["alias/a.bin", "b.bin", "sub/a.bin", "weights.npy"]


def test_cli_names_the_loop_with_exit_2(run_cli: Callable[..., Any], model_dir: Path) -> None:
    os.symlink("..", model_dir / "parent")
    res = run_cli("scan", "artifact", model_dir, "--allow-symlinks")
    assert res.code == 2 and "outside the artifact" in res.err and "Traceback" not in res.err
    os.remove(model_dir / "parent")
    os.symlink(".", model_dir / "loop")
    res = run_cli("scan", "artifact", model_dir, "--allow-symlinks")
    assert res.code == 2 and "loop" in res.err


def test_zip_member_with_a_nul_cut_name_is_reported_not_a_crash(tmp_path: Path) -> None:
    # found by the property tests: zipfile cuts "\x00evil" to "", and ZipInfo.is_dir()
    # then raised IndexError
    archive = _zip(tmp_path / "model.zip", ["\x00evil", "ok.bin"])
    result = scan_file(archive)
    assert any("empty name" in i.title for i in result.issues)
    assert not result.complete


def test_zip_of_an_unknown_format_version_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    # found by the fuzz harness (fuzz/fuzz_serialization.py zip): zipfile raises
    # NotImplementedError("zip file version 23.7") when the archive is opened
    src = TESTS / "data" / "fuzz" / "zip-version-23.7.pt"
    result = scan_file(src)
    assert not result.complete
    assert any("zip file version" in i.title for i in result.issues)


@pytest.mark.parametrize(
    "data",
    [b"\x93NUMPY\x02etb*", b"\x93NUMPY\x03\x00\x01"],
    ids=["cut-v2-header", "cut-v3-header"],
)
def test_npy_with_a_cut_version_2_header_is_malformed_not_a_crash(
    tmp_path: Path, data: bytes
) -> None:
    # found by the fuzz harness (fuzz/fuzz_serialization.py npy): struct.error
    path = tmp_path / "w.npy"
    path.write_bytes(data)
    result = scan_file(path)
    assert not result.complete
    assert any("truncated" in i.title for i in result.issues)


def _safetensors(tmp_path: Path, header: bytes, payload: bytes = b"") -> Path:
    import struct

    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + payload)
    return path


@pytest.mark.parametrize(
    "header",
    [
        b'{"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}',  # unhashable dtype
        b'{"w": {"dtype": "F32", "shape": [' + b"99999999999999999999," * 30 + b"1], "
        b'"data_offsets": [0, 4]}}',  # a size no float holds
        b"[" * 100_000 + b"]" * 100_000,  # nesting json cannot read
    ],
    ids=["list-dtype", "huge-shape", "deep-json"],
)
def test_hostile_safetensors_headers_are_malformed_not_a_crash(
    tmp_path: Path, header: bytes
) -> None:
    result = scan_file(_safetensors(tmp_path, header, b"\x00" * 4))
    assert [i.kind for i in result.issues] == ["malformed"]
    assert not result.complete


@pytest.mark.parametrize("descr", ["',f4'", "'f4,(2'", "[('a', 'f4', 'x')]", "'O' * 3"])
def test_npy_with_a_dtype_numpy_cannot_parse_is_malformed_not_a_crash(
    tmp_path: Path, descr: str
) -> None:
    # found by the fuzz harness (target "any"): np.dtype(",f4") raises SyntaxError
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (6,), }}"
    header = header.ljust(118) + "\n"
    path = tmp_path / "w.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    result = scan_file(path)
    assert [i.kind for i in result.issues] in (["malformed"], ["object-array", "malformed"])


def test_zip_member_with_a_damaged_deflate_stream_is_unreadable_not_a_crash() -> None:
    # found by the fuzz harness (target "zip"): zlib.error "invalid stored block lengths"
    src = TESTS / "data" / "fuzz" / "zip-bad-deflate.pt"
    result = scan_file(src)
    assert not result.complete
    assert any("cannot be read" in i.title for i in result.issues)
