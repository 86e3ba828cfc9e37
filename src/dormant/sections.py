"""Typed report sections: the model verdict, label anomaly, replay, probe summary, transcripts.

A model scan and a probe store these in :attr:`Report.extras <dormant.report.Report.extras>`
under the keys ``model_verdict``, ``label_anomaly``, ``replay`` and ``probe``, and
``report.json`` keeps exactly that JSON. These frozen dataclasses are the typed view of those
keys: read them with :attr:`Report.model_verdict`, :attr:`Report.label_anomaly`,
:attr:`Report.replay` and :attr:`Report.probe_summary` (or :func:`section`) instead of indexing
``extras`` by string; ``to_dict()`` gives back the stored JSON, so
``ModelVerdict.from_dict(d).to_dict() == d``. The ``extras`` keys stay readable for one release.

A section that is malformed (a hand-edited report) raises :class:`DataFormatError` naming
the key and what was expected. Keys that reports of earlier versions lack (a label anomaly's
position-robust columns, a probe's scope tools and refinement errors) read as empty.

A classifier scan's task-explained check (``task_explained``) reads as :class:`TaskExplained`;
a data scan's plot inputs (``triggers``, ``threshold``, ``projection``) as the sections of
:mod:`dormant.data_sections`.
A probe's transcripts are per finding: evidence items ``transcript_<i>`` whose value is a JSON
string; :func:`finding_transcripts` (from :mod:`dormant.transcripts`) gives them as
:class:`Transcript` records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .data_sections import FlagThreshold, Projection, TriggerStat, TriggerStats
from .errors import DataFormatError
from .transcripts import Message, Run, Transcript, finding_transcripts, parse_transcript

__all__ = [
    "ExplainedCheck",
    "FlagThreshold",
    "LabelAnomaly",
    "Message",
    "ModelVerdict",
    "PairRow",
    "ProbeSummary",
    "Projection",
    "Replay",
    "ReplayExample",
    "Run",
    "TaskExplained",
    "Transcript",
    "TriggerStat",
    "TriggerStats",
    "finding_transcripts",
    "parse_transcript",
    "section",
]

S = TypeVar(
    "S",
    "ModelVerdict",
    "LabelAnomaly",
    "Replay",
    "ProbeSummary",
    "TaskExplained",
    TriggerStats,
    FlagThreshold,
    Projection,
)


def _want(d: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise DataFormatError(f"Report section {where!r} lacks {key!r}; expected a dormant report.")
    value = d[key]
    if value is not None and not isinstance(value, types):
        raise DataFormatError(
            f"Report section {where!r}: {key!r} must be {_names(types)}. Got {value!r} instead."
        )
    return value


def _later(d: dict[str, Any], key: str, where: str) -> list[Any]:
    """A list key that reports of earlier versions lack: missing reads as empty."""
    return (_want(d, key, list, where) or []) if key in d else []


def _later_obj(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An object key that partial reports lack: missing reads as empty."""
    return (_want(d, key, dict, where) or {}) if key in d else {}


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DataFormatError(f"Report section {where!r}: expected a list. Got {value!r}.")
    return value


def _names(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in ts)


@dataclass(frozen=True)
class ModelVerdict:
    """Is the model backdoored: the probability, the target and trigger, how it was reached.

    ``trigger_text``/``features`` are set by a classifier scan; ``position``, ``episodes`` and
    ``model_calls`` by a probe (``None`` where the report does not carry them).
    """

    probability: float
    backdoored: bool
    target: str | None
    trigger: str | None
    method: str
    capped: bool
    seconds: float | None
    trigger_text: str | None = None
    features: tuple[float, ...] | None = None
    position: str | None = None
    episodes: int | None = None
    model_calls: int | None = None

    _OPTIONAL = ("trigger_text", "features", "position", "episodes", "model_calls")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelVerdict:
        w = "model_verdict"
        feats = d.get("features") if isinstance(d, dict) else None
        return cls(
            probability=float(_want(d, "probability", (int, float), w)),
            backdoored=bool(_want(d, "backdoored", bool, w)),
            target=_want(d, "target", str, w),
            trigger=_want(d, "trigger", str, w),
            method=str(_want(d, "method", str, w)),
            capped=bool(_want(d, "capped", bool, w)),
            seconds=_want(d, "seconds", (int, float), w),
            trigger_text=d.get("trigger_text"),
            features=None if feats is None else tuple(float(x) for x in feats),
            position=d.get("position"),
            episodes=d.get("episodes"),
            model_calls=d.get("model_calls"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self._OPTIONAL and v is None:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True)
class LabelAnomaly:
    """Per candidate target label of a classifier scan: best trigger, loss, flips, anomaly."""

    labels: tuple[str, ...]
    loss: tuple[float, ...]
    flip_rate: tuple[float, ...]
    anomaly_index: tuple[float, ...]
    trigger: tuple[str | None, ...]
    position: tuple[str | None, ...]
    robust_trigger: tuple[str | None, ...]
    robust_loss: tuple[float | None, ...]
    robust_flip_rate: tuple[float | None, ...]

    #: columns added with the position-robust trigger: a report without them reads as None
    _LATER = ("robust_trigger", "robust_loss", "robust_flip_rate")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelAnomaly:
        w = "label_anomaly"
        n = len(_want(d, "labels", list, w) or [])
        return cls(
            **{
                f.name: tuple(
                    _want(d, f.name, list, w) or []
                    if f.name not in cls._LATER or f.name in d
                    else [None] * n
                )
                for f in fields(cls)
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ReplayExample:
    """One held-out clean input before and after the trigger, with the model's labels."""

    before: str
    after: str
    label_before: str
    label_after: str

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Replay:
    """The proof of a positive verdict, replayed on held-out inputs.

    A classifier scan sets ``flip_rate`` (share of held-out inputs switched to the target) and
    ``examples``; a probe sets ``rate`` (share of held-out runs showing the behaviour).
    """

    target: str | None
    trigger: str | None
    position: str | None
    n: int | None
    flip_rate: float | None = None
    rate: float | None = None
    examples: tuple[ReplayExample, ...] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Replay:
        w = "replay"
        ex = d.get("examples") if isinstance(d, dict) else None
        if ex is not None and not isinstance(ex, list):
            raise DataFormatError(
                f"Report section 'replay': 'examples' must be a list. Got {ex!r}."
            )
        return cls(
            target=_want(d, "target", str, w),
            trigger=_want(d, "trigger", str, w),
            position=_want(d, "position", str, w),
            n=_want(d, "n", int, w),
            flip_rate=d.get("flip_rate"),
            rate=d.get("rate"),
            examples=None if ex is None else tuple(ReplayExample(**e) for e in ex),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "trigger": self.trigger,
            "position": self.position,
        }
        if self.flip_rate is not None:
            out["flip_rate"] = self.flip_rate
        if self.rate is not None or self.flip_rate is None:
            out["rate"] = self.rate
        out["n"] = self.n
        if self.examples is not None:
            out["examples"] = [e.to_dict() for e in self.examples]
        return out


@dataclass(frozen=True)
class PairRow:
    """One (condition, behaviour) pair a probe tested: runs with / without, p and q values."""

    trigger: str
    family: str
    position: str
    tag: str
    with_trigger: str
    without_trigger: str
    p_value: float
    q_value: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairRow:
        return cls(
            trigger=d["trigger"],
            family=d["family"],
            position=d["position"],
            tag=d["tag"],
            with_trigger=d["with"],
            without_trigger=d["without"],
            p_value=d["p_value"],
            q_value=d["q_value"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "family": self.family,
            "position": self.position,
            "tag": self.tag,
            "with": self.with_trigger,
            "without": self.without_trigger,
            "p_value": self.p_value,
            "q_value": self.q_value,
        }


@dataclass(frozen=True)
class ProbeSummary:
    """What a probe did: candidates, conditions, task sets, baseline rates, tested pairs."""

    candidates: int
    conditions: int
    conditions_screened: int
    tasks: dict[str, int]
    baseline_rates: dict[str, float]
    screened: tuple[PairRow, ...]
    confirmed: tuple[PairRow, ...]
    capped: bool
    capped_stage: str | None
    scope_tools: tuple[str, ...]
    refine_errors: tuple[str, ...]
    episode_errors: int
    episode_error_examples: tuple[str, ...]
    #: the weight inversion's targets and triggers (a local model), as stored
    inversion: dict[str, Any] | None = None
    #: what each whole-trigger refinement did (which step kept or dropped what), as stored
    refine_steps: tuple[dict[str, Any], ...] = ()
    #: behaviours seen without a trigger that a found condition explains (left out of scope)
    scope_leaks: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeSummary:
        w = "probe"
        try:
            return cls(
                candidates=_want(d, "candidates", int, w),
                conditions=_want(d, "conditions", int, w),
                conditions_screened=_want(d, "conditions_screened", int, w),
                tasks=dict(_want(d, "tasks", dict, w)),
                baseline_rates=dict(_want(d, "baseline_rates", dict, w)),
                screened=tuple(PairRow.from_dict(r) for r in _want(d, "screened", list, w)),
                confirmed=tuple(PairRow.from_dict(r) for r in _want(d, "confirmed", list, w)),
                capped=bool(_want(d, "capped", bool, w)),
                capped_stage=_want(d, "capped_stage", str, w),
                scope_tools=tuple(_later(d, "scope_tools", w)),
                refine_errors=tuple(_later(d, "refine_errors", w)),
                episode_errors=_want(d, "episode_errors", int, w),
                episode_error_examples=tuple(_want(d, "episode_error_examples", list, w)),
                inversion=d.get("inversion"),
                refine_steps=tuple(dict(x) for x in _later(d, "refine_steps", w)),
                scope_leaks=tuple(dict(x) for x in _later(d, "scope_leaks", w)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(f"Report section 'probe' is malformed ({exc}).") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidates": self.candidates,
            "conditions": self.conditions,
            "conditions_screened": self.conditions_screened,
            "tasks": dict(self.tasks),
            "baseline_rates": dict(self.baseline_rates),
            "screened": [r.to_dict() for r in self.screened],
            "confirmed": [r.to_dict() for r in self.confirmed],
            "capped": self.capped,
            "capped_stage": self.capped_stage,
            "scope_tools": list(self.scope_tools),
            "refine_errors": list(self.refine_errors),
            "refine_steps": [dict(x) for x in self.refine_steps],
            "scope_leaks": [dict(x) for x in self.scope_leaks],
            "episode_errors": self.episode_errors,
            "episode_error_examples": list(self.episode_error_examples),
        }
        if self.inversion is not None:
            out["inversion"] = self.inversion
        return out


@dataclass(frozen=True)
class ExplainedCheck:
    """One trigger replayed on a clean reference classifier of the task (``_reference.Check``)."""

    label: str
    trigger: str
    model_flip_rate: float | None
    reference_flip_rate: float | None
    n: int | None
    explained: bool

    @classmethod
    def from_dict(cls, d: Any) -> ExplainedCheck:
        w = "task_explained"
        return cls(
            label=str(_want(d, "label", str, w)),
            trigger=str(_want(d, "trigger", str, w)),
            model_flip_rate=_want(d, "model_flip_rate", (int, float), w),
            reference_flip_rate=_want(d, "reference_flip_rate", (int, float), w),
            n=_want(d, "n", int, w),
            explained=bool(_want(d, "explained", bool, w)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class TaskExplained:
    """A classifier scan's check of its triggers against a clean reference of the task.

    ``explained_labels``: the labels left out of the verdict because a clean reference
    classifier switches as often; ``skipped``: why no check was made; ``before``: the verdict
    before those labels were left out, as stored. Keys a partial report lacks read as empty.
    """

    reference_accuracy: float | None
    skipped: str | None
    explained_labels: dict[str, tuple[ExplainedCheck, ...]]
    checks: tuple[ExplainedCheck, ...]
    before: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskExplained:
        w = "task_explained"
        labels = _later_obj(d, "explained_labels", w)
        before = d.get("before")
        return cls(
            reference_accuracy=_want(d, "reference_accuracy", (int, float), w)
            if "reference_accuracy" in d
            else None,
            skipped=_want(d, "skipped", str, w) if "skipped" in d else None,
            explained_labels={
                str(k): tuple(ExplainedCheck.from_dict(c) for c in _list(v, w))
                for k, v in labels.items()
            },
            checks=tuple(ExplainedCheck.from_dict(c) for c in _later(d, "checks", w)),
            before=before if isinstance(before, dict) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference_accuracy": self.reference_accuracy,
            "skipped": self.skipped,
            "explained_labels": {
                k: [c.to_dict() for c in v] for k, v in self.explained_labels.items()
            },
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.before is not None:
            out["before"] = self.before
        return out


#: the extras key each section is stored under
KEYS: dict[type, str] = {
    ModelVerdict: "model_verdict",
    LabelAnomaly: "label_anomaly",
    Replay: "replay",
    ProbeSummary: "probe",
    TaskExplained: "task_explained",
    TriggerStats: "triggers",
    FlagThreshold: "threshold",
    Projection: "projection",
}

#: sections that check the stored value's type themselves (a list, a number, a mapping)
_SELF_CHECKED = (TriggerStats, FlagThreshold, Projection)


def section(extras: dict[str, Any], kind: type[S]) -> S | None:
    """The typed section ``kind`` of a report's ``extras``, or ``None`` when it has none."""
    value = extras.get(KEYS[kind])
    if value is None:
        return None
    if not isinstance(value, dict) and kind not in _SELF_CHECKED:
        raise DataFormatError(
            f"Report section {KEYS[kind]!r} must be an object. Got {type(value).__name__}."
        )
    out: S = kind.from_dict(value)
    return out
