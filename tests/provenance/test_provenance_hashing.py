"""Content digests: match sha256sum, name the subject everywhere, refuse what they cannot hash."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from dormant.errors import InputError, InputNotFoundError
from dormant.provenance import hash_file, hash_path


def test_file_digest_matches_sha256sum_across_chunk_boundaries(tmp_path):
    data = os.urandom(3 * 65536 + 17)
    f = tmp_path / "w.bin"
    f.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert hash_file(f, chunk_size=65536) == want
    assert hash_file(f) == want
    m = hash_path(f)
    assert m.kind == "file" and m.digest == "sha256:" + want
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True, check=True)
        assert out.stdout.split()[0] == want


def test_directory_digest_is_the_sha256sum_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.bin").write_bytes(b"bb")
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "model.sig").write_text("{}")
    m = hash_path(tmp_path, max_workers=2)
    assert [f.path for f in m.files] == ["b.bin", "sub/a.txt"]
    lines = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n"
        for rel, p in (("b.bin", tmp_path / "b.bin"), ("sub/a.txt", tmp_path / "sub/a.txt"))
    )
    assert m.text() == lines
    assert m.digest == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    # renaming a file changes the digest even though no content changed
    (tmp_path / "b.bin").rename(tmp_path / "c.bin")
    assert hash_path(tmp_path).digest != m.digest


def test_diff_names_changed_added_removed(tmp_path):
    (tmp_path / "a").write_text("1")
    (tmp_path / "b").write_text("2")
    before = hash_path(tmp_path)
    (tmp_path / "a").write_text("changed")
    (tmp_path / "b").unlink()
    (tmp_path / "c").write_text("new")
    diff = before.diff(hash_path(tmp_path))
    assert diff.changed == ("a",) and diff.removed == ("b",) and diff.added == ("c",)
    assert diff.describe() == "changed: a; added: c; removed: b"


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such file"):
        hash_path(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no file"):
        hash_path(empty)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "real").write_text("x")
    (tmp_path / "d" / "link").symlink_to(tmp_path / "d" / "real")
    with pytest.raises(InputError, match="symbolic link"):
        hash_path(tmp_path / "d")
    assert len(hash_path(tmp_path / "d", allow_symlinks=True).files) == 2
