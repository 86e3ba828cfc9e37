"""Read a retrieval corpus into passages: a folder of text/Markdown/HTML files, or JSONL.

A document file is split into paragraphs (blank-line separated; HTML block elements end a
paragraph), each a passage with the document path and its character offset there. A JSONL file
holds one passage per line (``{"id": ..., "text": ...}``, the text field set by ``text_field``);
its raw line is kept so that the clean/quarantine split copies it byte for byte. HTML is read
with the standard library's :class:`html.parser.HTMLParser` (no scripts run): the text of
comments and hidden elements is kept, because a retriever that indexes the page may see it and
an attacker hides instructions there; ``<script>`` and ``<style>`` bodies are dropped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ...errors import DataFormatError, DataValidationError, InputError, InputNotFoundError

#: document suffixes read from a folder
DOC_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: longest accepted file (bytes) and passage (characters)
MAX_FILE_BYTES = 64 << 20
_PARA_SPLIT = re.compile(r"\n[ \t]*\n+")
_BLOCK_TAGS = frozenset(
    (  # noqa: SIM905
        "p div br li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer pre "
        "blockquote dd dt"
    ).split()
)


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of a corpus.

    Attributes
    ----------
    id:
        Passage id: the JSONL ``id`` field (or the line number), or ``<doc>#<n>`` for a
        paragraph of a document file.
    doc:
        The document it comes from: a path relative to the corpus folder, or the JSONL file
        name (its ``doc`` field when present).
    text:
        The passage text as read.
    offset:
        Character offset of ``text`` in the document (0 for a JSONL line).
    raw:
        The JSONL line as read (``None`` for a document paragraph).
    """

    id: str
    doc: str
    text: str
    offset: int = 0
    raw: str | None = None


def load_passages(
    path: str | os.PathLike[str],
    *,
    text_field: str = "text",
    id_field: str = "id",
    doc_field: str = "doc",
) -> tuple[list[Passage], list[str]]:
    """Read the corpus at ``path``; return its passages and warnings (files skipped).

    Raises
    ------
    InputNotFoundError
        ``path`` does not exist.
    DataFormatError
        A file is binary or not UTF-8, a JSONL line is not a JSON object, or it lacks
        ``text_field`` (the message lists the fields it has).
    DataValidationError
        No passage was found (an empty folder, or only blank files), or passage ids repeat.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(
            f"Corpus not found: {p} (expected a folder of .txt/.md/.html files or a JSONL file "
            "of passages)."
        )
    warnings: list[str] = []
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        docs = [f for f in files if f.suffix.lower() in DOC_SUFFIXES]
        skipped = len(files) - len(docs)
        if skipped:
            warnings.append(
                f"{skipped} file(s) in {p} skipped: only {', '.join(DOC_SUFFIXES)} are read"
            )
        passages: list[Passage] = []
        for f in docs:
            passages.extend(_document(f, f.relative_to(p).as_posix()))
    elif p.suffix.lower() in JSONL_SUFFIXES or p.suffix.lower() == ".json":
        passages = list(_jsonl(p, text_field=text_field, id_field=id_field, doc_field=doc_field))
    elif p.suffix.lower() in DOC_SUFFIXES:
        passages = _document(p, p.name)
    else:
        raise DataFormatError(
            f"Cannot read {p}: expected a folder, a JSONL file ({', '.join(JSONL_SUFFIXES)}) or "
            f"a document ({', '.join(DOC_SUFFIXES)}); got the suffix {p.suffix or '(none)'!r}."
        )
    if not passages:
        raise DataValidationError(
            f"No passage found in {p}: the folder holds no non-empty .txt/.md/.html file, or "
            "the file has no text. Nothing to scan."
        )
    seen: set[str] = set()
    for ps in passages:
        if ps.id in seen:
            raise DataValidationError(
                f"Passage id {ps.id!r} occurs twice in {p}; ids must be unique (set --id-field "
                "to a unique field, or remove the duplicate)."
            )
        seen.add(ps.id)
    return passages, warnings


def passages_from(items: Iterable[object]) -> list[Passage]:
    """Passages from an in-memory sequence of :class:`Passage`, ``str`` or ``{"id","text"}``."""
    out: list[Passage] = []
    for i, item in enumerate(items):
        if isinstance(item, Passage):
            out.append(item)
        elif isinstance(item, str):
            out.append(Passage(id=str(i), doc="<memory>", text=item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            out.append(
                Passage(
                    id=str(item.get("id", i)),
                    doc=str(item.get("doc", "<memory>")),
                    text=item["text"],
                )
            )
        else:
            raise InputError(
                f"Passage {i} must be a str, a Passage or a dict with a str 'text'. Got "
                f"{type(item).__name__} instead."
            )
    if not out:
        raise DataValidationError("No passage given: the sequence is empty. Nothing to scan.")
    if len({ps.id for ps in out}) != len(out):
        raise DataValidationError("Passage ids must be unique; some repeat.")
    return out


def _read_text(f: Path) -> str:
    size = f.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataValidationError(
            f"{f} is {size:,} bytes; the longest accepted corpus file is {MAX_FILE_BYTES:,}."
        )
    data = f.read_bytes()
    if b"\x00" in data:
        raise DataFormatError(
            f"{f} is a binary file (it holds NUL bytes); expected UTF-8 text. Remove it from "
            "the corpus folder or convert it to text."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{f} is not UTF-8 text (invalid byte at offset {exc.start}); expected UTF-8."
        ) from None


def _document(f: Path, name: str) -> list[Passage]:
    text = _read_text(f)
    if f.suffix.lower() in (".html", ".htm"):
        text = html_text(text)
    out = []
    for n, (start, para) in enumerate(split_paragraphs(text)):
        out.append(Passage(id=f"{name}#{n}", doc=name, text=para, offset=start))
    return out


def split_paragraphs(text: str) -> list[tuple[int, str]]:
    """Non-blank paragraphs of ``text`` with their start offsets (blank-line separated)."""
    out: list[tuple[int, str]] = []
    pos = 0
    for m in [*_PARA_SPLIT.finditer(text), None]:
        end = m.start() if m else len(text)
        chunk = text[pos:end]
        stripped = chunk.strip()
        if stripped:
            out.append((pos + chunk.index(stripped[0]), stripped))
        if m:
            pos = m.end()
    return out


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def handle_comment(self, data: str) -> None:
        self.parts.append("\n\n" + data + "\n\n")


def html_text(markup: str) -> str:
    """The text of an HTML page, block elements and comments as separate paragraphs."""
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _jsonl(f: Path, *, text_field: str, id_field: str, doc_field: str) -> Iterable[Passage]:
    text = _read_text(f)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"{f} line {lineno} is not valid JSON ({exc.msg}); expected one JSON object "
                'per line, e.g. {"id": "p1", "text": "..."}.'
            ) from None
        if not isinstance(obj, dict):
            raise DataFormatError(
                f"{f} line {lineno} holds a JSON {type(obj).__name__}; expected an object with "
                f"a {text_field!r} field."
            )
        if text_field not in obj:
            fields = ", ".join(map(repr, list(obj)[:10])) or "none"
            raise DataFormatError(
                f"{f} line {lineno} has no field {text_field!r} (its fields: {fields}); set "
                "--text-field to the field that holds the passage text."
            )
        value = obj[text_field]
        if not isinstance(value, str):
            raise DataFormatError(
                f"{f} line {lineno}: field {text_field!r} must be a string. Got "
                f"{type(value).__name__} instead."
            )
        pid = obj.get(id_field, lineno)
        if isinstance(pid, dict | list):
            raise DataFormatError(
                f"{f} line {lineno}: field {id_field!r} must be a string or number. Got "
                f"{type(pid).__name__} instead."
            )
        doc = obj.get(doc_field)
        yield Passage(
            id=str(pid),
            doc=str(doc) if isinstance(doc, str | int) else f.name,
            text=value,
            raw=line,
        )
