"""Clean-label test of trigger mining: a pattern confined to its class, absent from its neighbours.

Clean-label poisoning (Turner, Tsipras & Madry, "Label-consistent backdoor attacks", 2019)
inserts the trigger into genuine records of the target class and leaves their labels alone, so
the content model sees nothing inconsistent and the verdict model sees a one-word feature of the
class, much like a topic word. Two signals of the poisoning literature tell them apart without a
model of the text:

- **absent from its records' near neighbours** (Peri et al., "Deep k-NN defense against
  clean-label data poisoning attacks", ECCV-W 2020): a topic word comes with its topic, so the
  nearest records of a record holding it (in word 1-2-gram TF-IDF space, the pattern removed)
  hold it too more often than chance; a planted token was put into records *drawn* from the
  class, and its records' neighbours hold it at the rate of a random draw. The statistic is the
  share of each group record's ``k`` nearest class records that also hold the pattern, and its
  null is the same share for random subsets of the class of the group's size — a permutation
  test (exact under clean-label planting: which records were drawn is independent of their
  text once the pattern is removed). Its ``z`` is about N(0, 1) for a plant and large for a
  topic word. Unlike the encoder cohesion of :mod:`._mining_neighbours` it compares each record
  with its own nearest records, not with every record of the group, so a topic with several
  sub-topics (flowers of several genera) still counts as natural.
- **confined to its class** (Anti-Backdoor Learning, Li et al., NeurIPS 2021: a backdoor is a
  shortcut that one feature explains, learned from its records alone): a planted string occurs
  nowhere but in the poisoned records, while a natural word confined, as a pattern, to one class
  ("having" at the start of adjective glosses) occurs elsewhere in other positions or forms.
  The statistic is the share of records holding the pattern's rarest word (anywhere, lower
  case) that carry the target outcome; for a pattern of several words, of records holding the
  whole string (its words alone are ordinary words, used everywhere). For phrases this is
  weak evidence (most natural consistent phrases are confined too); ``z`` carries the test.

The two are combined in Efron's two-groups model (Efron, JASA 2004), as in
:func:`._mining_neighbours.two_groups_factor`: the Bayes factor for "planted" is the density
of the evidence under planting — ``z`` ~ N(0, 1), the word confined — over its density among
natural consistent features, fitted on the calibration corpora
(:data:`NATURAL_EFFECT_MEANS`, ...), never on the corpus kept aside; a natural feature's ``z``
grows with the square root of its group's size, so its density is given per size (the
group's tested records). ``z`` and confinement are taken as independent given the kind of
feature (stated, not tested). Only a group whose rarest word is confined can be
raised: a pattern whose words the data uses elsewhere is not the one inserted string of a
plant, and a random-looking draw alone is what a natural copy template looks like (below).
The factor updates ``P(planted)``; it never decides on its own: a group the verdict model puts
below :data:`._mining_neighbours.TEST_FLOOR` is not tested.

**Copies and duplicates** (:mod:`._mining_copies`): a group whose records are, the pattern
removed, mostly copies of other records is a *copy template* (medium at most, never
quarantined); one whose records are mostly one text filed several times, the pattern kept, is
*duplicates* (a low data-hygiene note). Counted for every planted-looking group, also one
whose records read as another class.

Known limits: a clean-label trigger made of ordinary words (found by the phrase path, which
this test does not need) is not confined and gets no lift; a natural word that is truly new to
the data (a product name used by one class only, with no topic around it) looks like a plant;
planted copies are capped at medium like natural ones; near-copies that differ in one word
(a cross-compiler per architecture) are neither copies nor duplicates — only the encoder's
natural-neighbour test sees their cohesion.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...subjects.dataset import TextDataset
from ...text import tokens
from ..base import ScanContext
from ._mining_copies import copy_test, record_hash
from ._mining_hashcount import HashCounts, RepeatSample
from ._mining_neighbours import _holds, _patterns, blind_text
from ._mining_rows import sorted_rows

#: Class records a group is compared with at most (a sample; the group's records are kept).
MAX_CLASS_ROWS = 3000
#: Memory (MB) scikit-learn's nearest-neighbour search may take for one chunk of distances
#: (``sklearn.config_context(working_memory=...)``; its default is 1,024)
KNN_WORKING_MB = 16
#: Group records used at most.
MAX_GROUP_ROWS = 300
#: Nearest class records of each group record.
K_NEIGHBOURS = 10
#: Random subsets drawn for the permutation null.
NULL_DRAWS = 200
#: Fewest records a group needs for the test to say anything.
MIN_ROWS = 5
#: Natural consistent features: their per-record effect ``z / sqrt(records)`` follows a
#: two-component normal mixture (weights, means, spreads) — a natural feature's ``z`` grows
#: with the square root of its group's size, a plant's stays N(0, 1) — fitted with
#: scikit-learn's ``GaussianMixture`` on 962 natural consistent lexical groups of the four
#: calibration corpora (glosses by source, FOLDOC and WordNet by topic, Debian package
#: descriptions by section) by ``benchmarks/calibrate_junction.py``, never on the corpus kept
#: aside (BENCHMARKS.md). (Before: one normal over every size, mean 8.5, sd 9.2, fitted by
#: ``benchmarks/calibrate_clean_label.py``, which also fitted the confinement shares below.)
NATURAL_EFFECT_WEIGHTS = (0.785, 0.215)
NATURAL_EFFECT_MEANS = (1.26, 5.736)
NATURAL_EFFECT_SDS = (1.083, 3.299)
#: Share of records holding a rarest word confined to the class, among natural groups.
NATURAL_CONFINED = 0.37
#: Share of planted (clean-label token) groups whose rarest word is confined to the class:
#: 6 of 6 on the same corpora, taken as 0.9 (a planted word may occur naturally elsewhere).
PLANTED_CONFINED = 0.9
#: For a pattern of several words, "confined" is said of the whole string (wherever it
#: occurs): among the consistent multi-word groups of the verdict's calibration data
#: (``benchmarks/results/verdict_features*.jsonl``) 82% of 16,329 natural ones and 95% of 43
#: planted ones occur only in their target's records.
PHRASE_NATURAL_CONFINED = 0.82
PHRASE_PLANTED_CONFINED = 0.95
#: A word is "confined" when at least this share of the records holding it carry the target.
CONFINED_SHARE = 0.99
#: Natural consistent groups whose rarest word is not confined: Beta(a, b) of that word's
#: share of records carrying the target (mean 0.807, sd 0.195), fitted by the method of
#: moments on the 71 such single-word groups of ``benchmarks/calibrate_clean_label.py``'s six
#: calibration samples (its docstring; rows in
#: ``benchmarks/results/clean_label_confinement.jsonl``), never the corpus kept aside; used by
#: :func:`confinement_ratio`.
NATURAL_SHARE_BETA = (2.51, 0.60)


@dataclass(frozen=True)
class CleanLabelTest:
    """Outcome of the clean-label test of one consistent group.

    ``z`` is the neighbour-share statistic's z-score against random subsets of the class,
    ``p_value`` its one-sided permutation p-value for "more clustered than a random draw",
    ``confinement`` the share of records holding the pattern's rarest word that carry the
    target, ``word`` that word, and ``bayes_factor`` the two-groups factor for "planted".
    ``copies`` is the share of the group's records that, the pattern removed, are word for
    word another record, and ``copies_p`` the binomial p-value of that share against the
    class's rate of copies. ``copies_only``: only the copies were counted (a group whose
    records read as another class: ``z`` and the factor are not computed, the factor is 1).
    """

    z: float
    p_value: float
    confinement: float
    word: str
    bayes_factor: float
    copies: float = 0.0
    copies_p: float = 1.0
    copies_only: bool = False
    #: records holding the rarest word (the whole string, for a phrase): ``confinement``'s
    #: denominator
    holding: int = 0
    #: share of the group's records that, the pattern kept, are word for word another of its
    #: records (duplicate pages: :data:`._mining_copies.DUPLICATES_SHARE`)
    duplicates: float = 0.0


def confinement_ratio(inside: int, holding: int) -> float:
    """Likelihood ratio that the rarest word's true share of records carrying the target is
    at least :data:`CONFINED_SHARE` ("confined") against below it, from ``inside`` of the
    ``holding`` records that hold it.

    The observed share of a few dozen records is a noisy estimate: 81 of 82 records (one
    natural use of the word elsewhere) is 0.988, below the cut, though a true share of 0.995
    gives that count as readily as a true share of 0.97. Confined: the true share uniform on
    [:data:`CONFINED_SHARE`, 1]; not confined: the natural groups' share below the cut, a
    Beta(:data:`NATURAL_SHARE_BETA`) fitted on the calibration corpora, truncated there. The
    binomial likelihoods integrate in closed form (beta-binomial); ``inf`` when every record
    is inside beyond floating point, 0 when none holds it.
    """
    from scipy.special import betainc, betaincc, betaln

    if holding <= 0:
        return 0.0
    k, o = float(inside), float(holding - inside)
    a, b = NATURAL_SHARE_BETA
    cut = CONFINED_SHARE
    tail_c = float(betaincc(1.0 + k, 1.0 + o, cut))
    head_n = float(betainc(a + k, b + o, cut))
    if head_n <= 0.0:
        return math.inf
    if tail_c <= 0.0:
        return 0.0
    log_c = float(betaln(1.0 + k, 1.0 + o)) + math.log(tail_c) - math.log(1.0 - cut)
    log_n = (
        float(betaln(a + k, b + o) - betaln(a, b))
        + math.log(head_n)
        - math.log(float(betainc(a, b, cut)))
    )
    return math.exp(min(log_c - log_n, 700.0))


def clean_label_factor(
    z: float,
    confined: bool,
    *,
    records: int,
    phrase: bool = False,
    confined_ratio: float | None = None,
) -> float:
    """Bayes factor for "planted clean-label" against "natural consistent feature" of a
    group of ``records`` tested records.

    Planted: ``z`` ~ N(0, 1) (the permutation null is exact), rarest word confined with
    probability :data:`PLANTED_CONFINED`; natural: ``z`` ~ the mixture of
    N(m·√records, 1 + s²·records) over the components of :data:`NATURAL_EFFECT_WEIGHTS`,
    :data:`NATURAL_EFFECT_MEANS`, :data:`NATURAL_EFFECT_SDS`, confined with probability
    :data:`NATURAL_CONFINED` (for a ``phrase``, the whole string:
    :data:`PHRASE_PLANTED_CONFINED`, :data:`PHRASE_NATURAL_CONFINED`). ``confined_ratio``,
    when given, replaces the yes/no ``confined`` by the evidence of the counts
    (:func:`confinement_ratio`, ``r``): the confinement term is then
    ``(pc·r + 1 - pc) / (nc·r + 1 - nc)``, which is ``pc / nc`` for ``r`` → ∞ and
    ``(1 - pc) / (1 - nc)`` for ``r`` = 0. Where the confinement term is at most 1 (the
    counts do not favour a confined word) the factor is at most 1: it can lower the odds,
    never raise them.
    """
    n = max(int(records), 1)
    log_null = -0.5 * z * z
    terms = []
    for w, m, s in zip(
        NATURAL_EFFECT_WEIGHTS, NATURAL_EFFECT_MEANS, NATURAL_EFFECT_SDS, strict=True
    ):
        sd = math.sqrt(1.0 + s * s * n)
        d = (z - m * math.sqrt(n)) / sd
        terms.append(math.log(w) - 0.5 * d * d - math.log(sd))
    top = max(terms)
    log_alt = top + math.log(sum(math.exp(t - top) for t in terms))
    pc, nc = (
        (PHRASE_PLANTED_CONFINED, PHRASE_NATURAL_CONFINED)
        if phrase
        else (
            PLANTED_CONFINED,
            NATURAL_CONFINED,
        )
    )
    if confined_ratio is None:
        term = pc / nc if confined else (1.0 - pc) / (1.0 - nc)
    elif math.isinf(confined_ratio):
        term = pc / nc
    else:
        r = max(float(confined_ratio), 0.0)
        term = (pc * r + 1.0 - pc) / (nc * r + 1.0 - nc)
    log_bf = log_null - log_alt + math.log(term)
    if term <= 1.0:
        log_bf = min(log_bf, 0.0)
    return float(math.exp(max(min(log_bf, 50.0), -700.0)))


def clean_label_test(
    subject: TextDataset,
    groups: Sequence[tuple[Sequence[int] | np.ndarray, str, list[str]]],
    outcomes_of: Any,
    batch_size: int,
    ctx: ScanContext,
    *,
    copies_only: Sequence[bool] | None = None,
) -> list[CleanLabelTest | None]:
    """Run the test for each group ``(target rows, target outcome, pattern texts)``.

    ``outcomes_of(batch)`` gives each record's outcomes. ``copies_only`` (one per group) marks
    the groups for which only the copies are counted. Returns one :class:`CleanLabelTest`
    per group, ``None`` where the group or its class is too small to test. How often each
    normalised text occurs per target outcome is counted in bounded memory
    (:class:`._mining_hashcount.HashCounts`, spilled to a temporary folder past its budget).
    """
    seen = HashCounts()
    try:
        return _clean_label_test(
            subject, groups, outcomes_of, batch_size, ctx, copies_only=copies_only, seen=seen
        )
    finally:
        seen.close()


def _clean_label_test(
    subject: TextDataset,
    groups: Sequence[tuple[Sequence[int] | np.ndarray, str, list[str]]],
    outcomes_of: Any,
    batch_size: int,
    ctx: ScanContext,
    *,
    copies_only: Sequence[bool] | None,
    seen: HashCounts,
) -> list[CleanLabelTest | None]:
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    if not groups:
        return []
    pats = [_patterns(p) for _r, _t, p in groups]
    # the rarest word of each pattern decides confinement; count it over the whole data
    words = [_words(p) for p in pats]
    word_all: Counter[str] = Counter()
    word_in: list[Counter[str]] = [Counter() for _ in groups]
    wanted_words = {w for ws in words for w in ws}
    multi = [gi for gi, p in enumerate(pats) if max(map(len, p), default=0) > 1]
    phrase_all: Counter[int] = Counter()
    phrase_in: Counter[int] = Counter()
    targets = {t for _r, t, _p in groups}
    n_out: Counter[str] = Counter()
    n = 0
    # normalised texts (hashed) of every record, per target outcome it carries
    everywhere = RepeatSample()  # the data's own rate of copies, for groups read elsewhere
    for batch in subject.batches(batch_size):
        batch_hashes: dict[str, list[int]] = {t: [] for t in targets}
        all_hashes: list[int] = []
        for text, own in zip(batch.texts, outcomes_of(batch), strict=True):
            n += 1
            n_out.update(own)
            toks = tokens(text)
            h = record_hash(" ".join(toks))
            all_hashes.append(h)
            for t in targets.intersection(own):
                batch_hashes[t].append(h)
            present = wanted_words.intersection(toks)
            if not present:
                continue
            for gi in multi:  # a phrase: the whole string, wherever it occurs
                if any(_holds(toks, pat) for pat in pats[gi] if len(pat) > 1):
                    phrase_all[gi] += 1
                    phrase_in[gi] += groups[gi][1] in own
            word_all.update(present)
            for gi, (_r, t, _p) in enumerate(groups):
                if t in own:
                    word_in[gi].update(present & set(words[gi]))
        for t, hs in batch_hashes.items():
            seen.add(t, np.array(hs, dtype=np.uint64))
        everywhere.add(np.array(all_hashes, dtype=np.uint64))
    seen.finish()
    data_rate = everywhere.repeated_share()
    # the class sample: every record of a small class, a seeded share of a large one
    share = {t: min(1.0, MAX_CLASS_ROWS / max(n_out[t], 1)) for t in targets}
    group_rows: list[set[int]] = []
    for rows_in, _t, p in groups:
        every = sorted_rows(rows_in)  # an array: no Python int per row of a large group
        if len(every) > MAX_GROUP_ROWS:
            g_rng = np.random.default_rng(zlib.crc32("\0".join(p).encode("utf-8")))
            rows = sorted(g_rng.choice(every, size=MAX_GROUP_ROWS, replace=False).tolist())
        else:
            rows = every.tolist()
        group_rows.append(set(rows))
    keep_rows = set().union(*group_rows)
    rng = np.random.default_rng(5)
    class_text: dict[str, dict[int, str]] = {t: {} for t in targets}
    row = 0
    for batch in subject.batches(batch_size):
        draws = rng.random(len(batch))
        for i, (text, own) in enumerate(zip(batch.texts, outcomes_of(batch), strict=True)):
            for t in own:
                if t in class_text and (draws[i] < share[t] or row in keep_rows):
                    class_text[t][row] = text
            row += 1
        ctx.progress("clean-label", len(batch), None)
    out: list[CleanLabelTest | None] = []
    for gi, (_rows, target, _p) in enumerate(groups):
        texts = class_text[target]
        rows = sorted(texts)
        row_toks = [tokens(texts[r]) for r in rows]
        member = np.array(
            [
                r in group_rows[gi] or any(_holds(tk, pat) for pat in pats[gi])
                for r, tk in zip(rows, row_toks, strict=True)
            ]
        )
        blinded = [
            blind_text(texts[r], pats[gi]) if m else " ".join(tk)
            for r, tk, m in zip(rows, row_toks, member, strict=True)
        ]
        ok = np.array([bool(b.strip()) for b in blinded])
        whole = np.array([r in group_rows[gi] for r in rows])
        in_group = whole & ok
        if whole.sum() < MIN_ROWS:
            out.append(None)
            continue
        only = copies_only is not None and copies_only[gi]
        # records that read as another class were taken from anywhere in the data: their
        # null is the data's own rate of copies when it is higher than the class's
        copies, copies_p, dups = copy_test(
            blinded,
            row_toks,
            whole,
            member & ok,
            ~member & ok,
            seen,
            target,
            data_rate if only else 0.0,
        )
        if only or in_group.sum() < MIN_ROWS or ok.sum() < 4 * MIN_ROWS:
            # only the copies are counted: asked to, or too little text is left to compare
            out.append(
                CleanLabelTest(0.0, 1.0, 0.0, "", 1.0, copies, copies_p, True, duplicates=dups)
            )
            continue
        idx = np.nonzero(ok)[0]
        vec = TfidfVectorizer(
            analyzer=str.split, sublinear_tf=True, lowercase=False, dtype=np.float32
        )
        x = vec.fit_transform([_bigrams(blinded[i]) for i in idx])
        k = min(K_NEIGHBOURS, len(idx) - 1)
        nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
        # distances a chunk of rows at a time (the same neighbours): by default scikit-learn
        # makes chunks of up to 1 GB, a 3,300-record class's whole matrix at once (+130 MB)
        with sklearn.config_context(working_memory=KNN_WORKING_MB):
            _d, nb = nn.kneighbors(x)
        nb = np.array([[j for j in row_nb if j != i][:k] for i, row_nb in enumerate(nb)])
        holds = member[idx]
        grp = np.nonzero(in_group[idx])[0]
        stat = float(holds[nb[grp]].mean())
        null = np.empty(NULL_DRAWS)
        m_hold = int(holds.sum())
        for b in range(NULL_DRAWS):
            perm = np.zeros(len(idx), dtype=bool)
            perm[rng.choice(len(idx), size=m_hold, replace=False)] = True
            pick = rng.choice(np.nonzero(perm)[0], size=len(grp), replace=False)
            null[b] = perm[nb[pick]].mean()
        sd = float(null.std(ddof=1))
        z = float((stat - null.mean()) / max(sd, 1e-6))
        p_perm = float((1 + (null >= stat).sum()) / (1 + NULL_DRAWS))
        if gi in phrase_all:
            word = max((" ".join(pat) for pat in pats[gi]), key=len)
            holding = phrase_all[gi]
            conf = phrase_in[gi] / holding
        else:
            word = min(words[gi], key=lambda w: word_all[w], default="")
            holding = word_all[word] if word else 0
            inside = word_in[gi][word] if word else 0
            conf = inside / holding if holding else 0.0
        phrase = gi in phrase_all
        bf = clean_label_factor(
            z,
            conf >= CONFINED_SHARE,
            records=len(grp),
            phrase=phrase,
            # a word's count is weighed (a phrase's constants were counted with the cut)
            confined_ratio=None if phrase else confinement_ratio(inside, holding),
        )
        out.append(
            CleanLabelTest(
                z,
                p_perm,
                float(conf),
                word,
                bf,
                copies,
                copies_p,
                False,
                holding,
                duplicates=dups,
            )
        )
    return out


def _words(pats: list[list[str]]) -> list[str]:
    """The alphanumeric words of a group's patterns."""
    return sorted({t for pat in pats for t in pat if any(ch.isalnum() for ch in t)})


def _bigrams(text: str) -> str:
    """Word 1-2-grams of a space-joined token string, as one space-separated string."""
    toks = text.split()
    return " ".join([*toks, *(f"{a}_{b}" for a, b in itertools.pairwise(toks))])
