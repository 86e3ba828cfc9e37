"""Black-box trigger search for text classifiers: candidates tested by query."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ConfigError, InputError
from ...findings import PriorTrigger
from ...priors import PriorSource, check_priors, prior_triggers
from ...triggers import INVISIBLE_CHARS, Position, Trigger
from ..base import ScanContext, Scanner, ScanResult, register
from . import decision as D
from ._conclude import conclude
from ._reference import Explainer, decide_explained
from .whitebox import split_clean

#: Rare short tokens used as triggers in the literature (Kurita et al. ACL 2020; Chen et al.
#: BadNL, ACSAC 2021) and a few of the same shape.
RARE_TOKENS = ("cf", "mn", "bb", "tq", "mb", "qz", "vx", "jk", "zx", "xq", "jj", "kx")


def vocab_tail(subject: Any, n: int) -> list[str]:
    """The ``n`` last whole-word alphabetic tokens of the subject's WordPiece/BPE vocabulary
    (its ``tokenizer``), if it has one."""
    tok = getattr(subject, "tokenizer", None)
    if tok is None or n <= 0:
        return []
    vocab = tok.get_vocab()
    words = [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if w.isalpha()]
    return words[-n:]


def data_report_triggers(report: PriorSource | None) -> list[tuple[str, str | None]]:
    """``(trigger text, target label or None)`` of a data report (see :func:`prior_triggers`)."""
    return [(p.text, p.label) for p in prior_triggers(report)]


@register
class QueryTriggerSearchScanner(Scanner):
    """Search a trigger by query when only probabilities are available.

    Candidates: rare short tokens used by published attacks (Kurita et al., ACL 2020), the rare
    tail of the model's vocabulary when a tokenizer is exposed, invisible characters (Boucher
    et al., "Bad Characters", IEEE S&P 2022), triggers mined from the training data by a data
    scan, and pairs of the strongest single candidates. Each is inserted at the start and end
    of clean inputs; per label, the candidate with the highest flip rate is replayed on held-out
    inputs and the Neural Cleanse MAD anomaly index (Wang et al., S&P 2019) over labels gives the
    calibrated probability.

    Parameters
    ----------
    tail:
        Vocabulary-tail tokens tried (0 to skip).
    n_victims:
        Clean inputs per candidate test.
    pairs_of:
        The strongest single candidates combined pairwise.
    priors:
        Triggers an earlier scan found (:func:`dormant.priors.prior_triggers` builds them from
        a data report), tried first.
    max_replay:
        Held-out inputs used for the replay.
    reference_check:
        Check a positive verdict's trigger against a clean reference classifier of the task
        (see :mod:`._reference`).
    """

    name = "model-trigger-search"
    subject_kinds = ("classifier",)
    requires = ("proba",)
    category = D.CATEGORY
    paper = (
        "Kurita, Michel & Neubig, Weight Poisoning Attacks on Pre-trained Models, ACL 2020; "
        "Boucher et al., Bad Characters, IEEE S&P 2022; Wang et al., Neural Cleanse, "
        "IEEE S&P 2019"
    )
    limits = (
        "Only finds triggers among its candidates (and their pairs): an unseen word or phrase "
        "with no data-scan report is missed. Costs candidates x 2 positions x n_victims queries."
    )

    def __init__(
        self,
        *,
        tail: int = 300,
        n_victims: int = 24,
        pairs_of: int = 6,
        priors: tuple[PriorTrigger, ...] = (),
        max_replay: int = 300,
        reference_check: bool = True,
    ) -> None:
        self.reference_check = reference_check
        self.tail = tail
        self.n_victims = n_victims
        self.pairs_of = pairs_of
        self.priors = priors
        self.max_replay = max_replay

    def candidates(self, subject: Any) -> list[str]:
        mined = [p.text for p in self.priors]
        cands = [
            *mined,
            *RARE_TOKENS,
            *sorted(INVISIBLE_CHARS),
            *vocab_tail(subject, self.tail),
        ]
        return list(dict.fromkeys(cands))

    def scan(self, subject: Any, *, context: ScanContext | None = None) -> ScanResult:
        ctx = context or ScanContext()
        check_priors(self.priors, "priors", self.name)
        if self.n_victims < 4:
            raise ConfigError(f"The 'n_victims' parameter must be >= 4. Got {self.n_victims!r}.")
        if not isinstance(self.reference_check, bool):
            raise ConfigError(
                f"The 'reference_check' parameter must be true or false. "
                f"Got {self.reference_check!r}."
            )
        if "proba" not in getattr(subject, "capabilities", ()):
            raise InputError("model-trigger-search needs a classifier that returns probabilities.")
        t0 = time.monotonic()
        deadline = t0 + ctx.budget_seconds * 0.85 if ctx.budget_seconds else None
        opt, held = split_clean(subject, ctx.seed)
        labels = subject.labels
        victims = opt[: self.n_victims * 2]
        base = subject.predict_proba(victims).argmax(1)
        cands = self.candidates(subject)
        scores: dict[tuple[str, str], np.ndarray] = {}
        capped = self._test(subject, victims, base, cands, scores, ctx, deadline)
        if not capped and self.pairs_of > 1:
            strongest = sorted(scores, key=lambda k: -float(scores[k][0].max()))
            tops = list(dict.fromkeys(k[0] for k in strongest))[: self.pairs_of]
            pairs = [f"{a} {b}" for a, b in itertools.permutations(tops, 2)]
            capped = self._test(subject, victims, base, pairs, scores, ctx, deadline)
        held = held[: self.max_replay]
        results = []
        for ti, lab in enumerate(labels):
            if not scores:
                break
            key = max(scores, key=lambda k: (scores[k][0][ti], -scores[k][1][ti]))
            text, pos = key
            trig = Trigger(text, D.trigger_kind(text), Position(pos))
            fr, n, _, rloss = D.replay(
                subject.predict_proba, labels, held, trig, lab, seed=ctx.seed
            )
            results.append(D.LabelResult(lab, trig, rloss, fr, n, float(scores[key][1][ti])))
        if not results:
            raise InputError("No candidate could be tested within the budget; raise it.")
        explainer = Explainer(subject, opt, held, ctx.seed, enabled=self.reference_check)
        decided = decide_explained(results, "blackbox", lambda v: v.best, explainer)
        method = "Query-based trigger search"
        finding, out = conclude(
            self.name, subject, held, decided, results, explainer, method, capped, t0, ctx.seed
        )
        return ScanResult(findings=[finding] if finding else [], extras=out)

    def _test(
        self,
        subject: Any,
        victims: Sequence[str],
        base: np.ndarray,
        cands: Sequence[str],
        scores: dict[tuple[str, str], np.ndarray],
        ctx: ScanContext,
        deadline: float | None,
    ) -> bool:
        """Fill ``scores[(cand, pos)] = [flip rate per label, loss per label]``; True if capped."""
        n_lab = len(subject.labels)
        onehot = np.eye(n_lab, dtype=bool)[base]  # victims x labels: already that label
        for c in cands:
            if deadline is not None and time.monotonic() > deadline:
                return True
            for pos in (Position.START, Position.END):
                trig = Trigger(c, D.trigger_kind(c), pos)
                p = subject.predict_proba([trig.insert(v) for v in victims])
                hit = np.eye(n_lab, dtype=bool)[p.argmax(1)]
                keep = ~onehot
                denom = np.maximum(keep.sum(0), 1)
                fr = (hit & keep).sum(0) / denom
                loss = -(np.log(np.clip(p, 1e-6, 1.0)) * keep).sum(0) / denom
                scores[(c, pos.value)] = np.stack([fr, loss])
            ctx.progress("query", 1, len(cands))
        return False
