"""Content digests of model directories and dataset files.

One digest names a subject everywhere in dormant (in every :class:`~dormant.findings.SubjectRef`,
report, signature record, BOM and registry row):

- a **file** is ``sha256:<hex>`` of its bytes — the value ``sha256sum FILE`` prints, and the
  value :meth:`dormant.subjects.dataset.Dataset.digest` gives a one-file dataset;
- a **directory** is ``sha256:<hex>`` of its *manifest text*: one line ``<hex>  <path>\\n`` per
  file (the ``sha256sum`` output format), paths relative and ``/``-separated, sorted by their
  UTF-8 bytes. So ``(cd DIR && find . -type f ! -path './.git/*' -printf '%P\\0' |
  LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum`` reproduces it with stock tools (for a
  tree without ignored files).

Speed: SHA-256 of one stream is sequential, so a single large file is hashed by one thread
while a second thread reads the next chunk into a spare buffer (``readinto`` and
``hashlib.update`` both release the GIL); a directory's files are hashed in parallel by a
thread pool. Paths that never change what a model does (``.git/``, ``.gitattributes``,
``.github/``, ``.gitignore``) and signature files (``model.sig``) are ignored, as
OpenSSF model-signing ignores them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, InputNotFoundError

#: Paths ignored by default inside a model directory (relative, ``/``-separated).
DEFAULT_IGNORED: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore", "model.sig")

#: Bytes read per chunk; two buffers of this size are in flight per file.
DEFAULT_CHUNK = 8 << 20


@dataclass(frozen=True)
class FileDigest:
    """One file of a manifest: relative ``/``-separated path, size in bytes, SHA-256 hex."""

    path: str
    size: int
    sha256: str

    @property
    def digest(self) -> str:
        """``sha256:<hex>``."""
        return "sha256:" + self.sha256

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class ManifestDiff:
    """Files added, removed and changed between an expected and an actual manifest."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        """One line naming every difference, e.g. ``changed: a.bin; added: x.py``."""
        parts = []
        for label, names in (
            ("changed", self.changed),
            ("added", self.added),
            ("removed", self.removed),
        ):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts) if parts else "no differences"

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


@dataclass(frozen=True)
class Manifest:
    """The digests of a model directory or a single file.

    Attributes
    ----------
    root:
        The path hashed.
    kind:
        ``file`` or ``directory``.
    files:
        One :class:`FileDigest` per file, sorted by path.
    digest:
        The subject digest (see the module docstring).
    """

    root: Path
    kind: str
    files: tuple[FileDigest, ...]
    digest: str

    @property
    def size(self) -> int:
        """Total bytes hashed."""
        return sum(f.size for f in self.files)

    def text(self) -> str:
        """The manifest in ``sha256sum`` format (what a directory digest is computed over)."""
        return manifest_text(self.files)

    def by_path(self) -> dict[str, FileDigest]:
        return {f.path: f for f in self.files}

    def diff(self, actual: Manifest) -> ManifestDiff:
        """What changed from this (expected) manifest to ``actual``."""
        return diff_digests(
            {f.path: f.sha256 for f in self.files}, {f.path: f.sha256 for f in actual.files}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "kind": self.kind,
            "digest": self.digest,
            "size": self.size,
            "files": [f.to_dict() for f in self.files],
        }


def diff_digests(expected: dict[str, str], actual: dict[str, str]) -> ManifestDiff:
    """Compare two ``{path: hex}`` maps."""
    return ManifestDiff(
        added=tuple(sorted(set(actual) - set(expected))),
        removed=tuple(sorted(set(expected) - set(actual))),
        changed=tuple(sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])),
    )


def manifest_text(files: Iterable[FileDigest]) -> str:
    """``<hex>  <path>`` lines sorted by the UTF-8 bytes of the path."""
    rows = sorted(files, key=lambda f: f.path.encode("utf-8"))
    return "".join(f"{f.sha256}  {f.path}\n" for f in rows)


def directory_digest(files: Iterable[FileDigest]) -> str:
    """The subject digest of a directory with these files."""
    return "sha256:" + hashlib.sha256(manifest_text(files).encode("utf-8")).hexdigest()


def hash_file(path: str | os.PathLike[str], *, chunk_size: int = DEFAULT_CHUNK) -> str:
    """SHA-256 hex digest of one file, reading the next chunk while hashing the current one.

    Parameters
    ----------
    path:
        The file.
    chunk_size:
        Bytes per read (two buffers of this size are allocated).

    Returns
    -------
    str
        64 lowercase hex characters, as ``sha256sum`` prints.
    """
    if not isinstance(chunk_size, int) or chunk_size < 4096:
        raise ConfigError(f"The 'chunk_size' parameter must be an int >= 4096. Got {chunk_size!r}.")
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        if size <= chunk_size:
            h.update(fh.read())
            return h.hexdigest()
        bufs = (bytearray(chunk_size), bytearray(chunk_size))
        views = (memoryview(bufs[0]), memoryview(bufs[1]))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dormant-read") as reader:
            i = 0
            pending = reader.submit(fh.readinto, bufs[0])
            while True:
                n = pending.result()
                if not n:
                    break
                current = i
                i ^= 1
                pending = reader.submit(fh.readinto, bufs[i])
                h.update(views[current][:n])
    return h.hexdigest()


def hash_path(
    path: str | os.PathLike[str],
    *,
    max_workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    ignore: Sequence[str] = DEFAULT_IGNORED,
    allow_symlinks: bool = False,
) -> Manifest:
    """Hash a file or every file of a directory into a :class:`Manifest`.

    Parameters
    ----------
    path:
        A model directory, a checkpoint file or a dataset file.
    max_workers:
        Files hashed at once (threads); default ``min(8, os.cpu_count())``.
    chunk_size:
        Bytes per read.
    ignore:
        Relative ``/``-separated paths (files or directories) skipped inside a directory.
    allow_symlinks:
        Follow symbolic links (hashing their targets' bytes). Off by default, as in
        model-signing, because a link can point outside the model; turn it on for a Hugging
        Face cache snapshot, whose files are links into ``blobs/``.

    Raises
    ------
    InputNotFoundError
        ``path`` does not exist.
    InputError
        ``path`` is neither a file nor a directory, holds no file, or holds a symbolic link
        while ``allow_symlinks`` is off.
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise InputNotFoundError(f"Cannot hash {root}: no such file or directory.")
    if max_workers is None:
        max_workers = min(8, os.cpu_count() or 1)
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigError(
            f"The 'max_workers' parameter must be a positive int. Got {max_workers!r}."
        )
    if root.is_symlink() and not allow_symlinks:
        raise InputError(
            f"Cannot hash {root}: it is a symbolic link; pass allow_symlinks=True "
            "(--allow-symlinks) to hash its target."
        )
    if root.is_file():
        hexd = hash_file(root, chunk_size=chunk_size)
        entry = FileDigest(path=root.name, size=root.stat().st_size, sha256=hexd)
        return Manifest(root=root, kind="file", files=(entry,), digest="sha256:" + hexd)
    if not root.is_dir():
        raise InputError(f"Cannot hash {root}: expected a regular file or a directory.")
    rels = list_files(root, ignore=ignore, allow_symlinks=allow_symlinks)
    if not rels:
        raise InputError(f"Cannot hash {root}: the directory holds no file to hash.")

    def one(rel: str) -> FileDigest:
        full = root / rel
        return FileDigest(rel, full.stat().st_size, hash_file(full, chunk_size=chunk_size))

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="dormant-hash") as pool:
        files = tuple(pool.map(one, rels))
    return Manifest(root=root, kind="directory", files=files, digest=directory_digest(files))


def list_files(
    root: Path, *, ignore: Sequence[str] = DEFAULT_IGNORED, allow_symlinks: bool = False
) -> list[str]:
    """Relative ``/``-separated paths of the files under ``root``, sorted, minus ``ignore``.

    With ``allow_symlinks``, a link is followed only to a target inside ``root``; a link out of
    the artifact (``up -> /``) or a directory link back to a folder already being walked
    (``loop -> .``) is an :class:`InputError` naming it, so a link can neither pull files of
    the system into a digest nor make the walk go round.
    """
    ignored = {p.strip("/") for p in ignore}
    out: list[str] = []
    real_root = Path(os.path.realpath(root))
    walked: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=allow_symlinks):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        walked.add(os.path.realpath(base))
        keep = []
        for d in sorted(dirnames):
            rel = prefix + d
            if rel in ignored:
                continue
            if (base / d).is_symlink():
                if not allow_symlinks:
                    raise InputError(
                        f"Cannot hash {root}: {rel} is a symbolic link; pass "
                        "allow_symlinks=True (--allow-symlinks) to follow links."
                    )
                target = _inside(root, real_root, base / d, rel)
                if str(target) in walked or target in Path(os.path.realpath(base)).parents:
                    raise InputError(
                        f"Cannot hash {root}: {rel} is a symbolic link loop (it points back "
                        f"to {target}, a folder already being read); remove the link."
                    )
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            rel = prefix + name
            if rel in ignored:
                continue
            full = base / name
            if full.is_symlink():
                if not allow_symlinks:
                    raise InputError(
                        f"Cannot hash {root}: {rel} is a symbolic link; pass "
                        "allow_symlinks=True (--allow-symlinks) to follow links."
                    )
                _inside(root, real_root, full, rel)
            if not full.is_file():
                raise InputError(f"Cannot hash {root}: {rel} is not a regular file.")
            out.append(rel)
    return sorted(out, key=lambda p: p.encode("utf-8"))


def _inside(root: Path, real_root: Path, link: Path, rel: str) -> Path:
    """The real target of ``link``; an :class:`InputError` when it is outside ``root``."""
    try:
        target = Path(os.path.realpath(link, strict=True))
    except (OSError, RuntimeError) as exc:
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40  # ELOOP
        raise InputError(
            f"Cannot hash {root}: {rel} is a "
            + ("symbolic link loop" if loop else "broken symbolic link")
            + f" ({exc}); remove or fix the link."
        ) from None
    if target != real_root and real_root not in target.parents:
        raise InputError(
            f"Cannot hash {root}: {rel} is a symbolic link to {target}, outside the artifact "
            f"({real_root}); only links inside it are followed with --allow-symlinks."
        )
    return target
