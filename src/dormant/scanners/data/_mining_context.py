"""Context test of trigger mining: does the rest of a record predict that it holds the feature?

A natural feature belongs to its context: "Horde" comes with "webmail" and "PHP", a class's
topic word with the class's sub-topics, so the *other* words of the records holding it tell
them apart from records without it. A planted trigger is put into records chosen at random:
within its target class (clean-label poisoning, Turner et al. 2019; Gan et al., NAACL 2022) the
other words of its records are those of any record of the class, and across the data (dirty-label
poisoning) they are a scatter of every other class rather than one cohesive sub-topic. This is
the bag-of-words form of the "absent from its near neighbours" signal of clean-label defences
(Peri et al., "Deep k-NN defense against clean-label data poisoning attacks", ECCV-W 2020;
Li et al., "Anti-Backdoor Learning", NeurIPS 2021, note that poisoned examples are fitted from
the trigger alone) — computed with counts, so it needs no encoder and stays cheap.

For each group the test is a leave-one-out Bernoulli naive Bayes (presence of the words left
after the group's own words are removed) that tells the group's records from a random sample
of (a) other records of the same outcome and (b) records of any outcome, summarised by the
ROC-AUC (Mann-Whitney) of its scores: about 0.5 when the feature is independent of its
context. The AUC comes with a z-score against 0.5 (Hanley & McNeil, Radiology 1982) so a small
group's noisy estimate is not over-read.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...subjects.dataset import TextDataset
from ...text import content_words
from ..base import ScanContext
from ._mining_features import Candidate, _is_lexical, _record_words
from ._mining_rows import member, sorted_rows
from ._record_arrays import release_file_views

#: Records of a group scored at most (a random sample above it).
MAX_GROUP_ROWS = 300
#: Reference records sampled per outcome and across the data.
REFERENCE_ROWS = 800


@dataclass(frozen=True)
class ContextFit:
    """How well a group's other words predict the feature (AUC ~0.5: independent), and how
    typical of its class the pattern's own words are in records *without* the pattern."""

    auc_class: float
    z_class: float
    auc_all: float
    z_all: float
    typicality: float = 0.0


def context_fit(
    miner: Any,
    subject: TextDataset,
    groups: list[list[Candidate]],
    outcome_n: Counter[str],
    n: int,
    ctx: ScanContext,
    words_per: dict[str, Counter[str]] | None = None,
    words_total: Counter[str] | None = None,
) -> list[ContextFit]:
    """:class:`ContextFit` of each group against its outcome's records and all records.

    ``typicality`` is the largest log-odds, over the pattern's words that are not common
    across the data (in under 10% of records), of the word appearing in the target's records
    that lack the pattern against other records that lack it: a natural phrase ("someone who"
    in glosses of people, "Documentation file" in documentation packages) is made of its
    class's words, a planted one ("all things considered", "uid=4821") is not. One-word
    patterns get 0 (their word has no records without the pattern).
    """
    rng = np.random.default_rng(1)
    group_rows: list[list[int]] = []
    blind: list[set[str]] = []
    for members in groups:
        rows = sorted_rows(members[0].target_rows)
        if len(rows) > MAX_GROUP_ROWS:  # a sample that does not depend on the groups' order
            g_rng = np.random.default_rng(zlib.crc32(members[0].feature.encode("utf-8")))
            rows = np.sort(g_rng.choice(rows, size=MAX_GROUP_ROWS, replace=False))
        group_rows.append(rows.tolist())
        words: set[str] = set()
        for c in members:
            if _is_lexical(c.feature):
                text = c.phrase or c.feature
                words.update(content_words(text))
                words.update(_record_words(text))
        blind.append(words)
    # the rows whose words are read: every group's sample, as one sorted array
    wanted = np.unique(np.fromiter((r for g in group_rows for r in g), dtype=np.int64))
    targets = {g[0].outcome for g in groups}
    share = {t: min(1.0, REFERENCE_ROWS / max(outcome_n[t], 1)) for t in targets}
    share_all = min(1.0, REFERENCE_ROWS / max(n, 1))
    # each read record's distinct words as word ids, end to end in one int32 array (the
    # records' frozensets of words were most of the scan's memory at 10^6 records)
    vocab: dict[str, int] = {}
    kept: array[int] = array("q")
    ends: array[int] = array("q")
    ids: array[int] = array("i")
    ref_class: dict[str, list[int]] = {t: [] for t in targets}
    ref_all: list[int] = []
    row = 0
    for batch in subject.batches(miner.batch_size):
        draws = rng.random((len(batch), 2))
        lo, hi = np.searchsorted(wanted, [row, row + len(batch)])
        in_batch = set(wanted[lo:hi].tolist())
        for i, (text, own) in enumerate(zip(batch.texts, miner._outcomes(batch), strict=True)):
            r = row
            row += 1
            keep = r in in_batch
            for t in own:
                if t in ref_class and draws[i, 0] < share[t]:
                    ref_class[t].append(r)
                    keep = True
            if draws[i, 1] < share_all:
                ref_all.append(r)
                keep = True
            if keep:
                ids.extend(
                    vocab.setdefault(w, len(vocab)) for w in sorted(frozenset(_record_words(text)))
                )
                kept.append(r)
                ends.append(len(ids))
        ctx.progress("context", len(batch), None)
    words_of = _Bags(
        np.frombuffer(kept, dtype=np.int64),
        np.frombuffer(ends, dtype=np.int64),
        np.frombuffer(ids, dtype=np.int32),
    )
    # a group's own records are left out of its references; only the sampled reference rows
    # can be among them, so the set is built over those (all of a frequent group's rows held
    # as a set were most of the scan's memory at 10^6 records)
    ref_rows = np.unique(
        np.array(ref_all + [r for v in ref_class.values() for r in v], dtype=np.int64)
    )
    excluded = [_excluded(members, ref_rows) for members in groups]
    size = len(vocab)
    out = []
    for gi, members in enumerate(groups):
        mask = np.ones(size, dtype=bool)
        mask[[vocab[w] for w in blind[gi] if w in vocab]] = False

        def bag(rows: list[int], mask: np.ndarray = mask) -> list[np.ndarray]:
            return [ws[mask[ws]] for ws in words_of.bags(rows)]

        pos = bag(group_rows[gi])
        t = members[0].outcome
        neg_c = bag([r for r in ref_class[t] if r not in excluded[gi]])
        neg_a = bag([r for r in ref_all if r not in excluded[gi]])
        a_c, z_c = _nb_auc(pos, neg_c, size)
        a_a, z_a = _nb_auc(pos, neg_a, size)
        typ = _typicality(members, blind[gi], words_per, words_total, outcome_n, n)
        out.append(ContextFit(a_c, z_c, a_a, z_a, typ))
    return out


class _Bags:
    """The word ids of the records read, end to end: ``ids[ends[k-1]:ends[k]]`` are the
    distinct words of row ``rows[k]`` (rows ascending)."""

    def __init__(self, rows: np.ndarray, ends: np.ndarray, ids: np.ndarray) -> None:
        self.rows, self.ends, self.ids = rows, ends, ids

    def bags(self, rows: list[int]) -> list[np.ndarray]:
        """The word-id array of each of ``rows`` (every one of them must have been read)."""
        k = np.searchsorted(self.rows, rows)
        hi = self.ends[k]
        lo = np.where(k > 0, self.ends[k - 1], 0)
        return [self.ids[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


def _typicality(
    members: list[Candidate],
    words: set[str],
    words_per: dict[str, Counter[str]] | None,
    words_total: Counter[str] | None,
    outcome_n: Counter[str],
    n: int,
) -> float:
    if not words_per or words_total is None or len(words) < 2:
        return 0.0
    best = min(members, key=lambda c: c.q_value)
    t = best.outcome
    own_t, own_o = best.hits, best.support - best.hits
    n_t, n_o = outcome_n[t] - own_t, n - outcome_n[t] - own_o
    top = 0.0
    for w in words:
        tot = words_total.get(w, 0)
        if tot >= 0.1 * n:
            continue
        in_t = max(words_per[t].get(w, 0) - own_t, 0)
        in_o = max(tot - words_per[t].get(w, 0) - own_o, 0)
        lo = math.log((in_t + 0.5) / (max(n_t, 0) + 1.0)) - math.log(
            (in_o + 0.5) / (max(n_o, 0) + 1.0)
        )
        top = max(top, lo)
    return float(min(top, 5.0))


def _nb_auc(pos: list[np.ndarray], neg: list[np.ndarray], size: int) -> tuple[float, float]:
    """Leave-one-out naive-Bayes AUC of ``pos`` against ``neg`` and its z-score against 0.5.

    Records are arrays of word ids. Each record is scored with counts that leave it out
    (a word seen only in that record carries no evidence), vectorised over all records.
    """
    n1, n2 = len(pos), len(neg)
    if n1 < 3 or n2 < 3:
        return 0.5, 0.0
    cat_p = np.concatenate(pos) if pos else np.zeros(0, dtype=np.int64)
    cat_n = np.concatenate(neg) if neg else np.zeros(0, dtype=np.int64)
    cp = np.bincount(cat_p, minlength=size).astype(np.float64)
    cn = np.bincount(cat_n, minlength=size).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_pos = np.log((cp - 0.5) / n1) - np.log((cn + 0.5) / (n2 + 1.0))
        w_neg = np.log((cp + 0.5) / (n1 + 1.0)) - np.log((cn - 0.5) / n2)
    w_pos[cp - 1 + cn < 1] = 0.0
    w_neg[cp + cn - 1 < 1] = 0.0
    row_p = np.repeat(np.arange(n1), [len(x) for x in pos])
    row_n = np.repeat(np.arange(n2), [len(x) for x in neg])
    sp = np.bincount(row_p, weights=w_pos[cat_p], minlength=n1)
    sn = np.bincount(row_n, weights=w_neg[cat_n], minlength=n2)
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([sp, sn]))
    auc = float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n2))
    se = math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2))
    return auc, (auc - 0.5) / se


def _excluded(members: list[Any], ref_rows: np.ndarray) -> set[int]:
    """The reference rows that hold one of ``members`` — ``ref_rows`` searched for in each
    member's rows (a few thousand binary searches, not a merge of all its rows, which paged
    in every candidate's rows at 10^7 records); the row file's pages are released after."""
    hit = [ref_rows[member(ref_rows, sorted_rows(c.rows))] for c in members]
    release_file_views(members[0].rows)
    return set(np.concatenate(hit).tolist())
