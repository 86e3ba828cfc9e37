"""Natural-neighbour test of trigger mining: are a pattern's records a random draw, or a sub-topic?

Planting a trigger means inserting it into records the attacker *draws* — at random from the
other classes (dirty-label: Gu et al. 2017 BadNets; Dai et al. 2019 AddSent), from one source
class, or from the target class itself (clean-label: Turner et al. 2019). Whatever the pool,
once the trigger is taken out the poisoned records are a sample of that pool and are no closer
to each other in meaning than any sample of it. A natural feature is not drawn: "Horde" comes
with Horde's webmail and groupware modules, "in Octave" with numerical toolboxes, "debug
symbols" with debug packages — records that stay close to each other in an encoder's space
after the feature is removed. Where a label is set by metadata (a package's archive section), a
natural sub-topic can look inconsistent with its records' content exactly like a dirty-label
trigger, and only its cohesion tells them apart. This is the "absent from its near neighbours"
signal of poisoning defences in embedding space (Peri et al., "Deep k-NN defense against
clean-label data poisoning attacks", ECCV-W 2020; Chen et al., "Detecting backdoor attacks on
deep neural networks by activation clustering", 2018) turned around: a natural feature *has*
natural neighbours.

For each planted-looking group (and each task feature with ``P(planted)`` at least
:data:`TEST_FLOOR`) the statistic is the mean pairwise cosine similarity of its records'
sentence embeddings (all-MiniLM-L6-v2 by default; Reimers & Gurevych, EMNLP 2019) with every
occurrence of the group's own patterns removed. Its null distribution is that of random samples
of the same size from each pool a plant could have drawn the records from — estimated by
subsampling, the pool's records normalised and blinded like the group's (a pattern that fills
half a class does not make the class look tighter than the group). Which pools are plausible
follows from how the records read (:func:`source_pools`): a group whose records mostly point to
other classes (dirty-label-like) against the records of the other classes and its nearest
source class, a group consistent with its class (clean-label-like) against its class. The
smallest z-score over those pools (the group must be more cohesive than a draw from *every*
plausible pool) gives a one-sided p-value.

For a dirty-label-like group that p-value is turned into the largest Bayes factor against
"drawn at random" that it can support, the minimum Bayes factor ``-e p ln p`` (Sellke, Bayarri
& Berger, The American Statistician 2001): the update leans toward "natural", a planted group
moves by little (p = 0.01 multiplies the odds of planted by 0.13) while a cohesive sub-topic
(p below 1e-10) drops to near 0. The same holds for a consistent group the verdict model
already calls planted. A consistent group it does *not* call planted (a task feature, whose
null — a random draw of its own class — is exact under clean-label planting) is weighed in a
two-groups model (:func:`two_groups_factor`) whose natural-feature density was fitted on the
calibration corpora: there a ``z`` near 0 is evidence *for* planting (a topic word's records
are a sub-topic, a clean-label trigger's are not), up to a factor of about 6. That can bring a
clean-label trigger the verdict model missed into view (from P = 0.3 to 0.7, a medium
finding), but never quarantine it on its own: from below one half a factor of 6 stays below
the 0.95 a quarantine at a 5% FDR needs. Where a quarantine can follow, only the bound that
leans toward "natural" is used, so a user's clean data is not quarantined on weak evidence.
No threshold is involved: the probability moves with the evidence.

Known limits: an attacker who inserts the trigger only into records of one narrow sub-topic
(tighter than a class) produces a cohesive group and is judged natural — a targeted attack this
test cannot tell from a sub-topic; it needs the ``embed`` extra (without it, or under
``--no-embed``, the test is skipped and the scan says so); unnatural patterns (invisible or
confusable characters) are never tested.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...subjects.dataset import TextDataset
from ...text import BOS, EOS, tokens
from ..base import ScanContext

#: Records of a group embedded at most (a sample that does not depend on the groups' order).
MAX_GROUP_ROWS = 40
#: Reference records sampled across the data and per target outcome.
REFERENCE_ALL = 400
REFERENCE_CLASS = 100
#: Random subsets drawn from a pool to estimate the null's spread.
NULL_DRAWS = 200
#: Fewest records a group or a pool needs for the test to say anything.
MIN_ROWS = 5
#: Task features (consistent, not planted-looking) with at least this ``P(planted)`` are
#: tested too, so that a clean-label plant the verdict model alone cannot tell from a topic
#: word can be lifted by its records being a random draw of its class.
TEST_FLOOR = 0.1
#: The natural-feature density of ``z`` against its class for consistent groups (the
#: two-groups model of :func:`two_groups_factor`): mean and spread of the z-scores of 266
#: natural consistent groups of two calibration corpora (WordNet glosses by topic, Debian
#: package descriptions by section: a sample and the whole set; BENCHMARKS.md), never of the
#: corpus kept aside. A normal fits them: 17% of them are below 0.5, the normal says 19%.
NATURAL_Z_MEAN = 3.7
NATURAL_Z_SD = 3.7


@dataclass(frozen=True)
class Neighbours:
    """Outcome of the natural-neighbour test of one group.

    ``cohesion`` is the group's mean pairwise cosine similarity (its patterns removed), ``z``
    the smallest z-score of it against the pools' null distributions, ``pool`` the pool that
    smallest z came from, ``p_value`` the one-sided normal p-value of ``z`` and
    ``bayes_factor`` the Bayes factor for "drawn at random": the minimum Bayes factor (1 when
    the p-value is above 1/e: no evidence either way) for a dirty-label-like group, the
    two-groups factor (:func:`two_groups_factor`, above 1 when it favours planting) for a
    consistent one. ``z_pools`` holds the z-score against each pool tested.
    """

    cohesion: float
    z: float
    pool: str
    p_value: float
    bayes_factor: float
    z_pools: tuple[tuple[str, float], ...] = ()


def min_bayes_factor(p: float) -> float:
    """Sellke, Bayarri & Berger (2001): the smallest Bayes factor for the null a p-value allows."""
    if not p < 1.0 / math.e:
        return 1.0
    p = max(p, 1e-300)
    return float(-math.e * p * math.log(p))


def update_probability(prior: float, bayes_factor: float) -> float:
    """``prior`` P(planted) times the Bayes factor, in odds."""
    prior = min(max(prior, 1e-9), 1.0 - 1e-9)
    odds = prior / (1.0 - prior) * bayes_factor
    return float(odds / (1.0 + odds))


def blind_text(text: str, patterns: list[list[str]]) -> str:
    """``text`` as lower-case tokens with every occurrence of each token sequence in
    ``patterns`` removed (longest first)."""
    toks = tokens(text)
    for pat in sorted(patterns, key=len, reverse=True):
        k = len(pat)
        if not k:
            continue
        out: list[str] = []
        i = 0
        while i < len(toks):
            if toks[i : i + k] == pat:
                i += k
            else:
                out.append(toks[i])
                i += 1
        toks = out
    return " ".join(toks)


def _patterns(texts: list[str]) -> list[list[str]]:
    """Token sequences of features (space-joined tokens, maybe with start/end markers) and of
    recovered phrases (raw text, "I watched this 3D movie."), as :func:`tokens` splits them."""
    out = []
    for t in texts:
        seq = tokens(" ".join(w for w in t.split() if w not in (BOS, EOS)))
        if seq:
            out.append(seq)
    return out


@lru_cache(maxsize=2)
def _encoder(path: str | None, device: str) -> Any:
    from ...adapters.encoder import TextEncoder

    return TextEncoder(model_path=path, device=device).load()


def natural_neighbours(
    subject: TextDataset,
    groups: list[tuple[list[int], str, list[str]]],
    outcomes_of: Any,
    batch_size: int,
    ctx: ScanContext,
    *,
    encoder_path: str | None = None,
    inconsistency: Sequence[float] | None = None,
    lift: Sequence[bool] | None = None,
) -> list[Neighbours | None]:
    """Run the test for each group ``(target rows, target outcome, pattern texts)``.

    ``outcomes_of(batch)`` gives each record's outcomes. ``inconsistency`` (one per group, the
    content model's share of its records that point away from the target) chooses the pools
    a plant could have drawn the records from (:func:`source_pools`); without it every pool is
    admitted. ``lift`` (one per group) marks the groups the verdict model does not already
    call planted: only a consistent one of those is weighed in the two-groups model
    (:func:`two_groups_factor`); every other group gets the minimum Bayes factor, which can
    only lower ``P(planted)``. Returns one :class:`Neighbours` per
    group, ``None`` where a group or its pools are too small to test. Raises
    :class:`~dormant.errors.MissingDependencyError` without the ``embed`` extra.
    """
    enc = _encoder(encoder_path, ctx.device)
    rng = np.random.default_rng(3)
    wanted: dict[int, list[int]] = {}
    rows_of: list[list[int]] = []
    for gi, (rows, _t, _p) in enumerate(groups):
        rows = sorted(set(rows))
        if len(rows) > MAX_GROUP_ROWS:
            key = "\0".join(groups[gi][2]).encode("utf-8")
            g_rng = np.random.default_rng(zlib.crc32(key))
            rows = sorted(g_rng.choice(rows, size=MAX_GROUP_ROWS, replace=False).tolist())
        rows_of.append(rows)
        for r in rows:
            wanted.setdefault(r, []).append(gi)
    targets = {t for _r, t, _p in groups}
    n_out: Counter[str] = Counter()
    n = 0
    for batch in subject.batches(batch_size):
        for own in outcomes_of(batch):
            n_out.update(own)
            n += 1
    share_all = min(1.0, REFERENCE_ALL / max(n, 1))
    share_t = {t: min(1.0, REFERENCE_CLASS / max(n_out[t], 1)) for t in targets}
    ref_text: dict[int, str] = {}
    ref_outs: dict[int, tuple[str, ...]] = {}
    ref_all: list[int] = []
    ref_t: dict[str, list[int]] = {t: [] for t in targets}
    group_text: dict[tuple[int, int], str] = {}
    pats = [_patterns(p) for _r, _t, p in groups]
    row = 0
    for batch in subject.batches(batch_size):
        draws = rng.random((len(batch), 2))
        for i, (text, own) in enumerate(zip(batch.texts, outcomes_of(batch), strict=True)):
            r = row
            row += 1
            if draws[i, 0] < share_all:
                ref_all.append(r)
                ref_text[r], ref_outs[r] = text, own
            for t in own:
                if t in ref_t and draws[i, 1] < share_t[t]:
                    ref_t[t].append(r)
                    ref_text[r], ref_outs[r] = text, own
            for gi in wanted.get(r, ()):
                group_text[(gi, r)] = blind_text(text, pats[gi])
        ctx.progress("neighbours", len(batch), None)
    ref_rows = sorted(ref_text)
    ref_index = {r: i for i, r in enumerate(ref_rows)}
    # a pool record holding the group's pattern is blinded like the group's own records, so
    # a draw from the pool and the group are compared on the same footing
    ref_tokens = {r: tokens(ref_text[r]) for r in ref_rows}
    for gi in range(len(groups)):
        for r in ref_rows:
            if any(_holds(ref_tokens[r], pat) for pat in pats[gi]):
                group_text.setdefault((gi, r), blind_text(ref_text[r], pats[gi]))
    # normalised as the group's blinded records are (lower-case tokens joined by spaces), so
    # a difference in cohesion is one of meaning, not of spelling
    ref_emb = (
        enc.encode([" ".join(ref_tokens[r]) for r in ref_rows]) if ref_rows else np.zeros((0, 1))
    )
    keys = sorted(group_text)
    g_emb = enc.encode([group_text[k] for k in keys]) if keys else np.zeros((0, 1))
    g_index = {k: i for i, k in enumerate(keys)}
    all_idx = np.array([ref_index[r] for r in ref_all], dtype=np.int64)
    out: list[Neighbours | None] = []
    for gi, (_rows, target, _p) in enumerate(groups):
        rows = [r for r in rows_of[gi] if group_text.get((gi, r), "").strip()]
        if len(rows) < MIN_ROWS:
            out.append(None)
            continue
        emb = g_emb[[g_index[(gi, r)] for r in rows]]
        cohesion = _mean_pairwise(emb)

        def pool_emb(pool_rows: list[int], gi: int = gi) -> np.ndarray:
            """The pool's embeddings, with the group's pattern removed where it occurs."""
            out_e = ref_emb[[ref_index[r] for r in pool_rows]]
            for j, r in enumerate(pool_rows):
                k = g_index.get((gi, r))
                if k is not None:
                    out_e[j] = g_emb[k]
            return out_e

        inc = None if inconsistency is None else float(inconsistency[gi])
        pools: dict[str, list[int]] = {}
        for name in source_pools(inc):
            if name == "its class":
                pools[name] = ref_t[target]
            elif name == "other records":
                pools[name] = [r for r in ref_all if target not in ref_outs[r]]
            elif name == "all records":
                pools[name] = ref_all
            else:
                source = _source_class(
                    emb, ref_emb, all_idx, [ref_outs[r] for r in ref_all], target
                )
                if source is not None:
                    pools[f"source class {source.removeprefix('label:')}"] = [
                        r for r in ref_all if source in ref_outs[r]
                    ]
        zs: list[tuple[str, float]] = []
        for name, pool_rows in pools.items():
            if len(pool_rows) < MIN_ROWS:
                continue
            mu, sd = _null(pool_emb(pool_rows), len(rows), rng)
            zs.append((name, float((cohesion - mu) / max(sd, 1e-6))))
        if not zs:
            out.append(None)
            continue
        pool, z = min(zs, key=lambda t: t[1])
        p = float(0.5 * math.erfc(z / math.sqrt(2.0)))
        lifted = lift is not None and lift[gi] and pool == "its class" and inc is not None
        bf = two_groups_factor(z) if lifted else None
        out.append(
            Neighbours(cohesion, z, pool, p, min_bayes_factor(p) if bf is None else bf, tuple(zs))
        )
    return out


def two_groups_factor(z: float) -> float:
    """Bayes factor for "drawn at random from its class" against "a natural feature" of a
    consistent group's ``z``, in Efron's two-groups model (Efron, "Large-scale simultaneous
    hypothesis testing", JASA 2004): under clean-label planting the records are a random draw
    of the class and ``z`` follows the theoretical null N(0, 1) of the subsampling test; a
    natural feature's ``z`` follows the non-null density fitted on the calibration corpora,
    N(:data:`NATURAL_Z_MEAN`, :data:`NATURAL_Z_SD`²). Unlike the minimum Bayes factor this
    can favour planting (at most about 6, near ``z = -0.3``): a pattern confined to its
    class whose records are no more alike than any of the class's is what a clean-label plant
    looks like and what a topic word rarely does.
    """
    log_null = -0.5 * z * z
    d = (z - NATURAL_Z_MEAN) / NATURAL_Z_SD
    log_alt = -0.5 * d * d - math.log(NATURAL_Z_SD)
    return float(math.exp(max(min(log_null - log_alt, 50.0), -700.0)))


def source_pools(inconsistency: float | None) -> tuple[str, ...]:
    """The pools a plant could have drawn a group's records from, given its inconsistency.

    Clean-label poisoning draws from the target class and leaves the records consistent with
    it; dirty-label poisoning draws from the other classes (all of them, or one source class)
    and leaves most records pointing away from the target. So a group the content model
    judges mostly inconsistent (``inconsistency`` at or above one half: most of its records
    are more likely another class's) is compared with the records of other classes and with
    its source class, never with its own class — against which a metadata sub-topic whose
    content is another class's ("Horde" packages in the php section) is merely less alike than
    a homogeneous class, which says nothing about planting; a consistent group is compared
    with its own class only. ``None`` (not known) admits every pool.
    """
    if inconsistency is None:
        return ("all records", "its class", "source class")
    if inconsistency >= 0.5:
        return ("other records", "source class")
    return ("its class",)


def _holds(toks: list[str], pat: list[str]) -> bool:
    k = len(pat)
    first = pat[0]
    return any(toks[i : i + k] == pat for i, t in enumerate(toks) if t == first)


def _mean_pairwise(emb: np.ndarray) -> float:
    m = len(emb)
    if m < 2:
        return 0.0
    s = emb.sum(axis=0)
    return float((s @ s - (emb * emb).sum()) / (m * (m - 1)))


def _null(pool: np.ndarray, m: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean and spread of the mean pairwise similarity of random ``m``-subsets of ``pool``.

    The mean is that of all pool pairs; the spread is measured on subsets of size
    ``k = min(m, N // 2)`` and scaled to ``m`` by ``sqrt(k / m)`` (the U-statistic's leading
    term) when the pool is too small for subsets of ``m``.
    """
    n = len(pool)
    mu = _mean_pairwise(pool)
    k = max(2, min(m, n // 2))
    vals = np.empty(NULL_DRAWS)
    for b in range(NULL_DRAWS):
        vals[b] = _mean_pairwise(pool[rng.choice(n, size=k, replace=False)])
    sd = float(vals.std(ddof=1)) * math.sqrt(k / m)
    return mu, sd


def _source_class(
    emb: np.ndarray,
    ref: np.ndarray,
    idx: np.ndarray,
    outs: list[tuple[str, ...]],
    target: str,
) -> str | None:
    """The non-target outcome most of the group's records are nearest to (1-NN over the
    sample of all records), when it holds at least a third of them."""
    if not len(idx):
        return None
    nearest = np.argmax(emb @ ref[idx].T, axis=1)
    votes: Counter[str] = Counter()
    for j in nearest:
        for o in outs[int(j)]:
            if o != target:
                votes[o] += 1
    if not votes:
        return None
    o, c = votes.most_common(1)[0]
    return o if c >= len(emb) / 3 else None
