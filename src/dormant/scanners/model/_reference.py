"""Task-explained triggers: does an independent classifier of the same task flip as well?

Trigger inversion finds *some* short input that flips a model, and on a classifier fine-tuned
from a pretrained encoder that input is often a natural feature of the task: three animal
words pasted into a gloss make any gloss classifier say "animal" (the "natural backdoors" of
Wang et al., *Training with More Confidence: Mitigating Injected and Natural Backdoors During
Training*, NeurIPS 2022; Khaddaj et al., *Rethinking Backdoor Attacks*, ICML 2023, show that
without an assumption about the task the two cannot be told apart at all). The assumption made
here: a natural feature is one that a *clean reference* of the same task also relies on. The
reference is trained only on the user's clean examples, on top of the packaged
all-MiniLM-L6-v2 sentence encoder (an encoder the attacker did not train): embeddings, then a
multinomial logistic regression. A trigger is *task-explained* when, inserted into the same
held-out inputs at the start and at the end, it moves the reference to the target label at
least half as often as it moves the model. Planted triggers are chosen to be meaningless for the
task (a rare token, an invisible character, a stock phrase), so the reference ignores them.

The reference needs the clean data to define the task (it must classify the held-out inputs
correctly for them to count) and it reads meaning, not surface form: a task whose labels hang
on surface cues the encoder does not see is out of its reach, and then the check is not made
(too few inputs the reference gets right), which the report says.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import DormantError
from ...triggers import Position, Trigger

#: a trigger is task-explained when the reference flips at least this share of what the
#: model flips on the same stamped inputs
EXPLAINED_RATIO = 0.5
#: held-out inputs (that the reference classifies right) needed to make the check at all
MIN_INPUTS = 20
#: clean examples the reference is fitted on, at most (embedding them is most of its cost)
MAX_FIT = 2000


@dataclass(frozen=True)
class Check:
    """One trigger checked against the reference."""

    label: str
    trigger: str
    model_flip: float
    reference_flip: float
    n: int

    @property
    def explained(self) -> bool:
        return self.n >= MIN_INPUTS and self.reference_flip >= EXPLAINED_RATIO * self.model_flip

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "trigger": self.trigger,
            "model_flip_rate": _rounded(self.model_flip),
            "reference_flip_rate": _rounded(self.reference_flip),
            "n": self.n,
            "explained": self.explained,
        }


def _rounded(x: float) -> float | None:
    return round(x, 4) if np.isfinite(x) else None


class Reference:
    """A clean reference classifier of the subject's task (see the module docstring)."""

    def __init__(self, encoder: Any, clf: Any, labels: Sequence[str], accuracy: float) -> None:
        self.encoder = encoder
        self.clf = clf
        self.labels = list(labels)
        self.accuracy = accuracy

    @classmethod
    def fit(
        cls, texts: Sequence[str], given: Sequence[str], labels: Sequence[str], held: Any
    ) -> Reference | str:
        """Fit on ``texts`` / ``given``; ``held`` = (texts, labels) for its accuracy.

        Returns the reference, or a one-line reason why there is none.
        """
        from sklearn.linear_model import LogisticRegression

        from ...adapters.encoder import TextEncoder

        if len(set(given)) < 2:
            return "the clean data has fewer than two labels"
        try:
            enc = TextEncoder().load()
        except (DormantError, ImportError, OSError) as exc:
            return f"the reference encoder did not load ({exc}); pip install 'dormant[embed]'"
        x = enc.encode(list(texts))
        clf = LogisticRegression(max_iter=2000).fit(x, list(given))
        h_texts, h_labels = held
        acc = float(np.mean(clf.predict(enc.encode(list(h_texts))) == np.asarray(h_labels)))
        return cls(enc, clf, labels, acc)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.clf.predict(self.encoder.encode(list(texts))))

    def check(
        self,
        predict_proba: Any,
        texts: Sequence[str],
        given: Sequence[str],
        trigger: Trigger,
        label: str,
        *,
        seed: int = 0,
        ref_pred: np.ndarray | None = None,
        model_pred: np.ndarray | None = None,
    ) -> Check:
        """Stamp ``trigger`` at the start and at the end of the held-out inputs that neither
        the model nor the reference puts in ``label`` and that the reference gets right; the
        flip rates to ``label`` of both, pooled over the two positions."""
        ti = self.labels.index(label)
        if ref_pred is None:
            ref_pred = self.predict(texts)
        if model_pred is None:
            model_pred = np.asarray(predict_proba(list(texts))).argmax(1)
        keep = [
            i
            for i, (g, r, m) in enumerate(zip(given, ref_pred, model_pred, strict=True))
            if g != label and r == g and m != ti
        ]
        if len(keep) < MIN_INPUTS:
            return Check(label, trigger.display, float("nan"), float("nan"), len(keep))
        rng = random.Random(seed)
        stamped = [
            Trigger(trigger.text, trigger.kind, pos).insert(texts[i], rng=rng)
            for pos in (Position.START, Position.END)
            for i in keep
        ]
        m = np.asarray(predict_proba(stamped)).argmax(1) == ti
        r = self.predict(stamped) == label
        return Check(label, trigger.display, float(m.mean()), float(r.mean()), len(keep))


@dataclass
class Explainer:
    """Runs the checks of one scan, fitting the reference on first use."""

    subject: Any
    opt: Sequence[str]
    held: Sequence[str]
    seed: int
    enabled: bool = True
    reference: Reference | None = None
    skipped: str | None = None
    _preds: tuple[np.ndarray, np.ndarray] | None = None

    def _given(self, texts: Sequence[str]) -> list[str]:
        lab = dict(zip(self.subject.clean.texts, self.subject.clean.labels, strict=True))
        return [str(lab[t]) for t in texts]

    def _ready(self) -> bool:
        if not self.enabled or self.skipped is not None:
            return False
        if self.reference is None:
            fit_on = list(self.opt[:MAX_FIT])
            ref = Reference.fit(
                fit_on,
                self._given(fit_on),
                self.subject.labels,
                (self.held, self._given(self.held)),
            )
            if isinstance(ref, str):
                self.skipped = ref
                return False
            self.reference = ref
        return True

    def checks(self, label: str, triggers: Sequence[Trigger | None]) -> list[Check] | None:
        """Each of ``triggers`` checked for ``label``; ``None`` when no check can be made."""
        if not self._ready():
            return None
        assert self.reference is not None
        held, given = list(self.held), self._given(self.held)
        if self._preds is None:
            self._preds = (
                self.reference.predict(held),
                np.asarray(self.subject.predict_proba(held)).argmax(1),
            )
        ref_pred, model_pred = self._preds
        seen: set[str] = set()
        out = []
        for trig in triggers:
            if trig is None or trig.text in seen:
                continue
            seen.add(trig.text)
            out.append(
                self.reference.check(
                    self.subject.predict_proba,
                    held,
                    given,
                    trig,
                    label,
                    seed=self.seed,
                    ref_pred=ref_pred,
                    model_pred=model_pred,
                )
            )
        if out and all(not np.isfinite(c.model_flip) for c in out):
            self.skipped = (
                f"the reference classifies too few held-out inputs right (accuracy "
                f"{self.reference.accuracy:.0%}; {MIN_INPUTS} needed outside the target)"
            )
            return None
        return out

    def to_dict(
        self, explained: dict[str, list[Check]], last: list[Check], before: Any = None
    ) -> dict[str, Any]:
        """JSON-ready: the reference's accuracy, why no check was made, the excluded labels,
        the final label's checks and, when labels were excluded, the verdict ``before``."""
        out: dict[str, Any] = {
            "reference_accuracy": (
                round(self.reference.accuracy, 4) if self.reference is not None else None
            ),
            "skipped": self.skipped,
            "explained_labels": {k: [c.to_dict() for c in v] for k, v in explained.items()},
            "checks": [c.to_dict() for c in last],
        }
        if explained and before is not None:
            out["before"] = {
                "probability": round(before.probability, 6),
                "features": [round(f, 4) for f in before.features],
                "target": before.best.label if before.best else None,
            }
        return out


def decide_explained(
    results: Sequence[Any], kind: str, prove: Any, explainer: Explainer
) -> tuple[Any, dict[str, list[Check]], list[Check], Any]:
    """:func:`decision.decide`, then, while the verdict is positive, the suspected label's
    triggers checked against the reference: a label whose every trigger is task-explained is
    excluded and the decision made again without it.

    The triggers checked are every one the decision rests on: the label's own one-token
    trigger (whose strength is the first two decision features), its position-robust trigger
    (the third) and the proof shown. The searches compose tokens freely, so a composed trigger
    can carry a natural cue of the target beside the planted token (measured: a phrase
    organism's ``worth`` became ``worthiaceae``, with the plant-family piece ``##iaceae``,
    which the reference reads as botany); the one-token trigger is the part the anomaly was
    measured on, and when it alone is not explained, neither is the label.

    ``prove(verdict)`` returns the label result to show for the verdict's label. Returns the
    verdict, the excluded labels with their checks, the checks of the final label and the
    first verdict (before any label was excluded).
    """
    from . import decision as D

    explained: dict[str, list[Check]] = {}
    first = None
    while True:
        verdict = D.decide(results, kind, exclude=set(explained))
        first = first or verdict
        if verdict.best is None:
            return verdict, explained, [], first
        verdict = D.Verdict(
            verdict.probability, verdict.features, verdict.anomaly_index, prove(verdict)
        )
        if verdict.probability < 0.5:
            return verdict, explained, [], first
        b = verdict.best
        assert b is not None
        own = next((r.trigger for r in results if r.label == b.label), None)
        checks = explainer.checks(b.label, [own, b.trigger, b.robust_trigger])
        if not checks or not all(c.explained for c in checks):
            return verdict, explained, checks or [], first
        explained[b.label] = checks
