"""Write a data scan's outputs: reports, per-record scores and the clean / quarantine split.

Everything is written into a temporary sibling directory and moved into place only when every
file is complete, so an interrupted run never leaves a partial output directory that looks
complete (an older complete output stays as it was until the swap). The input is only read.

Split files keep each record exactly as it was in the input (JSONL lines byte for byte; CSV
rows re-quoted; Parquet / Hugging Face data as Parquet with all columns). ``scores.jsonl`` maps
every record id and row to its score and flag; ``split.json`` records the counts and digests,
and that clean + quarantine = all records.

An existing output directory is replaced only when it holds nothing but files these writers
produce (or is empty) and holds none of the input files: the swap deletes the old directory, so
pointing ``out_dir`` at a folder of other files (the data folder, a home directory) is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataFormatError
from .report import Report
from .subjects.dataset import TextDataset

REPORT_FORMATS = ("json", "sarif", "md", "html", "scores")


def write_outputs(
    report: Report,
    dataset: TextDataset,
    out_dir: str | os.PathLike[str],
    *,
    formats: tuple[str, ...] = REPORT_FORMATS,
    split: bool = True,
) -> dict[str, Path]:
    """Write reports (and the clean/quarantine split) into ``out_dir`` atomically.

    Returns the final path of every file written, keyed by what it is.
    """
    from .writers import write_all

    out = Path(out_dir)
    check_outputs(dataset, out, formats=formats)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_tmp_dir(out)
    try:
        written = {k: Path(v) for k, v in write_all(report, tmp, formats=formats).items()}
        if split:
            written.update(_write_split(report, dataset, tmp))
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {k: out / v.name for k, v in written.items()}


def check_outputs(
    dataset: TextDataset,
    out_dir: str | os.PathLike[str],
    *,
    formats: tuple[str, ...] = REPORT_FORMATS,
) -> None:
    """Check, before a scan, that :func:`write_outputs` may write ``formats`` into ``out_dir``.

    Raises
    ------
    ConfigError
        ``formats`` is empty or names an unknown format; ``out_dir`` is a file; or it is an
        existing directory that holds an input file or files these writers do not produce
        (replacing it would delete them).
    """
    out = Path(out_dir)
    bad = [f for f in formats if f not in REPORT_FORMATS]
    if bad or not formats:
        raise ConfigError(
            f"The 'formats' parameter must be a non-empty subset of {', '.join(REPORT_FORMATS)}. "
            f"Got {', '.join(formats) or 'nothing'}."
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"Output path {out} exists and is not a directory.")
    if not out.is_dir():
        return
    root = out.resolve()
    inputs = [f for f in dataset.files() if root in Path(f).resolve().parents]
    if inputs:
        raise ConfigError(
            f"Output directory {out} holds the input {inputs[0]}; writing the outputs replaces "
            "that directory. Choose another output directory (--out)."
        )
    foreign = sorted(e.name for e in out.iterdir() if not _is_output_name(e))
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise ConfigError(
            f"Output directory {out} exists and holds files dormant did not write ({shown}); "
            "writing the outputs replaces the whole directory. Choose a new or empty output "
            "directory (--out)."
        )


def _is_output_name(entry: Path) -> bool:
    from .writers import FILENAMES

    if not entry.is_file() or entry.is_symlink():
        return False
    name = entry.name
    if name in FILENAMES.values() or name == "split.json":
        return True
    stem, _, ext = name.partition(".")
    return stem in ("clean", "quarantine") and ext in ("jsonl", "csv", "tsv", "parquet")


def _make_tmp_dir(out: Path) -> Path:
    """A fresh hidden sibling of ``out``, created with the umask's permissions (not 0700).

    Its name carries this process id, so leftovers of a run that was killed outright (SIGKILL,
    a power cut: no cleanup could run) are recognised and removed by the next run.
    """
    remove_stale_partials(out)
    pid = os.getpid()
    for _ in range(100):
        tmp = out.parent / f".{out.name}.{pid}-{secrets.token_hex(6)}.partial"
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"Could not create a temporary directory beside {out}.")


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove ``.OUT.<pid>-*.partial`` / ``.OUT.old-<pid>`` siblings of dead processes.

    Returns the paths removed. Leftovers of a live process (a concurrent run) are kept.
    """
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    prefix = f".{out.name}."
    for entry in out.parent.iterdir():
        name = entry.name
        if not name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        rest = name[len(prefix) :]
        if rest.endswith(".partial"):
            pid_text = rest.partition("-")[0]
        elif rest.startswith("old-"):
            pid_text = rest[4:]
        else:
            continue
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an absurd number): leave it alone
    return True


def _swap(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_split(report: Report, dataset: TextDataset, tmp: Path) -> dict[str, Path]:
    flags = np.fromiter((r.flagged for r in report.records), dtype=bool, count=len(report.records))
    fmt = dataset.format
    if fmt == "jsonl":
        paths, counts = _split_jsonl(dataset, flags, tmp)
    elif fmt in ("csv", "tsv"):
        paths, counts = _split_csv(dataset, flags, tmp, "\t" if fmt == "tsv" else ",")
    else:
        paths, counts = _split_arrow(dataset, flags, tmp)
    if counts["clean"] + counts["quarantine"] != len(flags):
        raise DataFormatError(
            f"{dataset.path}: the split wrote {counts['clean'] + counts['quarantine']} records "
            f"but the scan saw {len(flags)}; the file changed during the scan."
        )
    manifest = {
        "input": str(dataset.path),
        "input_digest": dataset.digest(),
        "records": len(flags),
        "clean": counts["clean"],
        "quarantine": counts["quarantine"],
        "files": {k: {"name": p.name, "digest": _digest(p)} for k, p in paths.items()},
        "note": "clean + quarantine = records; scores.jsonl lists every id with its score.",
    }
    mpath = tmp / "split.json"
    mpath.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return {**paths, "split": mpath}


def _split_jsonl(
    dataset: TextDataset, flags: np.ndarray, tmp: Path
) -> tuple[dict[str, Path], dict[str, int]]:
    clean, quar = tmp / "clean.jsonl", tmp / "quarantine.jsonl"
    counts = {"clean": 0, "quarantine": 0}
    row = 0
    with open(clean, "wb") as fc, open(quar, "wb") as fq:
        for part in dataset.parts():  # the shards of a sharded dataset, in read order
            with part.open_raw() as src:
                for lineno, raw in enumerate(src, start=1):
                    if not (raw.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else raw).strip():
                        continue
                    if row >= len(flags):
                        row += 1
                        continue
                    if not raw.endswith(b"\n"):
                        raw += b"\n"
                    if flags[row]:
                        fq.write(raw)
                        counts["quarantine"] += 1
                    else:
                        fc.write(raw)
                        counts["clean"] += 1
                    row += 1
    if row != len(flags):
        counts["clean"] = -1
    return {"clean": clean, "quarantine": quar}, counts


def _split_csv(
    dataset: TextDataset, flags: np.ndarray, tmp: Path, delimiter: str
) -> tuple[dict[str, Path], dict[str, int]]:
    ext = "tsv" if delimiter == "\t" else "csv"
    clean, quar = tmp / f"clean.{ext}", tmp / f"quarantine.{ext}"
    counts = {"clean": 0, "quarantine": 0}
    header: list[str] | None = None
    row = -1
    with (
        open(clean, "w", encoding="utf-8", newline="") as fc,
        open(quar, "w", encoding="utf-8", newline="") as fq,
    ):
        wc = csv.writer(fc, delimiter=delimiter)
        wq = csv.writer(fq, delimiter=delimiter)
        for part in dataset.parts():  # the shards of a sharded dataset, in read order
            raw = part.open_raw()
            reader = csv.reader(
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), delimiter=delimiter
            )
            first = next(reader, [])
            if header is None:
                header = first
                wc.writerow(header)
                wq.writerow(header)
            elif first != header:
                raw.close()
                raise DataFormatError(
                    f"{part.path}: its header {first} differs from the first shard's {header}; "
                    "shards of one dataset must share their columns."
                )
            with raw:
                row = _split_csv_rows(reader, flags, row, wc, wq, counts)
    return {"clean": clean, "quarantine": quar}, counts


def _split_csv_rows(
    reader: Any, flags: np.ndarray, row: int, wc: Any, wq: Any, counts: dict[str, int]
) -> int:
    for rec in reader:
        if not rec:  # a blank line: csv.DictReader (the scan) skips it too
            continue
        row += 1
        if row >= len(flags):
            counts["clean"] = -(10**9)
            break
        if flags[row]:
            wq.writerow(rec)
            counts["quarantine"] += 1
        else:
            wc.writerow(rec)
            counts["clean"] += 1
    return row


def _split_arrow(
    dataset: TextDataset, flags: np.ndarray, tmp: Path
) -> tuple[dict[str, Path], dict[str, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .subjects.dataset import _open_arrow

    clean, quar = tmp / "clean.parquet", tmp / "quarantine.parquet"
    counts = {"clean": 0, "quarantine": 0}
    writers: dict[str, Any] = {}
    start = 0
    try:
        for f, shard in [(f, p) for p in dataset.parts() for f in p.files()]:
            if dataset.format == "parquet":
                src = shard.open_raw() if shard.is_remote else f
                batches: Any = pq.ParquetFile(src).iter_batches(batch_size=8192)
            else:
                batches = iter(_open_arrow(f))
            for rb in batches:
                mask = flags[start : start + rb.num_rows]
                start += rb.num_rows
                for key, m in (("quarantine", mask), ("clean", ~mask)):
                    part = rb.filter(pa.array(m))
                    if key not in writers:
                        writers[key] = pq.ParquetWriter(
                            clean if key == "clean" else quar, rb.schema
                        )
                    writers[key].write_batch(part)
                    counts[key] += part.num_rows
    finally:
        for w in writers.values():
            w.close()
    return {"clean": clean, "quarantine": quar}, counts


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
