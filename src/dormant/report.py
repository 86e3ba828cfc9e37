"""Report: run info, findings, per-record scores, errors and skips; JSON writer and CI exit codes.

Other formats live in :mod:`dormant.writers` (SARIF 2.1.0, Markdown, HTML). Files are written
atomically (temporary file + rename), so a crash never leaves a partial file looking complete.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._records import RecordScore as RecordScore
from ._records import ScanIssue as ScanIssue
from ._version import __version__
from .findings import Finding, Severity, SubjectRef

if TYPE_CHECKING:
    from .sections import (
        FlagThreshold,
        LabelAnomaly,
        ModelVerdict,
        ProbeSummary,
        Projection,
        Replay,
        TaskExplained,
        TriggerStats,
    )


@dataclass
class Report:
    """Everything a scan produced.

    ``findings`` are sorted by descending score when the report is finished; ``errors`` and
    ``skips`` record scanners that failed or could not run; ``extras`` carries scanner outputs
    used by the writers' plots (e.g. an embedding projection), all JSON-serialisable.
    """

    subject: SubjectRef
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    findings: list[Finding] = field(default_factory=list)
    issues: list[ScanIssue] = field(default_factory=list)
    records: list[RecordScore] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished: str | None = None
    partial: bool = False

    @property
    def errors(self) -> list[ScanIssue]:
        return [i for i in self.issues if i.kind == "error"]

    @property
    def skips(self) -> list[ScanIssue]:
        return [i for i in self.issues if i.kind == "skip"]

    def finish(self) -> Report:
        """Sort findings (highest score first) and stamp the finish time."""
        self.findings.sort(key=lambda f: (-f.severity.rank, -f.score, f.title))
        self.finished = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    def max_severity(self) -> Severity | None:
        """Highest severity among findings, or ``None`` when there are none."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def exit_code(self, fail_on: Severity | str | None = Severity.HIGH) -> int:
        """CI exit code: 0 clean, 1 a finding at or above ``fail_on``, 3 a scanner errored.

        ``fail_on=None`` never fails on findings. (Exit code 2 is reserved for bad input
        and usage errors, raised before a report exists.)
        """
        if fail_on is not None:
            threshold = Severity.parse(fail_on, param="fail_on")
            if any(f.severity >= threshold for f in self.findings):
                return 1
        if self.errors:
            return 3
        return 0

    def run_info(self) -> dict[str, Any]:
        return {
            "tool": "dormant",
            "version": __version__,
            "python": platform.python_version(),
            "started": self.started,
            "finished": self.finished,
            "partial": self.partial,
            "seed": self.seed,
            "config": self.config,
        }

    def to_dict(self) -> dict[str, Any]:
        sev = self.max_severity()
        return {
            "run": self.run_info(),
            "subject": self.subject.to_dict(),
            "summary": {
                "findings": len(self.findings),
                "max_severity": sev.value if sev else None,
                "records": len(self.records),
                "flagged_records": sum(1 for r in self.records if r.flagged),
                "errors": len(self.errors),
                "skips": len(self.skips),
            },
            "findings": [f.to_dict() for f in self.findings],
            "errors": [i.to_dict() for i in self.errors],
            "skips": [i.to_dict() for i in self.skips],
            "warnings": [i.to_dict() for i in self.issues if i.kind == "warning"],
            "extras": self.extras,
        }

    # -- typed sections (the extras keys stay readable for one release) ------------------

    @property
    def model_verdict(self) -> ModelVerdict | None:
        """The verdict of a model scan or probe (``extras["model_verdict"]``), typed."""
        from .sections import ModelVerdict, section

        return section(self.extras, ModelVerdict)

    @property
    def label_anomaly(self) -> LabelAnomaly | None:
        """A classifier scan's per-label evidence (``extras["label_anomaly"]``), typed."""
        from .sections import LabelAnomaly, section

        return section(self.extras, LabelAnomaly)

    @property
    def replay(self) -> Replay | None:
        """The replayed proof of a positive verdict (``extras["replay"]``), typed."""
        from .sections import Replay, section

        return section(self.extras, Replay)

    @property
    def probe_summary(self) -> ProbeSummary | None:
        """What a probe did (``extras["probe"]``), typed."""
        from .sections import ProbeSummary, section

        return section(self.extras, ProbeSummary)

    @property
    def task_explained(self) -> TaskExplained | None:
        """A classifier scan's task-explained check (``extras["task_explained"]``), typed."""
        from .sections import TaskExplained, section

        return section(self.extras, TaskExplained)

    @property
    def trigger_stats(self) -> TriggerStats | None:
        """A data scan's mined trigger candidates (``extras["triggers"]``), typed."""
        from .sections import TriggerStats, section

        return section(self.extras, TriggerStats)

    @property
    def flag_threshold(self) -> FlagThreshold | None:
        """A data scan's flag threshold (``extras["threshold"]``), typed."""
        from .sections import FlagThreshold, section

        return section(self.extras, FlagThreshold)

    @property
    def projection(self) -> Projection | None:
        """A data scan's 2-D embedding projection (``extras["projection"]``), typed."""
        from .sections import Projection, section

        return section(self.extras, Projection)

    # -- reading back --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, records: list[RecordScore] | None = None) -> Report:
        """The :class:`Report` whose :meth:`to_dict` is ``data`` (a parsed ``report.json``).

        ``report.json`` does not hold the per-record scores (they are written to
        ``scores.jsonl``); pass them as ``records`` (see :func:`load_report`).

        Raises
        ------
        DataFormatError
            ``data`` is not a dormant report (a key missing or of the wrong type).
        """
        from .errors import DataFormatError
        from .reading import report_from_dict

        try:
            return report_from_dict(cls, data, records or [])
        except DataFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataFormatError(
                f"Not a dormant report: {type(exc).__name__} {exc} (expected the object a "
                "dormant scan writes to report.json)."
            ) from None

    # -- writers -------------------------------------------------------------------------

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write ``report.json`` atomically."""
        with atomic_write(path) as fh:
            json.dump(self.to_dict(), fh, indent=2, ensure_ascii=False, default=_json_default)
            fh.write("\n")
        return Path(path)

    def write_record_scores(self, path: str | os.PathLike[str]) -> Path:
        """Write the per-record score file (JSONL: id, score, flagged, per-scanner parts)."""
        with atomic_write(path) as fh:
            copy = getattr(self.records, "write_jsonl", None)  # records streamed to disk
            if copy is not None:
                copy(fh)
                return Path(path)
            for rec in self.records:
                fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
        return Path(path)


def load_report(
    path: str | os.PathLike[str], *, scores: str | os.PathLike[str] | None = None
) -> Report:
    """Read a ``report.json`` written by any dormant scan back into a :class:`Report`.

    Parameters
    ----------
    path:
        The ``report.json``.
    scores:
        The per-record score file (``scores.jsonl``); default: the one beside ``path`` when
        it is there.

    Raises
    ------
    InputNotFoundError, DataFormatError
        ``path`` (or ``scores``) is missing, unreadable or not a dormant report.
    """
    from .reading import read_record_scores

    data = load_report_json(path)
    scores_path = Path(scores) if scores is not None else Path(path).with_name("scores.jsonl")
    records = read_record_scores(scores_path) if scores is not None or scores_path.is_file() else []
    return Report.from_dict(data, records=records)


def load_report_json(path: str | os.PathLike[str], *, what: str = "Report") -> dict[str, Any]:
    """Read a ``report.json`` as a dict; every way it can be unusable is a dormant error.

    Raises
    ------
    InputNotFoundError
        ``path`` is not a file.
    DataFormatError
        Not UTF-8, not JSON (including JSON nested beyond the recursion limit and numbers of
        more than 4,300 digits, which the standard library refuses), or not a JSON object.
    """
    from .errors import DataFormatError, InputNotFoundError

    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{what} not found: {p} (no such file).")
    try:
        data = json.loads(p.read_text("utf-8"))
    except RecursionError:
        raise DataFormatError(f"{what} {p} is nested too deeply to be a report.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise DataFormatError(
            f"{what} {p} is not a JSON report ({str(exc)[:160]}); expected the report.json "
            "written by a dormant scan."
        ) from None
    except OSError as exc:
        raise DataFormatError(f"Cannot read {what.lower()} {p}: {exc.strerror or exc}.") from None
    if not isinstance(data, dict):
        raise DataFormatError(
            f"{what} {p} holds a JSON {type(data).__name__}; expected an object (a dormant "
            "report.json)."
        )
    return data


def _json_default(obj: object) -> object:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report is an ordinary file
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
