"""Report writers: SARIF 2.1.0, Markdown and self-contained HTML, plus :func:`write_all`.

Every writer has the form ``write_<format>(report, path) -> Path`` and writes atomically
(a temporary file beside ``path`` renamed over it only when complete), so a failure never leaves
a partial file that looks finished, and an earlier file at ``path`` survives a failed write.
The JSON report and the per-record score file are written by
:meth:`~dormant.report.Report.write_json` and :meth:`~dormant.report.Report.write_record_scores`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError
from ..report import Report
from .html import to_html, write_html
from .markdown import to_markdown, write_markdown
from .sarif import to_sarif, write_sarif

#: File name written for each format by :func:`write_all`.
FILENAMES: dict[str, str] = {
    "json": "report.json",
    "sarif": "report.sarif",
    "md": "report.md",
    "html": "report.html",
    "scores": "scores.jsonl",
}
FORMATS: tuple[str, ...] = tuple(FILENAMES)


def write_all(
    report: Report,
    out_dir: str | os.PathLike[str],
    *,
    formats: Iterable[str] = FORMATS,
) -> dict[str, Path]:
    """Write a report in several formats into one directory.

    Parameters
    ----------
    report:
        The report to write.
    out_dir:
        Directory to write into; created when missing.
    formats:
        Any of ``json`` (``report.json``), ``sarif`` (``report.sarif``), ``md``
        (``report.md``), ``html`` (``report.html``) and ``scores`` (``scores.jsonl``, one line
        per record). Every name is checked before anything is written.

    Returns
    -------
    dict[str, pathlib.Path]
        The path written for each format, in the order given.

    Raises
    ------
    ConfigError
        When ``formats`` is empty or names an unknown format.
    """
    if isinstance(formats, str):
        formats = [formats]
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FILENAMES]
    if unknown or not wanted:
        raise ConfigError(
            f"The 'formats' parameter of write_all must name one or more of "
            f"{', '.join(FORMATS)}. Got {list(formats)!r} instead."
        )
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for fmt in wanted:
        path = out / FILENAMES[fmt]
        if fmt == "json":
            written[fmt] = report.write_json(path)
        elif fmt == "sarif":
            written[fmt] = write_sarif(report, path)
        elif fmt == "md":
            written[fmt] = write_markdown(report, path)
        elif fmt == "html":
            written[fmt] = write_html(report, path)
        else:
            written[fmt] = report.write_record_scores(path)
    return written


__all__ = [
    "FILENAMES",
    "FORMATS",
    "to_html",
    "to_markdown",
    "to_sarif",
    "write_all",
    "write_html",
    "write_markdown",
    "write_sarif",
]
