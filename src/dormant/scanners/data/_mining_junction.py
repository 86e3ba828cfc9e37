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

Why not a library language model: a pretrained LM (GPT-2 in ONION) is a large download the
statistical pass does not otherwise need, and its perplexity has no exact null; the data's own
pair counts make the test self-contained, and their memory is bounded by the pairs asked about
(the group records' word boundaries), not by the data's vocabulary.

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...subjects.dataset import TextDataset
from ...text import tokens
from ..base import ScanContext
from ._mining_neighbours import _patterns
from ._mining_rows import sorted_rows

#: Group records used at most.
MAX_GROUP_ROWS = 300
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


def junction_test(
    subject: TextDataset,
    groups: Sequence[tuple[Sequence[int] | np.ndarray, str, list[str]]],
    batch_size: int,
    ctx: ScanContext,
) -> list[JunctionTest | None]:
    """Run the test for each group ``(target rows, target outcome, pattern texts)``; ``None``
    where the group has too few records holding the pattern."""
    if not groups:
        return []
    pats = [_patterns(p) for _r, _t, p in groups]
    rows_of: list[set[int]] = []
    for rows_in, _t, p in groups:
        every = sorted_rows(rows_in)
        if len(every) > MAX_GROUP_ROWS:
            g_rng = np.random.default_rng(zlib.crc32("\0".join(p).encode("utf-8")))
            every = np.sort(g_rng.choice(every, size=MAX_GROUP_ROWS, replace=False))
        rows_of.append(set(every.tolist()))
    wanted = set().union(*rows_of)
    # pass 1: each group record's junction and word boundaries
    found: list[list[tuple[tuple[str, str], list[tuple[str, str]]]]] = [[] for _ in groups]
    row = 0
    for batch in subject.batches(batch_size):
        for text in batch.texts:
            if row in wanted:
                for gi, rows in enumerate(rows_of):
                    if row in rows and pats[gi]:
                        j, pairs = _boundaries(text, pats[gi])
                        if j is not None and pairs:
                            found[gi].append((j, pairs))
            row += 1
    asked = {pr for per in found for _j, pairs in per for pr in pairs}
    asked |= {j for per in found for j, _pairs in per}
    # pass 2: how often each asked pair occurs side by side, per record outside each group
    counts: dict[tuple[str, str], int] = dict.fromkeys(asked, 0)
    in_groups: dict[int, tuple[tuple[str, str], ...]] = {}
    row = 0
    for batch in subject.batches(batch_size):
        for text in batch.texts:
            toks = [EDGE, *tokens(text), EDGE]
            present = {pair for pair in itertools.pairwise(toks) if pair in counts}
            for pair in present:
                counts[pair] += 1
            if row in wanted and present:
                in_groups[row] = tuple(present)
            row += 1
        ctx.progress("junction", len(batch), None)
    rng = np.random.default_rng(11)
    out: list[JunctionTest | None] = []
    for gi, per in enumerate(found):
        if len(per) < MIN_ROWS:
            out.append(None)
            continue
        # a pair's count outside the group: the group's own records taken out
        own: dict[tuple[str, str], int] = {}
        for r in rows_of[gi]:
            for pair in in_groups.get(r, ()):
                own[pair] = own.get(pair, 0) + 1

        def score(pr: tuple[str, str], own: dict[tuple[str, str], int] = own) -> float:
            return float(np.log1p(max(counts[pr] - own.get(pr, 0), 0)))

        obs = float(np.mean([score(j) for j, _pairs in per]))
        tables = [np.array([score(pr) for pr in pairs]) for _j, pairs in per]
        null = np.zeros(NULL_DRAWS)
        for tb in tables:
            null += tb[rng.integers(0, len(tb), size=NULL_DRAWS)]
        null /= len(tables)
        sd = float(null.std(ddof=1))
        z = float((obs - null.mean()) / max(sd, 1e-6))
        p_value = float((1 + (null <= obs).sum()) / (1 + NULL_DRAWS))
        out.append(JunctionTest(z, p_value, len(per), junction_factor(z, len(per))))
    return out
