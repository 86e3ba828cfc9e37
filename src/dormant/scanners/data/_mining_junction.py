"""Junction test of trigger mining: is a pattern's place in its records that of an insertion?

A token inserted at a random place of a record leaves, once it is taken out again, the record
exactly as it was: the two tokens on either side of it were neighbours in the original text.
A word that belongs to its sentence does not: take "evergreen" out of "an evergreen shrub"
and "an shrub" is left — a pair of tokens that the data rarely has side by side. This is the
signal of ONION (Qi et al., "ONION: A Simple and Effective Defense Against Textual Backdoor
Attacks", EMNLP 2021), which flags a word whose removal makes a sentence *more* fluent under a
language model; here the "language model" is the data's own adjacent-token pair counts and
the question is asked of a whole group of records at once, with an exact null instead of a
perplexity cut.

**Statistic.** For each group record, the pattern's first occurrence is removed and the
*junction* — the token before it and the token after it (a record start or end counts as a
token) — is scored by ``log(1 + c)``, ``c`` being how many times that pair occurs side by
side in the records outside the group. The statistic is the mean score over the group.

**Null (stated).** Under insertion at a uniformly random word boundary of the record (what
:meth:`dormant.triggers.Trigger.insert` and the poisoning literature do: Kurita et al., ACL
2020; Chen et al., "BadNL", ACSAC 2021), the junction is a word boundary of the record drawn
uniformly at random, independently of the text. So the null distribution is exact: the same
mean over one uniformly drawn word boundary per blinded record, resampled :data:`NULL_DRAWS`
times; ``z`` is the observed mean's standard score against it (about N(0, 1) under planting,
large and negative for a word that belongs where it stands). Insertion at a fixed place (the
start or the end) is not this null; such a plant's ``z`` is whatever its record edges give.

The ``z`` enters the verdict as a Bayes factor in Efron's two-groups model (Efron, JASA 2004),
like the other tests of :mod:`._mining_cleanlabel`: N(0, 1) under planting against the natural
density of consistent lexical features (:func:`junction_factor`), fitted on the calibration
corpora by ``benchmarks/calibrate_junction.py``, never on the corpus kept aside. The factor is
bounded (about 30 for a group of 90 records at z = 0): a natural word sometimes sits where a
boundary is fluent anyway, so the test lifts a clean-label token the verdict model put near 0
to where the clean-label test of :mod:`._mining_cleanlabel` examines it, and the two together
decide.

**Cost, bounded.** The pair counts are not made again: they are the counting pass's bigram
counts (records holding each adjacent-token pair, record edges as its start and end markers),
the table trigger mining holds anyway. The test reads the data once for the group records only
(at most :data:`MAX_GROUP_ROWS` of each of at most :data:`MAX_GROUPS` groups, stopping after
the last), keeps each record's junction and boundaries as 64-bit pair hashes with their counts
in NumPy arrays (12 bytes a pair), and takes the group's own records out of the counts with a
``numpy.unique`` count of their pairs looked up by ``searchsorted``. Its memory is bounded by
the two caps (about 7 MB), whatever the size of the data. Where the counting pass prunes its
tables (lossy counting, past ``max_table`` entries), a pair rarer than ``count_error × N``
records counts 0: the score is coarser, the null still exact (it scores the random boundaries
with the same counts).

Why not a library language model: a pretrained LM (GPT-2 in ONION) is a large download the
statistical pass does not otherwise need, and its perplexity has no exact null; the data's own
pair counts make the test self-contained. Why not a library for the counts: they exist already
(the counting pass's table); what is added is a sort and a binary search in NumPy.

Known limits: a trigger always inserted at the same place is not found by this test (its
junction is a record edge); a natural word that is an optional modifier ("very", an adjective
before a noun that also occurs alone) leaves a fluent junction and looks inserted — the
natural density carries how often that happens; groups with fewer than :data:`MIN_ROWS`
records are not tested.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...subjects.dataset import TextDataset
from ...text import BOS, EOS, tokens
from ..base import ScanContext
from ._mining_neighbours import _patterns
from ._mining_rows import sorted_rows

#: Group records used at most.
MAX_GROUP_ROWS = 300
#: Groups asked about at most in one scan (the rule: :func:`._mining_explain.junction_tests`):
#: with the group records' pairs at 12 bytes each, about 7 MB at most.
MAX_GROUPS = 64
#: Random boundary draws for the null.
NULL_DRAWS = 400
#: Fewest records a group needs.
MIN_ROWS = 5
#: Natural consistent lexical features: their per-record effect ``z / sqrt(records)`` follows
#: a two-component normal mixture (weights, means, spreads), fitted by
#: ``benchmarks/calibrate_junction.py`` on 962 natural consistent lexical groups of the
#: calibration corpora, never on the corpus kept
#: aside (BENCHMARKS.md). Most natural words leave a rarer pair than a random boundary (the
#: first component); some sit where a boundary is fluent anyway (an optional modifier, a
#: record's first word: the second, broad component).
NATURAL_WEIGHTS = (0.808, 0.192)
NATURAL_MEANS = (-0.573, -0.228)
NATURAL_SDS = (0.189, 0.855)
#: Record edges, as tokens of a junction.
EDGE = "\x02"


@dataclass(frozen=True)
class JunctionTest:
    """Outcome of the junction test of one group: ``z`` against the exact null, ``p_value``
    its one-sided permutation p-value for "less fluent than a random boundary", ``records``
    how many records were scored, ``bayes_factor`` the two-groups factor for "inserted"."""

    z: float
    p_value: float
    records: int
    bayes_factor: float


def junction_factor(z: float, records: int) -> float:
    """Bayes factor for "inserted at a random boundary" against "a natural feature" of a
    group of ``records`` records: N(``z``; 0, 1) over the natural density of ``z``, the mixture
    of N(m·√records, 1 + s²·records) over the components of :data:`NATURAL_WEIGHTS`,
    :data:`NATURAL_MEANS`, :data:`NATURAL_SDS` (a per-record effect ``m`` ± ``s`` gives a
    z-score that grows with √records)."""
    root = math.sqrt(max(records, 1))
    log_null = -0.5 * z * z
    terms = []
    for w, m, s in zip(NATURAL_WEIGHTS, NATURAL_MEANS, NATURAL_SDS, strict=True):
        sd = math.sqrt(1.0 + s * s * records)
        d = (z - m * root) / sd
        terms.append(math.log(w) - 0.5 * d * d - math.log(sd))
    top = max(terms)
    log_alt = top + math.log(sum(math.exp(t - top) for t in terms))
    return float(math.exp(min(max(log_null - log_alt, -700.0), 50.0)))


def _boundaries(
    text: str, pats: list[list[str]]
) -> tuple[tuple[str, str] | None, list[tuple[str, str]]]:
    """The junction left by the first occurrence of a pattern in ``text`` and every word
    boundary of the text with the pattern removed (pairs of lower-case tokens)."""
    words = text.split()
    toks_of = [tokens(w) for w in words]
    flat: list[str] = []
    start: list[int] = []
    for tk in toks_of:
        start.append(len(flat))
        flat.extend(tk)
    start.append(len(flat))
    hit: tuple[int, int] | None = None
    for pat in sorted(pats, key=len, reverse=True):
        k = len(pat)
        for i in range(len(flat) - k + 1):
            if flat[i : i + k] == pat and (hit is None or i < hit[0]):
                hit = (i, i + k)
                break
    if hit is None:
        return None, []
    left = flat[: hit[0]]
    right = flat[hit[1] :]
    junction = (left[-1] if left else EDGE, right[0] if right else EDGE)
    # the blinded record's word boundaries: the original word starts outside the pattern,
    # plus the junction itself (the removed span's place is one boundary)
    rest = left + right
    cut = {s for s in start if s <= hit[0]} | {s - (hit[1] - hit[0]) for s in start if s >= hit[1]}
    cut.add(hit[0])
    pairs = [
        (rest[c - 1] if c > 0 else EDGE, rest[c] if c < len(rest) else EDGE)
        for c in sorted(cut)
        if 0 <= c <= len(rest)
    ]
    return junction, pairs


def _pair_key(a: str, b: str) -> str:
    """The counting pass's name of two adjacent tokens (a bigram feature, record edges as the
    start and end markers of :func:`._mining_features._features`)."""
    return f"{BOS if a == EDGE else a} {EOS if b == EDGE else b}"


def _hashes(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """64-bit hashes of token pairs (Python's tuple hash: stable within one process, which is
    all the test needs — the hashes are compared only with each other, within one scan; two
    distinct pairs of one group meet in a hash with probability about 10^-10)."""
    return np.fromiter((hash(p) for p in pairs), dtype=np.int64, count=len(pairs)).view(np.uint64)


def _lookup(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The ``counts`` of each of ``query`` in the sorted distinct ``keys`` (0 if absent)."""
    if not len(keys) or not len(query):
        return np.zeros(len(query), dtype=np.int64)
    pos = np.searchsorted(keys, query)
    pos[pos == len(keys)] = 0
    return np.where(keys[pos] == query, counts[pos], 0)


class _Group:
    """What the pass keeps of one group: per scored record its junction and boundaries as
    pair hashes with the counting pass's counts, and the hashes of every pair its original
    record holds (to take the group's own records out of the counts)."""

    __slots__ = ("counts", "hashes", "junctions", "own")

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []  # per record: junction first, then its boundaries
        self.counts: list[np.ndarray] = []
        self.own: list[np.ndarray] = []
        self.junctions = 0

    def add(
        self, junction: tuple[str, str], pairs: list[tuple[str, str]], table: Mapping[str, int]
    ) -> None:
        """One scored record: its junction and the blinded record's boundaries."""
        every = [junction, *pairs]
        self.hashes.append(_hashes(every))
        self.counts.append(
            np.fromiter(
                (table.get(_pair_key(a, b), 0) for a, b in every), dtype=np.int32, count=len(every)
            )
        )
        self.junctions += 1

    def add_own(self, present: set[tuple[str, str]]) -> None:
        """The pairs an original group record holds (each once)."""
        self.own.append(_hashes(list(present)))


def junction_test(
    subject: TextDataset,
    groups: Sequence[tuple[Sequence[int] | np.ndarray, str, list[str]]],
    pair_counts: Mapping[str, int],
    batch_size: int,
    ctx: ScanContext,
) -> list[JunctionTest | None]:
    """Run the test for each group ``(target rows, target outcome, pattern texts)``; ``None``
    where the group has too few records holding the pattern.

    ``pair_counts`` is the counting pass's table of records per feature (its bigrams are the
    adjacent-token pairs, record edges as start and end markers): the pairs are not counted
    again. One read of the data gathers the group records (at most :data:`MAX_GROUP_ROWS`
    each); each record's junction and word boundaries are kept as 64-bit pair hashes with
    their counts in arrays, and the group's own records are taken out of the counts by a
    ``numpy.unique`` count of the pairs they hold, looked up with ``searchsorted``.
    """
    if not groups:
        return []
    pats = [_patterns(p) for _r, _t, p in groups]
    picked: list[np.ndarray] = []
    for rows_in, _t, p in groups:
        every = sorted_rows(rows_in)
        if len(every) > MAX_GROUP_ROWS:
            g_rng = np.random.default_rng(zlib.crc32("\0".join(p).encode("utf-8")))
            every = np.sort(g_rng.choice(every, size=MAX_GROUP_ROWS, replace=False))
        picked.append(np.asarray(every, dtype=np.int64))
    # (row, group) pairs sorted by row: a batch's share is one searchsorted slice
    want_rows = np.concatenate(picked) if picked else np.empty(0, np.int64)
    want_group = np.repeat(np.arange(len(groups)), [len(r) for r in picked])
    order = np.argsort(want_rows, kind="stable")
    want_rows, want_group = want_rows[order], want_group[order]
    kept = [_Group() for _ in groups]
    last = int(want_rows[-1]) if len(want_rows) else -1
    row = 0
    for batch in subject.batches(batch_size):
        k = len(batch.texts)
        lo, hi = np.searchsorted(want_rows, [row, row + k])
        for r, gi in zip(want_rows[lo:hi].tolist(), want_group[lo:hi].tolist(), strict=True):
            text = batch.texts[r - row]
            kept[gi].add_own(set(itertools.pairwise([EDGE, *tokens(text), EDGE])))
            if not pats[gi]:
                continue
            j, pairs = _boundaries(text, pats[gi])
            if j is not None and pairs:
                kept[gi].add(j, pairs, pair_counts)
        row += k
        ctx.progress("junction", k, None)
        if row > last:  # every group record read
            break
    out: list[JunctionTest | None] = []
    for gi, g in enumerate(kept):
        if g.junctions < MIN_ROWS:
            out.append(None)
            continue
        out.append(_score(g, p_seed=zlib.crc32("\0".join(groups[gi][2]).encode("utf-8"))))
        kept[gi] = _Group()  # its arrays freed as it is scored
    return out


def _score(g: _Group, *, p_seed: int) -> JunctionTest:
    """``z``, p-value and Bayes factor of one group from what the pass kept."""
    # a pair's count outside the group: the records of the group holding it taken out
    own_keys, own_n = np.unique(np.concatenate(g.own), return_counts=True)
    lens = np.array([len(h) for h in g.hashes])
    hashes = np.concatenate(g.hashes)
    counts = np.concatenate(g.counts).astype(np.int64)
    scores = np.log1p(np.maximum(counts - _lookup(own_keys, own_n, hashes), 0))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    obs = float(scores[starts].mean())  # each record's junction is its first entry
    # the null: one of each record's boundaries (entries after its junction) at random
    rng = np.random.default_rng(p_seed)
    n_b = lens - 1
    draws = rng.integers(0, n_b[:, None], size=(len(lens), NULL_DRAWS))
    null = scores[(starts + 1)[:, None] + draws].mean(axis=0)
    sd = float(null.std(ddof=1))
    z = float((obs - null.mean()) / max(sd, 1e-6))
    p_value = float((1 + (null <= obs).sum()) / (1 + NULL_DRAWS))
    n = len(lens)
    return JunctionTest(z, p_value, n, junction_factor(z, n))
