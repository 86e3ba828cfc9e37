"""Content-consistency test of trigger mining: do a candidate's records point elsewhere?"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from typing import Any

import numpy as np

from ...subjects.dataset import TextDataset
from ...text import content_words
from ..base import ScanContext
from ._mining_features import (
    MIN_CONTENT_WORDS,
    Candidate,
    _is_lexical,
    _record_words,
    _wilson_upper,
)
from ._mining_rows import member, sorted_rows


def content_inconsistency(
    miner: Any,
    subject: TextDataset,
    groups: list[list[Candidate]],
    words_per: dict[str, Counter[str]],
    words_total: Counter[str],
    outcome_n: Counter[str],
    labelled: bool,
    n: int,
    ctx: ScanContext,
) -> list[tuple[float, int, int]]:
    """Calibrated share of each group's records whose other words point away from its target.

    A binarised naive-Bayes content model (counted in pass 1 over TR39 skeleton words,
    applied leave-one-out so a record's own words do not vote for its own label) scores
    each record with every word of the group's features and phrases removed, as a
    prior-free likelihood ratio of the target against the other outcomes. The raw share of
    records judged inconsistent is then calibrated against the model's own error rates,
    measured on a random sample: ``a`` for genuine target records and ``b`` for records
    without the target, giving ``(raw - a) / (b - a)`` clipped to [0, 1] — about 0 for a
    natural feature, about 1 for a trigger inserted into records of other outcomes.
    At most 500 records per group are scored.
    """
    rng = np.random.default_rng(0)
    picked: list[np.ndarray] = []
    blind: list[set[str]] = []
    for members in groups:
        rows = sorted_rows(members[0].target_rows)
        if len(rows) > 500:
            g_rng = np.random.default_rng(zlib.crc32(members[0].feature.encode("utf-8")))
            rows = np.sort(g_rng.choice(rows, size=500, replace=False))
        picked.append(np.asarray(rows, dtype=np.int64))
        words: set[str] = set()
        for c in members:
            if _is_lexical(c.feature):
                words.update(content_words(c.phrase or c.feature))
                words.update(_record_words(c.phrase or c.feature))
        blind.append(words)
    targets = sorted({g[0].outcome for g in groups})
    sample = set(rng.choice(n, size=min(n, 1500), replace=False).tolist())
    outs = sorted(words_per)
    vocab_size = max(len(words_total), 1)
    sums = {o: sum(words_per[o].values()) for o in outs}
    grand = sum(words_total.values())
    alt_prior = {
        t: {o: math.log(outcome_n[o] / max(n - outcome_n[t], 1)) for o in outs if o != t}
        for t in outs
    }

    logc: dict[tuple[str, bool, int], dict[str, float]] = {}

    def table(o: str, neg: bool, loo: int) -> dict[str, float]:
        key = (o, neg, loo)
        t = logc.get(key)
        if t is None:
            t = logc[key] = {}
        return t

    def score(o: str, rest: list[str], neg: bool, loo: int) -> float:
        """Sum over ``rest`` of log P(w | o) (or | not o), leaving one record out."""
        t = table(o, neg, loo)
        k = len(rest)
        total = 0.0
        for w in rest:
            v = t.get(w)
            if v is None:
                if neg:
                    cnt = words_total.get(w, 0) - words_per[o].get(w, 0) - loo
                else:
                    cnt = words_per[o].get(w, 0) - loo
                v = t[w] = math.log(max(cnt, 0) + 1.0)
            total += v
        mass = (grand - sums[o]) if neg else sums[o]
        return total - k * math.log(mass - loo * k + vocab_size)

    def inconsistent(rest: list[str], target: str, own: tuple[str, ...]) -> bool:
        if labelled:
            s_t = score(target, rest, False, int(target in own))
            alts = [
                alt_prior[target][o] + score(o, rest, False, int(o in own))
                for o in outs
                if o != target
            ]
            top = max(alts)
            s_alt = top + math.log(sum(math.exp(a - top) for a in alts))
            return s_t < s_alt
        has = int(target in own)
        return score(target, rest, False, has) < score(target, rest, True, 1 - has)

    scored = [0] * len(groups)
    incons = [0] * len(groups)
    a_rows: dict[str, list[tuple[int, bool]]] = {t: [] for t in targets}
    b_stat = {t: [0, 0] for t in targets}
    # baseline first: the content model's error rates on a random sample of records
    row = 0
    for batch in subject.batches(miner.batch_size):
        for text, own in zip(batch.texts, miner._outcomes(batch), strict=True):
            r = row
            row += 1
            if r not in sample:
                continue
            present = [w for w in _record_words(text) if w in words_total]
            if len(present) < MIN_CONTENT_WORDS:
                continue
            for t in targets:
                inc = inconsistent(present, t, own)
                if t in own:
                    a_rows[t].append((r, inc))
                else:
                    b_stat[t][0] += inc
                    b_stat[t][1] += 1
    # sequential stopping: a group whose inconsistency is clearly below the planted line
    # (99% Wilson upper bound) after 40 records is not scored further
    line = {}
    for t in targets:
        a_all = [inc for _r, inc in a_rows[t]]
        a0 = sum(a_all) / len(a_all) if len(a_all) >= 20 else 0.0
        b0 = b_stat[t][0] / b_stat[t][1] if b_stat[t][1] >= 20 else 1.0
        line[t] = a0 + miner.min_inconsistency * max(b0 - a0, 0.1) - 0.05
    done: set[int] = set()
    want = _Wanted(picked)
    row = 0
    for batch in subject.batches(miner.batch_size):
        outs_b = miner._outcomes(batch)
        wanted = want.between(row, row + len(batch.texts))
        for text, own in zip(batch.texts, outs_b, strict=True):
            gis = wanted.get(row)
            row += 1
            if not gis:
                continue
            gis = [gi for gi in gis if gi not in done]
            if not gis:
                continue
            present = [w for w in _record_words(text) if w in words_total]
            for gi in gis:
                rest = [w for w in present if w not in blind[gi]]
                if len(rest) < MIN_CONTENT_WORDS:
                    continue
                scored[gi] += 1
                incons[gi] += inconsistent(rest, groups[gi][0].outcome, own)
                m = scored[gi]
                if m >= 40 and _wilson_upper(incons[gi], m) < line[groups[gi][0].outcome]:
                    done.add(gi)
        ctx.progress("consistency", len(batch), None)
    out = []
    miner.content_model_ = {}
    for gi, members in enumerate(groups):
        raw = incons[gi] / scored[gi] if scored[gi] else 0.0
        t = members[0].outcome
        own = member([r for r, _inc in a_rows[t]], sorted_rows(members[0].target_rows))
        a_inc = [inc for (_r, inc), mine in zip(a_rows[t], own.tolist(), strict=True) if not mine]
        a = sum(a_inc) / len(a_inc) if len(a_inc) >= 20 else 0.0
        bi, bn = b_stat[t]
        b = bi / bn if bn >= 20 else 1.0
        miner.content_model_[t] = {"a": a, "b": b}
        calibrated = float(min(max((raw - a) / max(b - a, 0.1), 0.0), 1.0))
        out.append((calibrated, incons[gi], scored[gi]))
    return out


class _Wanted:
    """The rows each group scores, as one array of ``(row, group)`` pairs sorted by row (groups
    of one row in increasing order), handed out one batch at a time as ``row -> [groups]``.

    A dict of lists over every group's sample (up to 500 rows for each of up to
    ``max_candidates`` groups) took ~130 bytes a pair — ~160 MB at 10^7 records, where every
    group's sample is full; here 12 bytes a pair, and a dict for one batch's rows only.
    """

    def __init__(self, picked: list[np.ndarray]) -> None:
        rows = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
        groups = np.repeat(np.arange(len(picked), dtype=np.int32), [len(p) for p in picked])
        order = np.argsort(rows, kind="stable")  # equal rows keep the groups' order
        self._rows, self._groups = rows[order], groups[order]

    def between(self, start: int, stop: int) -> dict[int, list[int]]:
        """``row -> [groups]`` for the rows in ``[start, stop)``."""
        lo, hi = np.searchsorted(self._rows, [start, stop])
        out: dict[int, list[int]] = {}
        for r, gi in zip(self._rows[lo:hi].tolist(), self._groups[lo:hi].tolist(), strict=True):
            out.setdefault(r, []).append(gi)
        return out
