"""Write a corpus scan's reports and its clean / quarantine split, atomically.

Reports go through the shared writers (:func:`dormant.writers.write_all`); ``clean.jsonl`` and
``quarantine.jsonl`` hold one passage per line: a JSONL input line byte for byte, or, for a
paragraph of a document, ``{"id", "doc", "offset", "text"}``. ``split.json`` records the counts
and that clean + quarantine = all passages. Everything is written into a temporary sibling
directory that replaces ``out_dir`` only when complete (the helpers of
:mod:`dormant.outputs`), so an interrupted run leaves no output that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ...errors import ConfigError
from ...outputs import REPORT_FORMATS, _is_output_name, _make_tmp_dir, _swap
from ...report import Report, atomic_write
from ._passages import Passage


def check_corpus_outputs(
    corpus: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str]
) -> None:
    """Refuse, before a scan, an ``out_dir`` that is a file, holds the corpus, or other files."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"Output path {out} exists and is not a directory.")
    if corpus is not None:
        c = Path(corpus).resolve()
        root = out.resolve()
        if c == root or root in c.parents or c in root.parents:
            raise ConfigError(
                f"Output directory {out} and the corpus {corpus} overlap: the outputs would "
                "replace the corpus or become part of it. Choose an output directory outside "
                "the corpus (--out)."
            )
    if not out.is_dir():
        return
    foreign = sorted(e.name for e in out.iterdir() if not _is_output_name(e))
    if foreign:
        raise ConfigError(
            f"Output directory {out} exists and holds files dormant did not write "
            f"({', '.join(foreign[:3])}); writing the outputs replaces the whole directory. "
            "Choose a new or empty output directory (--out)."
        )


def write_corpus_outputs(
    report: Report,
    passages: Sequence[Passage],
    out_dir: str | os.PathLike[str],
    *,
    formats: tuple[str, ...] = REPORT_FORMATS,
    split: bool = True,
    corpus: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Write the reports and (``split``) ``clean.jsonl`` / ``quarantine.jsonl`` into ``out_dir``.

    ``passages`` must be the passages the report was computed on, in the same order. Returns
    the final path of each file, keyed by what it is.
    """
    from ...writers import write_all

    if len(passages) != len(report.records) or any(
        p.id != r.record_id for p, r in zip(passages, report.records, strict=False)
    ):
        raise ConfigError(
            "The 'passages' given to write_corpus_outputs are not the passages of this report "
            f"({len(passages)} passages, {len(report.records)} records)."
        )
    out = Path(out_dir)
    check_corpus_outputs(corpus, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_tmp_dir(out)
    try:
        written = {k: Path(v) for k, v in write_all(report, tmp, formats=formats).items()}
        if split:
            n_q = 0
            with (
                atomic_write(tmp / "clean.jsonl") as fc,
                atomic_write(tmp / "quarantine.jsonl") as fq,
            ):
                for ps, rec in zip(passages, report.records, strict=True):
                    line = (
                        ps.raw
                        if ps.raw is not None
                        else json.dumps(
                            {"id": ps.id, "doc": ps.doc, "offset": ps.offset, "text": ps.text},
                            ensure_ascii=False,
                        )
                    )
                    (fq if rec.flagged else fc).write(line + "\n")
                    n_q += rec.flagged
            summary = {
                "passages": len(passages),
                "clean": len(passages) - n_q,
                "quarantine": n_q,
                "complete": True,
                "subject": report.subject.to_dict(),
            }
            with atomic_write(tmp / "split.json") as fs:
                json.dump(summary, fs, indent=2)
                fs.write("\n")
            written.update(
                clean=tmp / "clean.jsonl",
                quarantine=tmp / "quarantine.jsonl",
                split=tmp / "split.json",
            )
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {k: out / v.name for k, v in written.items()}
