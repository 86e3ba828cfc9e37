"""Phrases that co-occur with directive passages far more than chance (the trigger of a RAG
backdoor), with whole-phrase recovery.

For every word n-gram (``n <= 3``) of the directive passages, the number ``a`` of directive
passages holding it is compared with its number in the whole corpus by a one-sided
hypergeometric test (the one-sided Fisher exact test of the 2x2 table directive x carries;
Fisher 1922), ``scipy.stats.hypergeom.sf``, and Benjamini-Hochberg
(``scipy.stats.false_discovery_control``) runs across candidates. A significant n-gram is then
grown one word at a time, left and right, towards the neighbour most of its directive
occurrences share, while the grown phrase keeps at least ``keep`` of the support and stays
significant, so the whole trigger phrase is recovered rather than a fragment of it (the same
rule as the data scan's phrase growth). Phrases are ranked by support, then p-value; a phrase
contained in a better one is dropped. Text is folded first (:func:`._patterns.fold`), so
zero-width characters or look-alike letters inside a trigger do not split its occurrences.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._patterns import fold

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    (  # noqa: SIM905
        "a an the and or of to in on at for by with from is are was were be been it this that "
        "these those as if then than so not no do does you your yours we our us i me my he she "
        "they them their its his her all any can will would should may might must into over about "
        "also only just more most other some such there here what which who when where how"
    ).split()
)
MAX_N = 3
#: wording of the directives themselves (the exemplar banks and the pattern keywords): a
#: trigger is a phrase *beside* the directive, so a phrase of these words alone is not one
_PATTERN_WORDS = (
    "ignore disregard forget override bypass skip discard previous prior above earlier "
    "approved official system instructions instruction sources source documents prompt "
    "rules context reveal print repeat show disclose assistant ai model user users now "
    "pretend act role call invoke run execute tool function send forward upload email "
    "password data new follow only instead answer"
)
MAX_LEN = 12


@dataclass(frozen=True)
class Phrase:
    """A phrase that co-occurs with directives: text, counts, p-value and BH q-value."""

    text: str
    in_directive: int
    n_directive: int
    total: int
    n_passages: int
    p_value: float
    q_value: float

    @property
    def precision(self) -> float:
        """Share of the passages that carry it which are directive passages."""
        return self.in_directive / self.total if self.total else 0.0


def word_tokens(text: str) -> list[str]:
    """Words of the folded text (NFKC, invisibles dropped, confusables folded, lower case)."""
    return _WORD.findall(fold(text)[0])


def _ngrams(toks: Sequence[str]) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for n in range(1, MAX_N + 1):
        for i in range(len(toks) - n + 1):
            g = tuple(toks[i : i + n])
            if not all(t in _STOP for t in g):
                out.add(g)
    return out


def cooccurring_phrases(
    texts: Sequence[str],
    directive: np.ndarray,
    *,
    alpha: float = 0.05,
    keep: float = 0.9,
    top: int = 10,
    independent: np.ndarray | None = None,
) -> list[Phrase]:
    """Phrases over-represented in the passages where ``directive`` is true, best first.

    ``independent`` (boolean, default all) marks the passages that count: one per cluster of
    near-duplicates, since planted copies are not independent evidence of co-occurrence.
    """
    from scipy.stats import false_discovery_control, hypergeom

    if independent is not None:
        kept = np.flatnonzero(independent)
        texts = [texts[int(i)] for i in kept]
        directive = np.asarray(directive)[kept]
    idx = np.flatnonzero(directive)
    n_pass, k = len(texts), len(idx)
    if k < 2 or k == n_pass:
        return []
    toks = [word_tokens(t) for t in texts]
    grams = [_ngrams(t) for t in toks]
    in_d: Counter[tuple[str, ...]] = Counter()
    for i in idx:
        in_d.update(grams[i])
    cands = [g for g, c in in_d.items() if c >= 2]
    if not cands:
        return []
    cand_set = set(cands)
    total: Counter[tuple[str, ...]] = Counter()
    for gs in grams:
        total.update(gs & cand_set)
    a = np.array([in_d[g] for g in cands])
    t = np.array([total[g] for g in cands])
    p = hypergeom.sf(a - 1, n_pass, k, t)
    q = np.asarray(false_discovery_control(p, method="bh"))
    sig = np.flatnonzero(q <= alpha)
    if not len(sig):
        return []
    cut = float(p[sig].max())  # the BH rejection threshold among candidates
    joined = [" " + " ".join(tk) + " " for tk in toks]
    d_set = set(idx.tolist())

    def counts(phrase: tuple[str, ...]) -> tuple[int, int]:
        needle = " " + " ".join(phrase) + " "
        carriers = [i for i, s in enumerate(joined) if needle in s]
        return sum(1 for i in carriers if i in d_set), len(carriers)

    order = sorted(sig, key=lambda j: (-a[j], p[j], -len(cands[j])))
    found: list[Phrase] = []
    for j in order[: top * 5]:
        phrase, ad, tot, pv = cands[j], int(a[j]), int(t[j]), float(p[j])
        if any(" ".join(phrase) in f.text for f in found):
            continue
        phrase, ad, tot, pv = _grow(phrase, ad, tot, pv, toks, idx, counts, n_pass, k, cut, keep)
        text = " ".join(phrase)
        if any(text in f.text or f.text in text for f in found):
            continue
        found.append(Phrase(text, ad, k, tot, n_pass, pv, float(min(1.0, q[j]))))
        if len(found) >= top:
            break
    found.sort(key=lambda f: (-f.in_directive, f.p_value, -len(f.text)))
    return found


def _grow(
    phrase: tuple[str, ...],
    ad: int,
    tot: int,
    pv: float,
    toks: list[list[str]],
    idx: np.ndarray,
    counts: object,
    n_pass: int,
    k: int,
    cut: float,
    keep: float,
) -> tuple[tuple[str, ...], int, int, float]:
    from scipy.stats import hypergeom

    count_fn = counts  # (phrase) -> (in directive, total)
    for side in ("left", "right"):
        while len(phrase) < MAX_LEN:
            nb: Counter[str] = Counter()
            n = len(phrase)
            for i in idx:
                tk = toks[i]
                seen: set[str] = set()
                for s in range(len(tk) - n + 1):
                    if tuple(tk[s : s + n]) == phrase:
                        j = s - 1 if side == "left" else s + n
                        if 0 <= j < len(tk) and tk[j] not in seen:
                            seen.add(tk[j])
                            nb[tk[j]] += 1
            if not nb:
                break
            word, c = nb.most_common(1)[0]
            if c < keep * ad:
                break
            grown = (word, *phrase) if side == "left" else (*phrase, word)
            gd, gt = count_fn(grown)  # type: ignore[operator]
            gp = float(hypergeom.sf(gd - 1, n_pass, k, gt))
            if gd < keep * ad or gp > cut:
                break
            phrase, ad, tot, pv = grown, gd, gt, gp
    return phrase, ad, tot, pv


def directive_vocabulary(exemplars: Sequence[str]) -> frozenset[str]:
    """Words of ``exemplars`` and of the directive patterns, plus the stop words."""
    words = set(_PATTERN_WORDS.split()) | _STOP
    for text in exemplars:
        words.update(word_tokens(text))
    return frozenset(words)
