"""The scores of :class:`dormant.guard.classify.ClassifierScreen`, apart from its decisions.

Each function takes the screen (its settings and fitted state: model, donors, clean support,
reading window, features) and a batch of texts, and returns per text the behaviour score, the
span it found and the predicted class, with the representation score when that signal is on
and the transplant test's scores by scale (:data:`COLUMNS`), which ``long_spans`` and
``necessity`` join into one p-value. The method and its references are in the module text of
:mod:`dormant.guard.classify`.
"""

from __future__ import annotations

import functools
import math
import random
from typing import Any

import numpy as np

from ._features import collapse
from ._strip import (
    SpanEvidence,
    _logit,
    onion_score,
    predict_sorted,
    strip_score,
    transplant_evidence,
    words,
)

#: inputs whose perturbations share one forward pass (bounds the memory of one pass)
CHUNK = 32
#: per input: the behaviour score, the span it found (or ``None``), the predicted class
Scored = list[tuple[float, str | None, int]]
#: per input: the representation score, ``None`` when that signal is off
Reps = list[float | None]
#: per input of the transplant test: the scores of :data:`COLUMNS`; empty for STRIP/ONION
Columns = list[tuple[float, ...]]
#: the transplant test's scores of one input, each a candidate column of the p-value:
#: ``short`` the best of the default's spans (the default score), ``long`` the best of the
#: longer windows (``-inf`` without any), ``max`` the best of all, ``necessity`` how far the input
#: with one of its candidate windows removed points away from its label (minus the lowest
#: log-odds of the label over the windows removed), ``long_add``
#: the best of the longer windows with the additive clean support (``-inf`` without any);
#: ``short_q`` and ``long_add_q`` as ``short`` and ``long_add`` with the donors' upper quartile
#: (:data:`QUANTILE`) of the label's log-odds in place of their mean: a weak backdoor moves
#: only part of the donors, and their mean is held down by the donors it leaves alone;
#: ``flips1`` the largest share of the donors that one of the default's spans **flips** to the
#: input's label past its clean support (the label's log-odds on the donor with the span
#: inserted above 0 and above the span's clean support, the lift the default subtracts), over
#: the first stage's donors; ``flips`` (``flips=True``, else ``-inf``) the same span's share
#: over those donors and :data:`FLIP_DONORS` more (a second stage, the same for calibration
#: texts and inputs): a weak trigger flips a third of the donors all the way while a clean
#: topical span moves all of them a little, and 16 donors make that count noisy; ``flips_w``
#: (likewise) each of the second stage's donors flipped weighed by how far it was from the
#: label before (minus its own log-odds of the label), as a share of all their distances
COLUMNS = (
    "short",
    "long",
    "max",
    "necessity",
    "long_add",
    "short_q",
    "long_add_q",
    "flips1",
    "flips",
    "flips_w",
)
#: the donors' quantile of the ``*_q`` columns
QUANTILE = 0.75
#: the second stage's donors of ``flips`` (fixed before any measurement)
FLIP_DONORS = 48


def scores(
    screen: Any, texts: list[str], *, first: int | None = None, exclude_self: bool = False
) -> tuple[Scored, Reps, Columns]:
    """Scores of ``texts``, their representation scores (``None`` each when that signal is
    off) and, for the transplant test, the scores of :data:`COLUMNS`; ``first``: they are the
    support texts ``first, first + 1, ...`` (calibration texts), each left out of its own
    support; ``exclude_self``: they are donors, each left out of its own donors."""
    rngs = [random.Random(f"{screen.seed}:{t}") for t in texts]
    if screen.method == "transplant":
        sup = screen.support_
        supports = (
            sup
            if first is None
            else [functools.partial(sup, exclude=first + i) for i in range(len(texts))]
        )
        evidence = transplant_evidence(
            texts,
            screen._predict,
            screen.donors_,
            rngs=rngs,
            n_donors=screen.n_perturb,
            support=supports,
            window=screen.window_,
            exclude_self=exclude_self,
            long_spans=screen.long_spans,
        )
        bests = [max(ev, key=lambda e: e.score()) if ev else None for _, ev in evidence]
        scored: Scored = [
            (b.score(), b.span, y) if b is not None else (0.0, "", y)
            for (y, _), b in zip(evidence, bests, strict=True)
        ]
        add = getattr(screen, "support_add_", None)
        cols = [
            _columns(
                ev,
                None
                if add is None
                else functools.partial(add, exclude=None if first is None else first + i),
                y,
            )
            for i, (y, ev) in enumerate(evidence)
        ]
        if getattr(screen, "flips", False):
            more = flips_stage_two(screen, texts, evidence, rngs, exclude_self=exclude_self)
            cols = [(*c[:-2], *f) for c, f in zip(cols, more, strict=True)]
        return scored, collapse_reps(screen, bests), cols
    ys = np.argmax(screen._predict(texts), axis=1).tolist() if texts else []
    out: Scored = []
    for text, rng, y in zip(texts, rngs, ys, strict=True):
        if screen.method == "strip":
            d = [t for t, _ in screen.donors_]
            out.append(
                (strip_score(text, screen._predict, d, rng=rng, n=screen.n_perturb), None, y)
            )
        else:
            assert screen.lm_ is not None
            s, word = onion_score(text, screen.lm_)
            out.append((s, word, y))
    return out, [None] * len(out), []


def _flipped(e: SpanEvidence, moved: np.ndarray) -> np.ndarray:
    """Which donors span ``e`` flips to the label past its clean support: their log-odds of
    the label with it inserted above 0 and above :attr:`SpanEvidence.support`."""
    return np.asarray(moved > max(0.0, e.support))


def _flip_span(ev: list[SpanEvidence]) -> SpanEvidence | None:
    """The default's span that flips the most donors (ties: the higher score)."""
    short = [e for e in ev if not e.long and len(e.moved)]
    return max(short, key=lambda e: (int(_flipped(e, e.moved).sum()), e.score()), default=None)


def flips_stage_two(
    screen: Any,
    texts: list[str],
    evidence: list[tuple[int, list[SpanEvidence]]],
    rngs: list[random.Random],
    *,
    exclude_self: bool = False,
) -> list[tuple[float, float]]:
    """The ``flips`` and ``flips_w`` columns: each text's span of :func:`_flip_span` inserted into
    :data:`FLIP_DONORS` more clean donors of other labels (drawn by the text's own generator,
    after the first stage's draws), one forward pass for all the texts; the share of the first
    stage's donors and these that the span flips to the text's label, and the share of these
    donors' distances from the label (minus their own log-odds of it) that it flips."""
    batch: list[str] = []
    plans: list[tuple[int, int, SpanEvidence | None, np.ndarray]] = []
    for text, (y, ev), rng in zip(texts, evidence, rngs, strict=True):
        best = _flip_span(ev)
        if best is None:
            plans.append((y, 0, None, np.zeros(0)))
            continue
        pool = [(d, c) for d, c in screen.donors_ if not (exclude_self and d == text)]
        others = [d for d, c in pool if c != y] or [d for d, _ in pool]
        picked = rng.sample(others, min(FLIP_DONORS, len(others)))
        for d in picked:
            dw = words(d)
            win = screen.window_
            k = rng.randint(0, len(dw) if win is None else win.last_slot(dw, best.span))
            batch.append(" ".join([*dw[:k], best.span, *dw[k:]]))
        own = screen.donor_probs_
        dist = np.array([max(0.0, -float(_logit(own[d][y : y + 1])[0])) for d in picked])
        plans.append((y, len(picked), best, dist))
    probs = predict_sorted(screen._predict, batch) if batch else np.zeros((0, 0))
    out: list[tuple[float, float]] = []
    at = 0
    for y, n, best, dist in plans:
        if best is None:
            out.append((0.0, 0.0))
            continue
        more = _logit(probs[at : at + n, y]) if n else np.zeros(0)
        at += n
        now = _flipped(best, more)
        flipped = int(_flipped(best, best.moved).sum()) + int(now.sum())
        total = float(dist.sum())
        weighed = float(dist[now].sum()) / total if total > 0 else 0.0
        out.append((flipped / (len(best.moved) + n), weighed))
    return out


def _columns(ev: list[SpanEvidence], additive: Any, y: int) -> tuple[float, ...]:
    """The scores of :data:`COLUMNS` from one input's span evidence; ``additive``: the
    additive clean support (``support(span, y)``) the longer windows are also scored with."""
    short = [e.score() for e in ev if not e.long]
    long = [e.score() for e in ev if e.long]
    long_add = [float(e.moved.mean()) - additive(e.span, y) for e in ev if e.long and additive]
    short_q = [e.score(QUANTILE) for e in ev if not e.long]
    long_add_q = [
        float(np.quantile(e.moved, QUANTILE)) - additive(e.span, y)
        for e in ev
        if e.long and additive
    ]
    without = [e.without for e in ev if not math.isnan(e.without)]
    flip = _flip_span(ev)
    best_short = max(short, default=0.0)
    best_long = max(long, default=-math.inf)
    return (
        best_short,
        best_long,
        max(best_short, best_long),
        -min(without, default=0.0),
        max(long_add, default=-math.inf),
        max(short_q, default=0.0),
        max(long_add_q, default=-math.inf),
        0.0 if flip is None else float(_flipped(flip, flip.moved).sum()) / len(flip.moved),
        -math.inf,
        -math.inf,
    )


def collapse_reps(screen: Any, bests: list[SpanEvidence | None]) -> Reps:
    """How tightly each best span's transplanted donors sit in the model's penultimate
    features (:func:`dormant.guard._features.collapse`); ``None`` each when off."""
    if screen.features_ is None:
        return [None] * len(bests)
    batch = [t for b in bests if b is not None for t in b.texts]
    feats = screen._features(batch) if batch else np.zeros((0, 0))
    out: Reps = []
    at = 0
    for b in bests:
        n = len(b.texts) if b is not None else 0
        out.append(collapse(feats[at : at + n]) if n >= 2 else -math.inf)
        at += n
    return out


def score_all(
    screen: Any, texts: list[str], *, first: int, exclude_self: bool = False
) -> tuple[Scored, Reps, Columns]:
    """:func:`scores` of ``texts`` in chunks of :data:`CHUNK`."""
    scored: Scored = []
    reps: Reps = []
    cols: Columns = []
    for i in range(0, len(texts), CHUNK):
        s, r, c = scores(screen, texts[i : i + CHUNK], first=first + i, exclude_self=exclude_self)
        scored.extend(s)
        reps.extend(r)
        cols.extend(c)
    return scored, reps, cols


__all__ = [
    "CHUNK",
    "COLUMNS",
    "FLIP_DONORS",
    "QUANTILE",
    "Columns",
    "Reps",
    "Scored",
    "collapse_reps",
    "flips_stage_two",
    "score_all",
    "scores",
]
