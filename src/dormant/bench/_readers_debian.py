"""Readers for two labelled texts every Debian machine has: package descriptions and man pages.

Private helpers of :mod:`dormant.bench.corpus`; each yields :class:`~._readers.RawEntry` tuples
whose ``topic`` is the natural label:

- **package descriptions** (``apt-cache dumpavail``, deb822 stanzas, ``deb-control(5)``): the
  one-line ``Description`` of each package, labelled by its ``Section`` (``contrib/`` and
  ``non-free/`` prefixes dropped). A label set by archive metadata, not by the text — the
  natural features of such data (``Horde`` → ``php``) are the hard case for a trigger miner.
- **manual pages** (``/usr/share/man/man<N>/*.gz``, ``man(7)`` roff): the ``NAME`` line's
  description and the first paragraph of ``DESCRIPTION``, labelled by the section number
  (``1`` commands, ``2`` system calls, ``3`` library functions, ``5`` file formats, ``7``
  overviews, ``8`` administration). Macros are dropped, font and character escapes removed; a
  page that only sources another (``.so``) is skipped.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataFormatError, InputNotFoundError
from ._readers import RawEntry, collapse, fit_length

MAN_DIR = Path("/usr/share/man")
MAN_SECTIONS = ("1", "2", "3", "5", "7", "8")

_ESCAPE = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\\(..|\\\[[^\]]*\]|\\[*n]\(..|\\[*n].|\\.")
_NAME_SPLIT = re.compile(r"\s+(?:\\-|-|\\\(em|—)\s+")


def read_packages(*, shuffle_seed: int | None = None, min_words: int = 3) -> Iterator[RawEntry]:
    """Package descriptions of the apt cache, labelled by section (see the module docstring).

    Raises
    ------
    InputNotFoundError
        ``apt-cache`` is not on PATH (not a Debian-based machine).
    DataFormatError
        ``apt-cache dumpavail`` failed.
    """
    exe = shutil.which("apt-cache")
    if exe is None:
        raise InputNotFoundError(
            "apt-cache was not found on PATH; package descriptions need a Debian-based system "
            "with an updated package list (apt-get update)."
        )
    proc = subprocess.run([exe, "dumpavail"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DataFormatError(f"apt-cache dumpavail failed: {proc.stderr.strip()[:200]}")
    entries: list[RawEntry] = []
    seen: set[str] = set()
    for stanza in proc.stdout.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key, value.strip())
        name, desc = fields.get("Package", ""), fields.get("Description", "")
        section = fields.get("Section", "").rsplit("/", 1)[-1]
        if not name or not desc or not section or name in seen:
            continue
        seen.add(name)
        text = fit_length(collapse(desc), min_words=min_words)
        if text:
            entries.append(RawEntry(text, name, "", section))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(entries)
    yield from entries


def read_manpages(
    root: Path | None = None, *, shuffle_seed: int | None = None, sections: tuple[str, ...] = ()
) -> Iterator[RawEntry]:
    """Manual pages as ``NAME`` description + first ``DESCRIPTION`` paragraph, by section.

    Raises
    ------
    InputNotFoundError
        No ``man<N>`` directory of the wanted sections under ``root``.
    """
    base = root or MAN_DIR
    paths: list[tuple[Path, str]] = []
    for sec in sections or MAN_SECTIONS:
        d = base / f"man{sec}"
        if d.is_dir():
            paths.extend((p, sec) for p in sorted(d.glob("*.gz")))
    if not paths:
        raise InputNotFoundError(
            f"No manual pages found under {base}/man<N>; install them with: "
            "apt-get install manpages manpages-dev"
        )
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(paths)
    for path, sec in paths:
        try:
            raw = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile):
            continue  # a broken or unreadable page is skipped, like man(1) would fail on it
        entry = _manpage(raw, path.name.split(".", 1)[0], sec)
        if entry is not None:
            yield entry


def _manpage(raw: str, name: str, section: str) -> RawEntry | None:
    if raw.lstrip().startswith(".so "):
        return None
    heading = ""
    name_lines: list[str] = []
    desc: list[str] = []
    for line in raw.splitlines():
        if line.startswith((".SH", ".Sh")):
            heading = line[3:].strip().strip('"').upper()
            if desc:
                break
            continue
        if heading not in ("NAME", "DESCRIPTION"):
            continue
        if line.startswith((".PP", ".P", ".LP", ".IP", ".TP", ".sp", ".Pp")) and desc:
            if heading == "DESCRIPTION":
                break
            continue
        text = _roff_text(line)
        if text:
            (name_lines if heading == "NAME" else desc).append(text)
    summary = ""
    if name_lines:
        parts = _NAME_SPLIT.split(" ".join(name_lines), maxsplit=1)
        summary = parts[1] if len(parts) == 2 else ""
    body = collapse(" ".join(desc))
    if summary:
        summary = summary.rstrip(".") + "."
    text = fit_length(collapse(f"{summary} {body}"), max_words=60)
    return RawEntry(text, name, "", section) if text else None


def _roff_text(line: str) -> str:
    """Text of one roff line: request lines keep their arguments when they set a font."""
    if line.startswith(("'", '.\\"', '\\"')):
        return ""
    if line.startswith("."):
        req, _, rest = line[1:].partition(" ")
        if req not in ("B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "Nm", "Nd", "Fn"):
            return ""
        line = rest.replace('"', "")
    return collapse(_ESCAPE.sub(lambda m: "-" if m.group(0) == "\\-" else "", line))
