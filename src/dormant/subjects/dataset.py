"""TextDataset: a labelled or instruction dataset on disk, read as a stream of batches.

Formats: JSONL (``.jsonl``/``.ndjson``), CSV/TSV, Parquet, and a Hugging Face ``datasets``
directory written by ``save_to_disk`` (read directly from its Arrow files; ``datasets`` itself is
not imported). Reading is streaming: a batch at a time, so memory stays flat as the file grows.

Every problem is reported with its place: the line (JSONL/CSV) or row (Parquet/Arrow), the field
and what was expected. The input file is only ever opened for reading.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import (
    ConfigError,
    DataFormatError,
    DataValidationError,
    InputNotFoundError,
)
from ..findings import SubjectRef
from ._arrow import _hf_arrow_files, _open_arrow
from ._ids import find_duplicate_ids as find_duplicate_ids
from ._ids import stable_id_hashes as stable_id_hashes
from ._parsing import (
    _MISSING,
    COMPRESSED_SUFFIXES,
    STREAM_ERRORS,
    _bad_field,
    _label_kind,
    compression_of,
    normalise_label,
    open_data,
    parse_json_line,
    short,
)
from ._sources import RemoteFile, compression_of_stream, decompress, resolve_sources

FORMATS = ("jsonl", "csv", "tsv", "parquet", "hf")
_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class Batch:
    """A batch of records as columns.

    ``texts`` is what a trigger would sit in (``text`` field, or the prompt of instruction
    data); ``labels`` and ``responses`` are the outcomes, ``None`` when the dataset has none.
    ``start`` is the 0-based row index of the first record.
    """

    ids: list[str]
    texts: list[str]
    labels: list[str] | None = None
    responses: list[str] | None = None
    start: int = 0

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TextDataset:
    """A text dataset on disk.

    Parameters
    ----------
    path:
        File (JSONL, CSV, TSV, Parquet) or a ``save_to_disk`` directory.
    text_field:
        Field holding the text of labelled data.
    label_field:
        Field holding the label.
    prompt_field, response_field:
        Fields of instruction data (the prompt is where a trigger sits; the response's
        behaviours are the outcome).
    id_field:
        Field holding a record id; without it the 0-based row number is the id.
    format:
        One of ``jsonl, csv, tsv, parquet, hf``; guessed from the suffix when ``None``.
    split:
        Split of a ``DatasetDict`` directory.
    max_chars:
        Longest accepted text or response, in characters; longer records are an error
        (a record of megabytes is a sign of a broken export, not a training example).
    strict_labels:
        Refuse labels of mixed JSON types (some numbers, some strings) with a
        :class:`DataValidationError` instead of reading them with a warning
        (:attr:`label_warning`).

    Labels are normalised to text the same way whatever their type: ``1``, ``1.0`` and ``"1"``
    are one class, ``true`` is ``"True"``. A file whose labels mix types is read with
    :attr:`label_warning` set (after :meth:`batches` has run), because such a file usually
    comes from two exports that disagree.
    """

    path: str | os.PathLike[str]
    text_field: str | None = None
    label_field: str | None = None
    prompt_field: str | None = None
    response_field: str | None = None
    id_field: str | None = None
    format: str | None = None
    split: str | None = None
    max_chars: int = 100_000
    strict_labels: bool = False
    _digest: str | None = field(default=None, init=False, repr=False)
    _parts: list[TextDataset] | None = field(default=None, init=False, repr=False)
    _remote: RemoteFile | None = field(default=None, init=False, repr=False)
    label_warning: str | None = field(default=None, init=False, repr=False)
    compression: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        sources = resolve_sources(self.path)
        if isinstance(sources, RemoteFile):
            self._remote = sources
        elif sources is not None:
            self._init_parts(sources)
            return
        if self._remote is None:
            self.path = Path(self.path)
        if self._remote is None and not Path(self.path).exists():
            raise InputNotFoundError(f"Dataset not found: {self.path} (no such file or directory).")
        if self._remote is None and not Path(self.path).is_dir():
            try:
                with open(self.path, "rb"):
                    pass
            except OSError as exc:
                raise DataFormatError(
                    f"Cannot read the dataset {self.path}: {exc.strerror or exc}."
                ) from None
        self._check_fields()
        if self._remote is not None:
            with self._remote.open() as fh:
                self.compression = compression_of_stream(fh.read(8))
        elif not Path(self.path).is_dir():
            self.compression = compression_of(Path(self.path))
        self.format = self._resolve_format()
        if self.compression and self.format not in ("jsonl", "csv", "tsv"):
            raise DataFormatError(
                f"{self.path} is {self.compression}-compressed {self.format}; only JSONL, CSV "
                "and TSV are read compressed (Parquet compresses inside the file)."
            )

    def _check_fields(self) -> None:
        if self.text_field and self.prompt_field:
            raise ConfigError(
                "Give either text_field (--text-field, labelled data) or prompt_field "
                f"(--prompt-field, instruction data), not both. Got "
                f"text_field={self.text_field!r}, prompt_field={self.prompt_field!r}."
            )
        if not self.text_field and not self.prompt_field:
            raise ConfigError(
                "Name the field that holds the text: text_field (--text-field, with "
                "--label-field) for labelled data, or prompt_field (--prompt-field, with "
                "--response-field) for instruction data."
            )
        if self.text_field and not self.label_field:
            raise ConfigError(
                f"Labelled data needs label_field (--label-field) along with "
                f"text_field={self.text_field!r}."
            )
        if self.prompt_field and not self.response_field:
            raise ConfigError(
                f"Instruction data needs response_field (--response-field) along with "
                f"prompt_field={self.prompt_field!r}."
            )
        if not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ConfigError(
                f"The 'max_chars' parameter (--max-chars) must be a positive int. "
                f"Got {self.max_chars!r}."
            )

    def _init_parts(self, files: list[str]) -> None:
        """A dataset of several files (shards): one part per file, read in order."""
        self._check_fields()
        shown = self.path
        self.path = str(self.path)
        self._parts = [
            TextDataset(
                f,
                text_field=self.text_field,
                label_field=self.label_field,
                prompt_field=self.prompt_field,
                response_field=self.response_field,
                id_field=self.id_field,
                format=self.format,
                split=self.split,
                max_chars=self.max_chars,
                strict_labels=self.strict_labels,
            )
            for f in files
        ]
        formats = sorted({str(p.format) for p in self._parts})
        if len(formats) > 1:
            raise DataFormatError(
                f"{shown}: the shards mix formats ({', '.join(formats)}); give one format "
                "per dataset (a folder or pattern of JSONL, CSV, TSV or Parquet files)."
            )
        self.format = formats[0]

    def parts(self) -> list[TextDataset]:
        """The single-file datasets this one reads in order (itself when it is one file)."""
        return self._parts if self._parts is not None else [self]

    @property
    def is_remote(self) -> bool:
        """Read through fsspec (a URL other than ``file://``)."""
        return self._remote is not None

    def open_raw(self) -> IO[bytes]:
        """This (single-file) dataset's bytes, decompressed; the caller closes it."""
        if self._remote is not None:
            return decompress(self._remote.open(), self.compression)
        return open_data(Path(self.path), self.compression)

    # -- identity ----------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``labelled`` or ``instruction``."""
        return "labelled" if self.text_field else "instruction"

    @property
    def input_field(self) -> str:
        return str(self.text_field or self.prompt_field)

    def files(self) -> list[Path]:
        """The data files behind this dataset, in read order."""
        if self._parts is not None:
            return [f for part in self._parts for f in part.files()]
        if self._remote is not None:
            return [Path(self._remote.path)]
        p = Path(self.path)
        if self.format != "hf":
            return [p]
        return _hf_arrow_files(p, self.split)

    def digest(self) -> str:
        """``sha256:<hex>`` over the data files' bytes (a manifest digest when several)."""
        if self._digest is None and self._parts is not None:
            inner = "\n".join(p.digest() for p in self._parts)
            self._digest = "sha256:" + hashlib.sha256(inner.encode()).hexdigest()
        if self._digest is None:
            parts = []
            for f in self.files():
                h = hashlib.sha256()
                with self._remote.open() if self._remote is not None else open(f, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        h.update(chunk)
                parts.append(h.hexdigest())
            if len(parts) == 1:
                self._digest = "sha256:" + parts[0]
            else:
                self._digest = "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return self._digest

    def ref(self) -> SubjectRef:
        return SubjectRef(kind="dataset", name=str(self.path), digest=self.digest())

    @property
    def capabilities(self) -> frozenset[str]:
        """``records`` (read in batches) and ``embeddings`` (the data family's encoder embeds
        the input field; a missing encoder extra is the scanner's own requirement)."""
        return frozenset({"records", "embeddings"})

    # -- reading -----------------------------------------------------------------------

    def _resolve_format(self) -> str:
        p = Path(self._remote.path if self._remote is not None else self.path)
        if self.format is not None:
            if self.format not in FORMATS:
                raise ConfigError(
                    f"The 'format' parameter must be one of {', '.join(FORMATS)}. "
                    f"Got {self.format!r} instead."
                )
            return self.format
        if self._remote is None and p.is_dir():
            if (p / "state.json").exists() or (p / "dataset_dict.json").exists():
                return "hf"
            raise DataFormatError(
                f"{p} is a directory but not a Hugging Face dataset saved with save_to_disk "
                "(no state.json or dataset_dict.json)."
            )
        suffix = p.suffix.lower()
        if suffix in COMPRESSED_SUFFIXES:
            suffix = Path(p.stem).suffix.lower()  # d.jsonl.gz is JSONL
        fmt = _SUFFIX.get(suffix)
        if fmt is None:
            raise DataFormatError(
                f"Cannot tell the format of {p.name!r} from its suffix; expected one of "
                f"{', '.join(sorted(_SUFFIX))}, or pass format= (--format)."
            )
        return fmt

    def _columns(self) -> list[str]:
        cols = [self.input_field]
        for c in (self.label_field, self.response_field):
            if c:
                cols.append(c)
        if self.id_field:
            cols.append(self.id_field)
        return cols

    def rows(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Yield ``(row_index, place, row_dict)``; ``place`` names the line or row for errors."""
        if self._parts is not None:
            idx = 0
            for part in self._parts:
                name = _shard_name(str(part.path), str(self.path))
                for _i, place, row in part.rows():
                    yield idx, f"{name}: {place}", row
                    idx += 1
            return
        fmt = self.format
        try:
            if fmt == "jsonl":
                yield from self._jsonl_rows()
            elif fmt in ("csv", "tsv"):
                yield from self._csv_rows("\t" if fmt == "tsv" else ",")
            else:
                yield from self._arrow_rows()
        except STREAM_ERRORS as exc:
            what = f"the {self.compression} stream" if self.compression else "the file"
            raise DataFormatError(
                f"{self.path}: {what} cannot be read to its end ({type(exc).__name__}: "
                f"{short(str(exc))}); the file is damaged or truncated."
            ) from None

    def _jsonl_rows(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        idx = 0
        with self.open_raw() as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataFormatError(
                        f"{self.path}: line {lineno} is not valid UTF-8 "
                        f"(byte {exc.start} of the line); re-encode the file as UTF-8."
                    ) from None
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark
                if not line.strip():
                    continue
                try:  # the place is named only when the line fails (it is per-record work)
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    obj = parse_json_line(line, f"{self.path}: line {lineno}")
                if not isinstance(obj, dict):
                    raise DataFormatError(
                        f"{self.path}: line {lineno} holds a JSON {type(obj).__name__}, "
                        "expected an object with named fields."
                    )
                yield idx, f"line {lineno}", obj
                idx += 1

    def _csv_rows(self, delimiter: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
        csv.field_size_limit(max(self.max_chars * 4, 1 << 20))
        with self.open_raw() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text, delimiter=delimiter)
            idx = 0
            try:
                for row in reader:
                    yield idx, f"line {reader.line_num}", row
                    idx += 1
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"{self.path}: not valid UTF-8 near line {reader.line_num + 1} "
                    f"({exc.reason}); re-encode the file as UTF-8."
                ) from None
            except csv.Error as exc:
                raise DataFormatError(
                    f"{self.path}: malformed CSV at line {reader.line_num}: {exc}."
                ) from None

    def _arrow_rows(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        idx = 0
        cols = self._columns()
        for f in self.files():
            try:
                if self.format == "parquet":
                    pf = pq.ParquetFile(self._remote.open() if self._remote is not None else f)
                    self._check_schema(pf.schema_arrow.names, f)
                    batches: Iterator[Any] = pf.iter_batches(batch_size=8192, columns=cols)
                else:
                    reader = _open_arrow(f)
                    self._check_schema(reader.schema.names, f)
                    batches = iter(reader)
                for rb in batches:
                    data = rb.select(cols).to_pydict() if hasattr(rb, "select") else {}
                    n = rb.num_rows
                    for i in range(n):
                        yield idx, f"row {idx}", {c: data[c][i] for c in cols}
                        idx += 1
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataFormatError(f"{f}: cannot read as {self.format}: {exc}") from None

    def _check_schema(self, names: list[str], f: Path) -> None:
        for c in self._columns():
            if c not in names:
                raise DataFormatError(
                    f"{f}: field {c!r} not found; available fields: {', '.join(names)}."
                )

    def batches(self, batch_size: int = 8192) -> Iterator[Batch]:
        """Stream validated batches. Raises on the first bad record, naming its place."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1. Got {batch_size!r}.")
        tf = self.input_field
        lf = self.label_field
        rf = self.response_field
        idf = self.id_field
        maxc = self.max_chars
        ids: list[str] = []
        texts: list[str] = []
        labels: list[str] = []
        responses: list[str] = []
        start = 0
        label_kinds: dict[str, tuple[str, object]] = {}
        self.label_warning = None
        for idx, place, row in self.rows():
            text = row.get(tf, _MISSING)
            if not isinstance(text, str):
                _bad_field(self.path, place, tf, text, "a string")
            if len(text) > maxc:
                raise DataValidationError(
                    f"{self.path}: {place}: field {tf!r} is {len(text):,} characters long, over "
                    f"the limit of {maxc:,} (raise it with max_chars / --max-chars if intended)."
                )
            if lf is not None:
                lab = row.get(lf, _MISSING)
                if lab is _MISSING or lab is None or isinstance(lab, (dict, list)):
                    _bad_field(self.path, place, lf, lab, "a label (string, int or bool)")
                if type(lab) is str and "string" in label_kinds:
                    labels.append(lab)  # the common case: what normalise_label gives a str
                else:
                    kind = _label_kind(lab)
                    if kind not in label_kinds:
                        label_kinds[kind] = (place, lab)
                        if len(label_kinds) == 2:
                            self._mixed_labels(lf, label_kinds)
                    labels.append(normalise_label(lab))
            if rf is not None:
                resp = row.get(rf, _MISSING)
                if not isinstance(resp, str):
                    _bad_field(self.path, place, rf, resp, "a string")
                if len(resp) > maxc:
                    raise DataValidationError(
                        f"{self.path}: {place}: field {rf!r} is {len(resp):,} characters long, "
                        f"over the limit of {maxc:,}."
                    )
                responses.append(resp)
            if idf is not None:
                rid = row.get(idf, _MISSING)
                if rid is _MISSING or rid is None or isinstance(rid, (dict, list)):
                    _bad_field(self.path, place, idf, rid, "an id (string or int)")
                ids.append(str(rid))
            else:
                ids.append(str(idx))
            texts.append(text)
            if len(ids) >= batch_size:
                yield Batch(ids, texts, labels if lf else None, responses if rf else None, start)
                start += len(ids)
                ids, texts, labels, responses = [], [], [], []
        if ids:
            yield Batch(ids, texts, labels if lf else None, responses if rf else None, start)

    def _mixed_labels(self, lf: str, kinds: dict[str, tuple[str, object]]) -> None:
        shown = "; ".join(
            f"{kind} at {place} ({short(repr(v), 30)})" for kind, (place, v) in kinds.items()
        )
        msg = (
            f"{self.path}: field {lf!r} mixes label types ({shown}). They are read as text: "
            "1, 1.0 and '1' are one class, any other spelling is another. Check that the "
            "file is not two exports that disagree."
        )
        if self.strict_labels:
            raise DataValidationError(msg + " Refused because of --strict.")
        self.label_warning = msg


def _shard_name(shard: str, root: str) -> str:
    """A shard's path relative to the folder it was found in, else the whole path."""
    prefix = root.rstrip("/") + "/"
    return shard[len(prefix) :] if shard.startswith(prefix) else shard
