"""Input-side trigger scores for a text classifier: transplant, STRIP and ONION.

Each score is a number per input, higher = more suspicious; :mod:`dormant.guard.classify`
turns it into a conformal p-value against clean calibration texts, so no cut-off here is
hand-set. ``predict`` is any ``list[str] -> (n, k) probabilities`` function.

- :func:`transplant_score` — the signature of a trigger is a *short span that decides the
  prediction on its own*: removing it changes the prediction (leave-one-out attribution over
  windows of 1-3 words, as in the word-importance scores of Li, Monroe & Jurafsky 2016,
  "Understanding Neural Networks through Representation Erasure"), and inserting it into clean
  texts of other classes moves them to the input's predicted label. A trigger moves nearly
  all of them; an ordinary topical word moves few, because the rest of the clean text still
  speaks for its own class. This is STRIP's observation (a trigger overrides whatever it is
  combined with) measured on the span the attribution picked, instead of on random blends.
- :func:`strip_score` — STRIP (Gao et al., ACSAC 2019, "STRIP: A Defence Against Trojan Attacks
  on Deep Neural Networks"), for text as in Gao et al. 2021 ("Design and Evaluation of a
  Multi-Domain Trojan Detection Method on Deep Neural Networks", IEEE TDSC): each of ``n``
  perturbed copies keeps each word of the input with probability one half and replaces the
  others with words of a clean donor text; the score is minus the mean prediction entropy (a
  trigger keeps the prediction fixed).
- :class:`BigramLM` / :func:`onion_score` — ONION (Qi et al., EMNLP 2021, "ONION: A Simple and
  Effective Defense Against Textual Backdoor Attacks"): a word whose removal lowers the
  input's perplexity most is an outlier; the score is the largest such drop. ONION uses GPT-2;
  no weights can be downloaded here, so the language model is a word bigram model with
  interpolated absolute discounting (Ney, Essen & Kneser 1994) fitted on the clean
  calibration texts. Written here because no maintained n-gram package installs offline with
  this project (``nltk.lm`` is not a dependency, and KenLM needs a compiler and its binary).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._window import ReadingWindow

Predict = Callable[[list[str]], np.ndarray]
#: ``support(span, label) -> lift`` (see :class:`SpanSupport`)
Support = Callable[[str, int], float]

_WORD = re.compile(r"\w+")
#: words and single symbol characters, the pieces a BERT-style tokenizer splits a text into
#: before WordPiece (Devlin et al. 2019: every punctuation character is a token of its own)
_PIECE = re.compile(r"\w+|[^\w\s]")
#: pseudo-texts of the base rate in :class:`SpanSupport`'s estimate
PSEUDO = 4.0
#: window lengths (words) tried by the leave-one-out attribution
WINDOWS = (1, 2, 3)
#: words added on each side of the best window for one more candidate span
EXTEND = 2
#: longer window lengths (words) tried with ``long_spans``: the best window of each length
#: by the same leave-one-out attribution is one more candidate span (multi-scale windows,
#: so that a phrase of up to eight words, or twelve with :data:`EXTEND`, is moved whole)
LONG_WINDOWS = (4, 6, 8)


def words(text: str) -> list[str]:
    """Whitespace words (punctuation stays attached: ``uid=4731`` is one word)."""
    return text.split()


def predict_sorted(predict: Predict, texts: list[str]) -> np.ndarray:
    """``predict(texts)`` with the texts ordered by length, rows returned in input order.

    A padded batch costs its longest text, so grouping texts of like length makes one big
    forward pass over many inputs' perturbations cheaper than the same texts in input order.
    """
    if not texts:
        return np.zeros((0, 0))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    p = np.asarray(predict([texts[i] for i in order]), dtype=float)
    out = np.empty_like(p)
    out[order] = p
    return out


def transplant_score(
    text: str,
    predict: Predict,
    donors: Sequence[tuple[str, int]],
    *,
    rng: random.Random,
    n_donors: int = 16,
    top_k: int = 3,
    support: Callable[[str, int], float] | None = None,
    window: ReadingWindow | None = None,
) -> tuple[float, str, int]:
    """:func:`transplant_scores` of one text."""
    return transplant_scores(
        [text],
        predict,
        donors,
        rngs=[rng],
        n_donors=n_donors,
        top_k=top_k,
        support=support,
        window=window,
    )[0]


@dataclass(frozen=True)
class SpanEvidence:
    """What the transplant test measured for one candidate span of one input.

    Attributes
    ----------
    span:
        The span (whitespace words of the input).
    moved:
        Log-odds of the input's label on each donor text with the span inserted (clipped to
        ``[logit(1e-4), logit(1 - 1e-4)]``), one per donor.
    support:
        The clean data's own log-odds lift of the span for the label (:class:`SpanSupport`).
    texts:
        The donor texts with the span inserted, in the order of :attr:`moved`.
    long:
        The span is one of the longer windows of ``long_spans`` (:data:`LONG_WINDOWS`), not
        one of the default's candidates.
    without:
        The input's log-odds of its label with the span removed (leave-one-out erasure, Li,
        Monroe & Jurafsky 2016): very negative when the rest of the input speaks against the
        label, i.e. the span is *necessary* to it; ``nan`` for the widened span, which the
        attribution does not remove.
    """

    span: str
    moved: np.ndarray
    support: float
    texts: tuple[str, ...] = ()
    long: bool = False
    without: float = math.nan

    def score(self, quantile: float | None = None) -> float:
        """The mean of :attr:`moved` less :attr:`support`; with ``quantile``, that quantile of
        :attr:`moved` (e.g. ``0.75``, the donors' upper quartile) in place of the mean."""
        if quantile is None:
            return float(self.moved.mean()) - self.support
        return float(np.quantile(self.moved, quantile)) - self.support


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(p / (1 - p)))


def transplant_evidence(
    texts: Sequence[str],
    predict: Predict,
    donors: Sequence[tuple[str, int]],
    *,
    rngs: Sequence[random.Random],
    n_donors: int = 16,
    top_k: int = 3,
    support: Support | Sequence[Support] | None = None,
    window: ReadingWindow | None = None,
    exclude_self: bool = False,
    long_spans: bool = False,
) -> list[tuple[int, list[SpanEvidence]]]:
    """The predicted class index of each text and the evidence for each candidate span.

    Two calls of ``predict`` for all the texts together (:func:`predict_sorted`): the texts
    with their leave-one-out windows, then every candidate span inserted into its donors.
    ``support``: one function for all texts, or one per text; ``window``: where the model
    reads (:class:`~dormant.guard._window.ReadingWindow`), so that a span is inserted only
    where it is read (``None``: anywhere); ``exclude_self``: a text that is itself one of the
    donors is not among its own donors (a donor scored as a calibration text, leave-one-out).
    See :func:`transplant_scores`.
    """
    if len(rngs) != len(texts):
        raise ValueError(f"rngs: need one per text ({len(texts)}), got {len(rngs)}")
    if not donors:
        raise ValueError("donors: need at least one clean donor text")
    if support is None or callable(support):
        supports: list[Support | None] = [support] * len(texts)
    else:
        supports = list(support)
        if len(supports) != len(texts):
            raise ValueError(f"support: need one per text ({len(texts)}), got {len(supports)}")
    # phase 1: every text and its leave-one-out windows, one forward pass
    batch: list[str] = []
    plans: list[tuple[list[str], list[tuple[int, int]], int, int]] = []
    for text in texts:
        ws = words(text)
        cands = [(i, n) for n in WINDOWS for i in range(len(ws) - n + 1) if n < len(ws) or n == 1]
        n_short = len(cands)
        if long_spans:
            cands += [(i, n) for n in LONG_WINDOWS for i in range(len(ws) - n + 1) if n < len(ws)]
        plans.append((ws, cands, len(batch), n_short))
        batch.append(text)
        batch.extend(" ".join(ws[:i] + ws[i + n :]) for i, n in cands)
    probs = predict_sorted(predict, batch)
    # phase 2: the candidate spans of every text inserted into its donors, one forward pass
    # y, spans, offset in the batch, donors, per span (log-odds without it, long)
    jobs: list[tuple[int, list[str], int, int, list[tuple[float, bool]]]] = []
    batch = []
    for text, (ws, cands, at, n_short), rng in zip(texts, plans, rngs, strict=True):
        p0 = probs[at]
        y = int(np.argmax(p0))
        if not ws:
            jobs.append((y, [], len(batch), 0, []))
            continue
        all_drops = p0[y] - probs[at + 1 : at + 1 + len(cands), y]
        lo_without = _logit(probs[at + 1 : at + 1 + len(cands), y])
        drops = all_drops[:n_short]
        order = np.argsort(-drops, kind="stable")
        spans: list[str] = []
        # per span: the label's log-odds without it (nan: not removed), and whether it is long
        info: list[tuple[float, bool]] = []
        for j in order:
            i, n = cands[int(j)]
            span = " ".join(ws[i : i + n])
            if span not in spans:
                spans.append(span)
                info.append((float(lo_without[int(j)]), False))
            if len(spans) >= top_k:
                break
        # a longer trigger (a phrase, a sentence) loses its effect when any 1-3 words of it
        # go, so the best window is also tried with EXTEND words more on each side
        i, n = cands[int(order[0])]
        wide = " ".join(ws[max(0, i - EXTEND) : i + n + EXTEND])
        if wide not in spans:
            spans.append(wide)
            info.append((math.nan, False))
        for length in LONG_WINDOWS if long_spans else ():
            # the window of this length whose removal lowers the label most (the first of ties)
            best_j, best_d = -1, -np.inf
            for j in range(n_short, len(cands)):
                if cands[j][1] == length and all_drops[j] > best_d:
                    best_j, best_d = j, float(all_drops[j])
            if best_j >= 0:
                i, n = cands[best_j]
                span = " ".join(ws[i : i + n])
                if span not in spans:
                    spans.append(span)
                    info.append((float(lo_without[best_j]), True))
        pool = [(d, c) for d, c in donors if not (exclude_self and d == text)]
        others = [d for d, c in pool if c != y] or [d for d, _ in pool]
        picked = rng.sample(others, min(n_donors, len(others)))
        jobs.append((y, spans, len(batch), len(picked), info))
        for span in spans:
            for d in picked:
                dw = words(d)
                k = rng.randint(0, len(dw) if window is None else window.last_slot(dw, span))
                batch.append(" ".join([*dw[:k], span, *dw[k:]]))
    probs = predict_sorted(predict, batch) if batch else np.zeros((0, 0))
    out: list[tuple[int, list[SpanEvidence]]] = []
    for (y, spans, off, n_picked, info), sup in zip(jobs, supports, strict=True):
        if not spans:
            out.append((y, []))
            continue
        moved = _logit(probs[off : off + len(spans) * n_picked, y]).reshape(len(spans), n_picked)
        out.append(
            (
                y,
                [
                    SpanEvidence(
                        span,
                        moved[j],
                        sup(span, y) if sup is not None else 0.0,
                        tuple(batch[off + j * n_picked : off + (j + 1) * n_picked]),
                        long=info[j][1],
                        without=info[j][0],
                    )
                    for j, span in enumerate(spans)
                ],
            )
        )
    return out


def transplant_scores(
    texts: Sequence[str],
    predict: Predict,
    donors: Sequence[tuple[str, int]],
    *,
    rngs: Sequence[random.Random],
    n_donors: int = 16,
    top_k: int = 3,
    support: Support | Sequence[Support] | None = None,
    window: ReadingWindow | None = None,
    long_spans: bool = False,
) -> list[tuple[float, str, int]]:
    """How far one short span of each text moves clean donor texts of other classes to the
    text's predicted label ``y``: the mean log-odds of ``y`` over the donors with the span
    inserted at a random place, for the span (of the ``top_k`` windows of 1-3 words whose
    removal lowers the label's probability most — leave-one-out attribution — and the first
    widened by two words on each side) where it is largest, less the clean data's own support
    (log-odds lift) for that span meaning ``y`` (``support(span, y)``, see
    :class:`SpanSupport`): a topical word moves texts *and* is supported by the clean data
    where it occurs; a trigger moves texts and is not.

    All the texts go through ``predict`` in two calls (:func:`transplant_evidence`), so a
    batch of inputs costs two padded forward passes, not two per input. ``donors``: clean
    texts with the model's own predicted class index; ``rngs``: one random generator per text;
    ``support``: one function, or one per text; ``window``: insert each span only where the
    model reads it (:mod:`dormant.guard._window`); ``long_spans``: also the best window of
    each length in :data:`LONG_WINDOWS` (see :func:`transplant_evidence`). Returns per text
    the score, the span, and the predicted class index of the text.
    """
    out: list[tuple[float, str, int]] = []
    for y, ev in transplant_evidence(
        texts,
        predict,
        donors,
        rngs=rngs,
        n_donors=n_donors,
        top_k=top_k,
        support=support,
        window=window,
        long_spans=long_spans,
    ):
        if not ev:
            out.append((0.0, "", y))
            continue
        best = max(ev, key=lambda e: e.score())
        out.append((best.score(), best.span, y))
    return out


class SpanSupport:
    """How much more often than usual the clean texts that contain a span, or one of its
    words, are (predicted as) a label — the span's *lift* for that label, in log-odds.

    Words here are runs of word characters, case-folded (``game,`` is ``game``). For a word
    sequence ``u`` occurring in ``n`` clean texts, ``n_y`` of them predicted ``y``, the estimate
    of P(y | u occurs) is shrunk towards the base rate ``p_y`` of ``y`` among the clean texts,
    ``(n_y + m p_y) / (n + m)`` with ``m = 4`` pseudo-texts (additive smoothing with a prior
    mean). ``support(span, y)`` is the largest ``logit(estimate) - logit(p_y)`` over the span
    and each of its words, and at least 0: a span whose effect one ordinary word of it explains
    (``game Warlords`` for ``games``) has a large lift; a trigger (never seen) and function
    words (``of``, seen everywhere) have none. ``exclude=i`` leaves text ``i`` out of the
    counts (a calibration text scored against the others, as a new input is).

    ``additive=True`` sums the words' positive lifts instead of taking the largest (the
    naive-Bayes combination: under conditional independence the words' weights of evidence,
    I. J. Good, "Probability and the Weighing of Evidence", 1950, add on the log-odds scale),
    so a wide span that strings several ordinary topical words of the label together is
    explained by all of them; a trigger's unseen token adds nothing.

    ``symbols=True`` also counts every symbol character (``“``, ``‘``, ``<``, ``=``, ``$``) as a
    word of its own, as the model's tokenizer reads it. Without it a clean span whose pull on
    the label comes from its punctuation — the Jargon File's curly quotes, which a model
    trained on dictionary sources learns as a sign of ``jargon`` — has no support (its words
    are rare) and scores like a trigger, and such clean texts set the conformal threshold
    (BENCHMARKS.md, "symbols in the clean support").
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        n_labels: int,
        *,
        additive: bool = False,
        symbols: bool = False,
    ) -> None:
        self.additive = additive
        self.symbols = symbols
        self._token = _PIECE if symbols else _WORD
        self._docs = []
        self._words: dict[str, Counter[int]] = {}
        base: Counter[int] = Counter()
        for t, y in zip(texts, labels, strict=True):
            ws = self._token.findall(t.casefold())
            self._docs.append((f" {' '.join(ws)} ", int(y)))
            base[int(y)] += 1
            for w in set(ws):
                self._words.setdefault(w, Counter())[int(y)] += 1
        n = max(1, len(self._docs))
        self._prior = [(base[c] + 1) / (n + n_labels) for c in range(n_labels)]

    def _lift(self, counts: Counter[int] | None, y: int) -> float:
        if not counts:
            return 0.0
        p = self._prior[y]
        est = (counts[y] + PSEUDO * p) / (sum(counts.values()) + PSEUDO)
        return math.log(est / (1 - est)) - math.log(p / (1 - p))

    def __call__(self, span: str, y: int, *, exclude: int | None = None) -> float:
        """The lift of ``span`` for label ``y``; ``exclude``: the index of one of the texts
        to leave out of the counts (a calibration text scored against all the others)."""
        ws = self._token.findall(span.casefold())
        own_doc, own = "", Counter[int]()
        if exclude is not None:
            own_doc, lab = self._docs[exclude]
            own = Counter({lab: 1})
        best = total = 0.0
        for w in dict.fromkeys(ws):
            counts = self._words.get(w)
            if counts and f" {w} " in own_doc:
                counts = counts - own
            lift = self._lift(counts, y)
            best = max(best, lift)
            total += max(lift, 0.0)
        if self.additive:
            best = total
        if len(ws) > 1:
            key = f" {' '.join(ws)} "
            multi: Counter[int] = Counter(
                lab for k, (doc, lab) in enumerate(self._docs) if key in doc and k != exclude
            )
            best = max(best, self._lift(multi, y))
        return best


def strip_score(
    text: str,
    predict: Predict,
    donors: Sequence[str],
    *,
    rng: random.Random,
    n: int = 16,
) -> float:
    """Minus the mean prediction entropy (bits) over ``n`` STRIP perturbations of ``text``."""
    ws = words(text)
    if not ws:
        return 0.0
    batch = []
    for _ in range(n):
        dw = words(rng.choice(donors)) or ["."]
        batch.append(" ".join(w if rng.random() < 0.5 else rng.choice(dw) for w in ws))
    p = np.clip(predict(batch), 1e-12, 1.0)
    return float(np.mean(np.sum(p * np.log2(p), axis=1)))


class BigramLM:
    """A word bigram language model with interpolated absolute discounting, fitted on texts."""

    def __init__(self, texts: Sequence[str], *, discount: float = 0.75) -> None:
        self.discount = discount
        uni: Counter[str] = Counter()
        bi: Counter[tuple[str, str]] = Counter()
        for t in texts:
            toks = ["<s>", *(w.casefold() for w in words(t)), "</s>"]
            uni.update(toks)
            bi.update(itertools.pairwise(toks))
        self._uni = uni
        self._bi = bi
        self._total = sum(uni.values())
        self._vocab = len(uni) + 1  # one unseen word type
        self._ctx: Counter[str] = Counter()
        self._types: Counter[str] = Counter()
        for (a, _), c in bi.items():
            self._ctx[a] += c
            self._types[a] += 1

    def _p_uni(self, w: str) -> float:
        return (self._uni.get(w, 0) + 1) / (self._total + self._vocab)

    def _p(self, a: str, b: str) -> float:
        ctx = self._ctx.get(a, 0)
        if ctx == 0:
            return self._p_uni(b)
        c = self._bi.get((a, b), 0)
        lam = self.discount * self._types[a] / ctx
        return max(c - self.discount, 0.0) / ctx + lam * self._p_uni(b)

    def perplexity(self, ws: Sequence[str]) -> float:
        """Per-token perplexity of a word sequence (with sentence boundaries)."""
        toks = ["<s>", *(w.casefold() for w in ws), "</s>"]
        lp = sum(math.log(self._p(a, b)) for a, b in itertools.pairwise(toks))
        return math.exp(-lp / (len(toks) - 1))


def onion_score(text: str, lm: BigramLM) -> tuple[float, str]:
    """ONION's suspicion: the largest perplexity drop from removing one word, and that word."""
    ws = words(text)
    if len(ws) < 2:
        return 0.0, ""
    base = lm.perplexity(ws)
    best, word = -math.inf, ""
    for i, w in enumerate(ws):
        f = base - lm.perplexity(ws[:i] + ws[i + 1 :])
        if f > best:
            best, word = f, w
    return float(best), word


__all__ = [
    "BigramLM",
    "SpanEvidence",
    "SpanSupport",
    "onion_score",
    "predict_sorted",
    "strip_score",
    "transplant_evidence",
    "transplant_score",
    "transplant_scores",
    "words",
]
