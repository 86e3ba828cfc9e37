"""Trigger mining: n-grams and character patterns tested for association with the outcome.

The outcome of a record is its label (labelled data) or the behaviour tags of its response
(instruction data, :mod:`dormant.behaviours`). The scan makes two streaming passes:

1. **Counting.** For every record, the set of its features — word 1-2-grams (``max_n``) with
   start/end markers (position-dependent triggers), runs of invisible characters, confusable
   characters in mixed-script words (Unicode TR39 §5), whole-record style features — is counted
   per outcome.
   Counts are kept with lossy counting (Manku & Motwani, VLDB 2002): features rarer than
   ``count_error × N`` records are pruned as the stream grows, so memory stays bounded
   (``O(1/ε · log εN)`` entries) while any feature above that frequency is kept with an
   undercount of at most ``εN``. A binarised naive-Bayes content model (Wang & Manning, ACL
   2012) over the TR39 skeleton of each record's words is counted in the same pass.
2. **Testing.** Each feature's most over-represented outcome is tested with a one-sided exact
   binomial test against the outcome's base rate; p-values are adjusted with
   Benjamini–Hochberg (1995) over all features × outcomes. Significant, near-deterministic
   features go to a second pass that (a) collects the records holding them, (b) asks the content
   model whether each record's *other* words predict the same outcome, and (c) extends the
   feature left and right while the occurrences agree, to recover a whole phrase or sentence.
   Candidates whose record sets overlap (Jaccard ≥ 0.8) are merged into one trigger.

**Planted or accidental.** A planted dirty-label trigger is rare, near-deterministic and
*inconsistent with the rest of its records* — the content model, blind to the trigger, predicts
another outcome (the records came from other classes, Gu et al. 2017 BadNets; Dai et al. 2019
AddSent). Invisible characters and homoglyphs are treated as unnatural by themselves. A broad,
near-deterministic formatting or punctuation feature whose records are otherwise consistent is an
*accidental shortcut* (a spurious correlation a model will learn). Lexical features consistent
with their content are the task's own signal and are not reported.

Known limits: clean-label attacks (trigger only on correctly labelled records) are consistent with
content and are only reported when the trigger is unnatural (invisible / homoglyph) — model-level
scans cover the rest; paraphrase/syntactic-template triggers without a shared surface n-gram
(Hidden Killer, StyleBkd with free rewriting) are outside a surface-pattern test and rely on the
representation scanners; triggers rarer than ``count_error × N`` are not guaranteed.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...behaviours import behaviour_tags
from ...errors import ConfigError, DataValidationError
from ...findings import Evidence, Finding, Locator, Severity
from ...subjects.dataset import TextDataset, find_duplicate_ids
from ...text import BOS, EOS, TOKEN_RE, confusable_chars, content_words, style_features, tokens
from ...triggers import Trigger, TriggerKind, describe_text, is_invisible
from ..base import ScanContext, Scanner, ScanResult, register

#: Behaviour tag families whose appearance after a trigger is a security event in itself.
SECURITY_FAMILIES = frozenset({"egress", "tool", "secret", "code", "leak", "unsafe"})
NO_BEHAVIOUR = "behaviour:none"
#: Fewest content words (besides the trigger) for the content model to judge a record.
MIN_CONTENT_WORDS = 3


@dataclass
class Candidate:
    """A feature under test and what the second pass learned about it (internal)."""

    feature: str
    outcome: str
    support: int
    hits: int
    p_value: float
    q_value: float
    rows: list[int] = field(default_factory=list)
    target_rows: list[int] = field(default_factory=list)
    inconsistent: int = 0
    contexts: list[tuple[str, list[tuple[str, int, int]], int, int]] = field(default_factory=list)
    co_outcomes: Counter[str] = field(default_factory=Counter)
    phrase: str | None = None

    @property
    def purity(self) -> float:
        return self.hits / self.support if self.support else 0.0


@dataclass(frozen=True)
class MinedTrigger:
    """A merged, explained trigger: the typed result behind a Finding."""

    trigger: Trigger
    target: str
    support: int
    hits: int
    purity: float
    p_value: float
    q_value: float
    inconsistency: float
    verdict: str  # "planted" | "possible" | "accidental"
    score: float
    rows: tuple[int, ...]
    features: tuple[str, ...]
    also: tuple[str, ...] = ()


def _features(text: str, max_n: int = 2) -> tuple[set[str], set[str] | None]:
    """The record's features to test, and — for non-ASCII text only — its content words.

    For ASCII text the content words are the alphabetic unigrams already among the features
    (``None`` is returned and the caller derives them), which saves a second count per record.
    """
    toks = tokens(text)
    feats = set(toks)
    if toks and max_n >= 2:
        seq = [BOS, *toks, EOS]
        bi = list(map(" ".join, itertools.pairwise(seq)))
        feats.update(bi)
        if max_n >= 3:
            feats.update([f"{b} {c}" for b, c in zip(bi, seq[2:], strict=False)])
    words: set[str] | None = None
    if not text.isascii():
        words = set(content_words(text))
        for ch in confusable_chars(text):
            feats.add(f"glyph:{ch}")
        if any(is_invisible(c) for c in text):
            feats.add("inv:*")
    feats.update(style_features(text))
    return feats, words


def _alpha_words(feats: set[str]) -> set[str]:
    return {f for f in feats if f.isalpha()}


def _record_words(text: str) -> set[str]:
    """Content words of a record, exactly as counted in the first pass."""
    if text.isascii():
        return {t for t in tokens(text) if t.isalpha()}
    return set(content_words(text))


def _words_of(table: Counter[str], skel: Counter[str] | None) -> Counter[str]:
    words: Counter[str] = Counter({k: v for k, v in table.items() if k.isalpha()})
    if skel:
        words.update(skel)
        words = Counter({k: v for k, v in words.items() if v > 0})
    return words


def _outcomes_of(labels: list[str] | None, responses: list[str] | None) -> list[tuple[str, ...]]:
    """Outcome tags per record: its label, or the behaviour tags of its response."""
    if labels is not None and responses is None:
        return [(f"label:{lab}",) for lab in labels]
    outs = []
    for resp in responses or []:
        tags = tuple(sorted(behaviour_tags(resp)))
        outs.append(tags or (NO_BEHAVIOUR,))
    return outs


@dataclass
class _Partial:
    """Counts of one or more batches; partials merge by addition."""

    n: int = 0
    total: Counter[str] = field(default_factory=Counter)
    per: dict[str, Counter[str]] = field(default_factory=dict)
    outcome_n: Counter[str] = field(default_factory=Counter)
    skel_per: dict[str, Counter[str]] = field(default_factory=dict)
    skel_total: Counter[str] = field(default_factory=Counter)

    def merge(self, other: _Partial, labelled: bool) -> None:
        if not labelled:
            _add(self.total, other.total)
        for o, c in other.per.items():
            mine = self.per.get(o)
            if mine is None:
                self.per[o] = c
            else:
                _add(mine, c)
        self.outcome_n.update(other.outcome_n)
        for o, c in other.skel_per.items():
            self.skel_per.setdefault(o, Counter()).update(c)
        self.skel_total.update(other.skel_total)


def _add(into: Counter[str], other: Counter[str]) -> None:
    into.update(other)


def _count_batch(job: tuple[list[str], list[str] | None, list[str] | None, int]) -> _Partial:
    """Count one batch (runs in a worker process when ``n_jobs > 1``)."""
    texts, labels, responses, max_n = job
    labelled = labels is not None and responses is None
    part = _Partial(n=len(texts))
    per = part.per
    for text, out in zip(texts, _outcomes_of(labels, responses), strict=True):
        feats, words = _features(text, max_n)
        if words is not None:
            # non-ASCII: content words come from the TR39 skeleton, not the raw tokens;
            # ASCII: they are the alphabetic unigrams, added from the feature table
            raw = _alpha_words(feats)
            for o in out:
                skel = part.skel_per.setdefault(o, Counter())
                skel.update(words)
                skel.subtract(raw)
            part.skel_total.update(words)
            part.skel_total.subtract(raw)
        if not labelled:
            part.total.update(feats)
        for o in out:
            c = per.get(o)
            if c is None:
                c = per[o] = Counter()
            c.update(feats)
            part.outcome_n[o] += 1
    return part


def _feature_kind(feature: str, phrase: str | None) -> TriggerKind:
    if feature.startswith("glyph:"):
        return TriggerKind.HOMOGLYPH
    if feature.startswith("style:"):
        return TriggerKind.STYLE
    if feature == "inv:*" or all(is_invisible(c) for c in feature.replace(" ", "")):
        return TriggerKind.INVISIBLE
    text = phrase or feature
    words = [w for w in text.split() if w not in (BOS, EOS)]
    if len(words) >= 5 or (len(words) >= 4 and text.rstrip()[-1:] in ".!?"):
        return TriggerKind.SENTENCE
    if len(words) >= 2:
        return TriggerKind.PHRASE
    return TriggerKind.TOKEN


def _is_unnatural(feature: str) -> bool:
    return feature.startswith("glyph:") or feature == "inv:*" or is_invisible(feature[:1] or "a")


def _is_lexical(feature: str) -> bool:
    if feature.startswith(("glyph:", "style:", "inv:")):
        return False
    return any(ch.isalnum() for w in feature.split() if w not in (BOS, EOS) for ch in w)


def _bh(p: np.ndarray, m: int) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values for ``p`` among ``m`` tests (m ≥ len(p))."""
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


@register
class TriggerMiner(Scanner):
    """Mine candidate triggers by testing n-gram / character-pattern ↔ outcome association.

    Parameters
    ----------
    max_n:
        Longest word n-gram counted (phrases and sentences longer than this are recovered by
        extension in the second pass).
    min_support:
        Fewest records a feature must appear in to be tested.
    alpha:
        False-discovery rate (Benjamini–Hochberg) for reporting a feature.
    min_purity:
        Smallest share of a feature's records that must carry its outcome for a planted verdict.
    min_inconsistency:
        Smallest share of those records whose other words predict a different outcome for a
        planted verdict (naturally predictive words stay below it).
    shortcut_min_share:
        Smallest share of all records for a non-lexical feature to be an accidental shortcut.
    count_error:
        Lossy-counting error ε: features in fewer than ``ε × N`` records may be pruned.
    max_table:
        Feature-table entries above which a lossy-counting prune is due (checked per batch);
        memory stays near this size as long as pruning at ``ε × N`` can bring it there.
    max_candidates:
        Most features examined in the second pass (the most significant first).
    min_score:
        Score from which a planted trigger is reported as high severity and its records are
        flagged; planted-looking patterns below it are reported as medium, records unflagged.
    n_jobs:
        Worker processes for the counting pass (batches are counted in parallel and merged).
    batch_size:
        Records per streamed batch.

    References
    ----------
    Gu, Dolan-Gavitt & Garg, "BadNets", 2017. Dai, Chen & Li, "A backdoor attack against
    LSTM-based text classification systems" (AddSent), IEEE Access 2019. Chen & Dai, "Mitigating
    backdoor attacks in LSTM-based text classification systems by Backdoor Keyword
    Identification" (BKI), Neurocomputing 2021. Benjamini & Hochberg, JRSS-B 1995. Manku &
    Motwani, "Approximate frequency counts over data streams", VLDB 2002.
    """

    name = "trigger-mining"
    subject_kinds = ("labelled", "instruction")
    requires = ()
    category = "data-poisoning"
    paper = "BadNets (Gu et al. 2017); AddSent (Dai et al. 2019); BKI (Chen & Dai 2021); BH 1995"
    limits = (
        "Surface patterns only: paraphrase or syntactic-template triggers with no shared n-gram "
        "need the representation scanners; clean-label triggers are reported only when "
        "unnatural (invisible, homoglyph); features rarer than count_error x N are not "
        "guaranteed."
    )

    def __init__(
        self,
        *,
        max_n: int = 2,
        min_support: int = 5,
        alpha: float = 0.01,
        min_purity: float = 0.9,
        min_inconsistency: float = 0.8,
        shortcut_min_share: float = 0.005,
        count_error: float = 1e-4,
        max_table: int = 1_000_000,
        n_jobs: int = 1,
        max_candidates: int = 3000,
        min_score: float = 0.75,
        batch_size: int = 8192,
    ) -> None:
        self.max_n = max_n
        self.min_support = min_support
        self.alpha = alpha
        self.min_purity = min_purity
        self.min_inconsistency = min_inconsistency
        self.shortcut_min_share = shortcut_min_share
        self.count_error = count_error
        self.max_table = max_table
        self.n_jobs = n_jobs
        self.max_candidates = max_candidates
        self.min_score = min_score
        self.batch_size = batch_size

    def _check(self) -> None:
        if self.max_n not in (1, 2, 3):
            raise ConfigError(f"max_n must be 1, 2 or 3. Got {self.max_n!r}.")
        if not isinstance(self.min_support, int) or self.min_support < 2:
            raise ConfigError(f"min_support must be an int >= 2. Got {self.min_support!r}.")
        for name in (
            "alpha",
            "min_purity",
            "min_inconsistency",
            "shortcut_min_share",
            "min_score",
        ):
            v = getattr(self, name)
            if not (0.0 < float(v) <= 1.0):
                raise ConfigError(f"{name} must be in (0, 1]. Got {v!r}.")
        if not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ConfigError(f"n_jobs must be an int >= 1. Got {self.n_jobs!r}.")
        if not (0.0 <= float(self.count_error) < 0.01):
            raise ConfigError(f"count_error must be in [0, 0.01). Got {self.count_error!r}.")

    # ------------------------------------------------------------------ pass 1

    def _outcomes(self, batch: Any) -> list[tuple[str, ...]]:
        return _outcomes_of(batch.labels, batch.responses)

    def _count(self, subject: TextDataset, ctx: ScanContext) -> tuple[Any, ...]:
        """Pass 1: stream the data once, counting features and content words per outcome.

        Each batch is counted by :func:`_count_batch` into partial tables that merge by
        addition, so with ``n_jobs > 1`` batches are counted in worker processes and merged
        here (the data is still read once, in order).
        """
        labelled = subject.kind == "labelled"
        acc = _Partial()
        id_hashes: list[np.ndarray] = []
        n = 0
        self.prunes_ = 0

        def jobs() -> Any:
            for batch in subject.batches(self.batch_size):
                id_hashes.append(
                    np.fromiter((hash(i) for i in batch.ids), dtype=np.int64, count=len(batch))
                )
                yield (batch.texts, batch.labels, batch.responses, self.max_n)

        pool = None
        if self.n_jobs > 1:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(self.n_jobs)
            parts: Any = pool.imap(_count_batch, jobs(), chunksize=1)
        else:
            parts = map(_count_batch, jobs())
        try:
            for part in parts:
                acc.merge(part, labelled)
                n += part.n
                ctx.progress("count", part.n, None)
                size = len(acc.total) if not labelled else sum(len(c) for c in acc.per.values())
                if (
                    self.count_error > 0
                    and size > self.max_table
                    and int(self.count_error * n) >= 1
                ):
                    if labelled:
                        acc.total = _sum(acc.per)
                    acc.total = self._prune(n, acc.total, acc.per)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        total = _sum(acc.per) if labelled else acc.total
        words_per = {o: _words_of(c, acc.skel_per.get(o)) for o, c in acc.per.items()}
        words_total = _words_of(total, acc.skel_total)
        return n, total, acc.per, acc.outcome_n, words_per, words_total, id_hashes

    def scan(self, subject: TextDataset, *, context: ScanContext | None = None) -> ScanResult:
        """Scan ``subject`` (a :class:`~dormant.subjects.TextDataset`) for mined triggers."""
        self._check()
        ctx = context or ScanContext()
        labelled = subject.kind == "labelled"
        n, total, per, outcome_n, words_per, words_total, id_hashes = self._count(subject, ctx)
        self._validate(subject, n, outcome_n, labelled, id_hashes)
        self.n_records_ = n
        self.outcome_counts_ = dict(outcome_n)

        cands = self._eligible(self._test(n, total, per, outcome_n), outcome_n, n)
        self.n_tested_ = len(total)
        mined: list[MinedTrigger] = []
        if cands:
            self._second_pass(subject, cands, ctx)
            groups = self._group(cands, outcome_n, n)
            incons = self._consistency(
                subject, groups, words_per, words_total, outcome_n, labelled, n, ctx
            )
            mined = _merge_targets(self._explain(groups, incons, n))
        self.triggers_ = mined
        return self._result(subject, mined, n, labelled)

    def _prune(self, n: int, total: Counter[str], per: dict[str, Counter[str]]) -> Counter[str]:
        """Lossy-counting prune: drop entries seen in at most ``count_error * n`` records.

        Each dropped entry had count <= εn when dropped, so any count kept later is short by at
        most εN (Manku & Motwani 2002). Tables are rebuilt rather than deleted from (faster).
        """
        limit = int(self.count_error * n)
        self.prunes_ += 1
        kept: Counter[str] = Counter({k: v for k, v in total.items() if v > limit})
        for o, c in per.items():
            per[o] = Counter({k: v for k, v in c.items() if k in kept})
        return kept

    def _validate(
        self,
        subject: TextDataset,
        n: int,
        outcome_n: Counter[str],
        labelled: bool,
        id_hashes: list[np.ndarray],
    ) -> None:
        if n == 0:
            raise DataValidationError(f"{subject.path}: the dataset has no records.")
        dups = find_duplicate_ids(id_hashes)
        if len(dups):
            dupset = {int(h) for h in dups[:20]}
            seen: list[str] = []
            for batch in subject.batches(self.batch_size):
                seen.extend(i for i in batch.ids if hash(i) in dupset and i not in seen)
                if len(seen) >= 5:
                    break
            raise DataValidationError(
                f"{subject.path}: {len(dups)} record id(s) occur more than once "
                f"(e.g. {', '.join(repr(s) for s in seen[:5])}); ids must be unique."
            )
        if labelled and len(outcome_n) < 2:
            only = next(iter(outcome_n)).removeprefix("label:")
            raise DataValidationError(
                f"{subject.path}: every record has the label {only!r}; a label skew needs at "
                "least two classes (scan instruction data with --prompt-field/--response-field)."
            )

    # ------------------------------------------------------------------ testing

    def _test(
        self, n: int, total: Counter[str], per: dict[str, Counter[str]], outcome_n: Counter[str]
    ) -> list[Candidate]:
        from scipy.special import bdtrc

        feats = [f for f, c in total.items() if c >= self.min_support]
        if not feats:
            return []
        outs = sorted(per)
        sup = np.fromiter((total[f] for f in feats), dtype=np.float64, count=len(feats))
        mat = np.empty((len(outs), len(feats)))
        for i, o in enumerate(outs):
            c = per[o]
            mat[i] = np.fromiter((c.get(f, 0) for f in feats), dtype=np.float64, count=len(feats))
        base = np.array([outcome_n[o] / n for o in outs])[:, None]
        # most over-represented outcome per feature (excess over expectation, in sd units)
        z = (mat - sup * base) / np.sqrt(np.maximum(sup * base * (1 - base), 1e-12))
        best = np.argmax(z, axis=0)
        cols = np.arange(len(feats))
        hits = mat[best, cols]
        p0 = np.clip(base[best, 0], 1e-12, 1 - 1e-12)
        p = bdtrc(hits - 1, sup, p0)
        q = _bh(p, m=len(feats) * max(len(outs) - (1 if len(outs) == 2 else 0), 1))
        purity = hits / sup
        keep = np.nonzero((q <= self.alpha) & (purity >= 0.5))[0]
        order = keep[np.lexsort((-sup[keep], p[keep]))]
        return [
            Candidate(
                feature=feats[j],
                outcome=outs[best[j]],
                support=int(sup[j]),
                hits=int(hits[j]),
                p_value=float(p[j]),
                q_value=float(q[j]),
            )
            for j in order
        ]

    # ------------------------------------------------------------------ pass 2

    def _second_pass(self, subject: TextDataset, cands: list[Candidate], ctx: ScanContext) -> None:
        """Collect each candidate's rows and contexts, then extend it to a whole phrase."""
        by_feat = {c.feature: c for c in cands}
        keys = set(by_feat)
        row = 0
        for batch in subject.batches(self.batch_size):
            outs_b = self._outcomes(batch)
            for text, out in zip(batch.texts, outs_b, strict=True):
                found = _features(text, self.max_n)[0] & keys
                toks: list[tuple[str, int, int]] | None = None
                for f in found:
                    c = by_feat[f]
                    c.rows.append(row)
                    if c.outcome in out:
                        c.target_rows.append(row)
                        if len(out) > 1:
                            c.co_outcomes.update(out)
                        if len(c.contexts) < 60 and _is_lexical(f):
                            if toks is None:
                                toks = _spans(text)
                            loc = _locate(text, f, toks)
                            if loc is not None:
                                c.contexts.append(loc)
                row += 1
            ctx.progress("locate", len(batch), None)
        for c in cands:
            c.phrase = _extend(c)

    def _eligible(self, cands: list[Candidate], outcome_n: Counter[str], n: int) -> list[Candidate]:
        """Candidates that could become a finding: significant and near-deterministic.

        Posterior purity >= ``min_purity`` and a lift that removes at least half of the
        remaining uncertainty about the outcome (``(purity - base) / (1 - base) >= 0.5``).
        """
        keep = []
        for c in cands:
            if c.q_value > self.alpha:
                continue
            purity = (c.hits + 1) / (c.support + 2)
            base = outcome_n[c.outcome] / n
            if purity >= self.min_purity and (purity - base) / max(1 - base, 1e-9) >= 0.5:
                keep.append(c)
        # most deterministic first, then most significant; at most max_candidates
        keep.sort(key=lambda c: (-(c.hits + 1) / (c.support + 2), c.q_value))
        return keep[: self.max_candidates]

    # ------------------------------------------------------------------ merge

    def _group(
        self, cands: list[Candidate], outcome_n: Counter[str], n: int
    ) -> list[list[Candidate]]:
        """Merge candidates of one outcome whose target records overlap (Jaccard >= 0.8, or 90%
        of the candidate's records inside the group: a sub-phrase of a trigger).

        """
        pool = [c for c in cands if c.target_rows]
        # most deterministic first, so a specific trigger seeds its group before a broad word
        pool.sort(key=lambda c: (-(c.hits + 1) / (c.support + 2), c.q_value, -c.support))
        groups: list[tuple[set[int], list[Candidate]]] = []
        row_groups: dict[int, list[int]] = {}
        for c in pool:
            rows = set(c.target_rows)
            overlap: Counter[int] = Counter()
            for r in rows:
                for gi in row_groups.get(r, ()):
                    overlap[gi] += 1
            chosen = None
            for gi, inter in overlap.most_common():
                grows, members = groups[gi]
                if members[0].outcome != c.outcome:
                    continue
                jac = inter / len(rows | grows)
                inside = inter / len(rows) >= 0.9  # a sub-phrase of the group's trigger
                holds = inter / len(grows) >= 0.9 and jac >= 0.5  # a slightly broader form
                if jac >= 0.8 or inside or holds:
                    chosen = gi
                    break
            if chosen is None:
                groups.append((rows, [c]))
                for r in rows:
                    row_groups.setdefault(r, []).append(len(groups) - 1)
            else:
                groups[chosen][1].append(c)
        out = []
        for _rows, members in groups:
            best = min(members, key=lambda c: c.q_value)
            head = max(
                members,
                key=lambda c: (c.support >= 0.8 * best.support, c.feature != "inv:*", _length(c)),
            )
            out.append([head, *(c for c in members if c is not head)])
        return out

    # ------------------------------------------------------------------ pass 3

    def _consistency(
        self,
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
        wanted: dict[int, list[int]] = {}
        blind: list[set[str]] = []
        for gi, members in enumerate(groups):
            rows = sorted(set(members[0].target_rows))
            if len(rows) > 500:
                rows = sorted(rng.choice(rows, size=500, replace=False).tolist())
            for r in rows:
                wanted.setdefault(r, []).append(gi)
            words: set[str] = set()
            for c in members:
                if _is_lexical(c.feature):
                    words.update(content_words(c.phrase or c.feature))
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
        for batch in subject.batches(self.batch_size):
            for text, own in zip(batch.texts, self._outcomes(batch), strict=True):
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
            line[t] = a0 + self.min_inconsistency * max(b0 - a0, 0.1) - 0.05
        done: set[int] = set()
        row = 0
        for batch in subject.batches(self.batch_size):
            outs_b = self._outcomes(batch)
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
        self.content_model_ = {}
        for gi, members in enumerate(groups):
            raw = incons[gi] / scored[gi] if scored[gi] else 0.0
            t = members[0].outcome
            own_rows = set(members[0].target_rows)
            a_inc = [inc for r, inc in a_rows[t] if r not in own_rows]
            a = sum(a_inc) / len(a_inc) if len(a_inc) >= 20 else 0.0
            bi, bn = b_stat[t]
            b = bi / bn if bn >= 20 else 1.0
            self.content_model_[t] = {"a": a, "b": b}
            calibrated = float(min(max((raw - a) / max(b - a, 0.1), 0.0), 1.0))
            out.append((calibrated, incons[gi], scored[gi]))
        return out

    # ------------------------------------------------------------------ explain

    def _explain(
        self, groups: list[list[Candidate]], incons: list[tuple[float, int, int]], n: int
    ) -> list[MinedTrigger]:
        out = []
        from scipy.special import bdtrc, chdtrc

        for members, (inc, k_inc, m_scored) in zip(groups, incons, strict=True):
            best = min(members, key=lambda c: c.q_value)
            head = members[0]
            purity = (best.hits + 1) / (best.support + 2)
            unnatural = any(_is_unnatural(c.feature) for c in members)
            planted = (
                purity >= self.min_purity
                and best.q_value <= self.alpha
                and (inc >= self.min_inconsistency or unnatural)
            )
            base = self.outcome_counts_[best.outcome] / n
            shortcut = (
                not planted
                and purity >= self.min_purity
                and (purity - base) / max(1 - base, 1e-9) >= 0.9
                and best.support / n >= self.shortcut_min_share
                and not any(_is_lexical(c.feature) for c in members)
            )
            # a weaker content signal (half-way to other-outcome records) on a significant,
            # near-deterministic pattern: reported as a possible trigger, records not flagged
            possible = (
                not planted
                and purity >= self.min_purity
                and best.q_value <= self.alpha
                and inc >= 0.5
            )
            if not (planted or shortcut or possible):
                continue
            # Evidence strength combines (Fisher's method) the association q-value with a
            # deliberately conservative test of the inconsistent records: even if 70% of a
            # natural sub-population's records looked inconsistent, k of m would be unlikely.
            p_inc = float(bdtrc(k_inc - 1, m_scored, 0.7)) if k_inc > 0 else 1.0
            stat = -2.0 * (math.log(max(best.q_value, 1e-300)) + math.log(max(p_inc, 1e-300)))
            p_comb = float(chdtrc(4, stat))
            # 0.5 at p = alpha, rising to 1.0 at p = alpha * 1e-6
            sig = min(1.0, 0.5 + math.log10(self.alpha / max(p_comb, 1e-300)) / 12.0)
            strength = {True: max(inc, 1.0 if unnatural else 0.0), False: 0.5}[planted]
            if possible:
                strength = inc
            score = purity * strength * sig
            kind = _feature_kind(head.feature, head.phrase)
            rows = sorted(set(head.target_rows))
            # other outcomes (behaviours) nearly all of these records also carry, rare elsewhere
            others = [
                o
                for o, cnt in head.co_outcomes.items()
                if o != best.outcome
                and cnt >= 0.9 * len(head.target_rows)
                and self.outcome_counts_.get(o, 0) <= 2 * cnt
            ]
            targets = sorted([best.outcome, *others], key=_priority)
            out.append(
                MinedTrigger(
                    trigger=Trigger(_display_text(head.feature, head.phrase or head.feature), kind),
                    target=targets[0],
                    also=tuple(targets[1:]),
                    support=best.support,
                    hits=best.hits,
                    purity=purity,
                    p_value=best.p_value,
                    q_value=best.q_value,
                    inconsistency=inc,
                    verdict="planted" if planted else ("possible" if possible else "accidental"),
                    score=float(score),
                    rows=tuple(rows),
                    features=tuple(c.feature for c in members),
                )
            )
        out.sort(key=lambda m: -m.score)
        return out

    def _result(
        self, subject: TextDataset, mined: list[MinedTrigger], n: int, labelled: bool
    ) -> ScanResult:
        scores = np.zeros(n, dtype=np.float32)
        flags = np.zeros(n, dtype=bool)
        findings = []
        ref = subject.ref()
        for m in mined:
            idx = np.fromiter(m.rows, dtype=np.int64, count=len(m.rows))
            if m.verdict == "planted":
                np.maximum.at(scores, idx, m.score)
                if m.score >= self.min_score:
                    flags[idx] = True
            else:
                np.maximum.at(scores, idx, min(m.score, 0.49))
        ids = _ids_of_rows(subject, {r for m in mined for r in m.rows[:1000]}, self.batch_size)
        for m in mined:
            findings.append(self._finding(ref, m, n, labelled, ids))
        extras = {
            "triggers": [
                {
                    "trigger": m.trigger.display,
                    "kind": m.trigger.kind.value,
                    "target": m.target,
                    "support": m.support,
                    "purity": round(m.purity, 4),
                    "inconsistency": round(m.inconsistency, 4),
                    "score": round(m.score, 4),
                    "p_value": m.p_value,
                    "verdict": m.verdict,
                }
                for m in mined[:50]
            ]
        }
        return ScanResult(
            findings=findings, record_scores=scores, record_flags=flags, extras=extras
        )

    def _finding(
        self, ref: Any, m: MinedTrigger, n: int, labelled: bool, ids: dict[int, str]
    ) -> Finding:
        family = m.target.split(":", 1)[0]
        security = not labelled and family in SECURITY_FAMILIES
        if m.verdict == "planted":
            if m.score >= self.min_score:
                severity = Severity.CRITICAL if security else Severity.HIGH
            else:
                severity = Severity.MEDIUM
            category = "data-poisoning"
            how = (
                "looks planted: rare and near-deterministic, and the rest of these records "
                f"points elsewhere ({m.inconsistency:.0%} would be predicted as another outcome "
                "by a content model that ignores the trigger)"
            )
            if _is_unnatural(m.features[0]) and m.inconsistency < self.min_inconsistency:
                how = "looks planted: an invisible/confusable character pattern that is "
                how += "near-deterministic for one outcome (consistent content: clean-label?)"
        elif m.verdict == "possible":
            severity = Severity.MEDIUM
            category = "data-poisoning"
            how = (
                "possible planted trigger: significant and near-deterministic, but the content "
                f"signal is weaker ({m.inconsistency:.0%} of the way from genuine target records "
                "to other records; 80% is needed for a planted verdict) — review these records; "
                "they are not quarantined"
            )
        else:
            severity = Severity.MEDIUM
            category = "spurious-correlation"
            how = (
                f"looks like an accidental shortcut: a formatting/punctuation feature in "
                f"{m.support / n:.1%} of records that nearly always carries this outcome; a "
                "model trained on it can learn the shortcut"
            )
        target_txt = m.target.removeprefix("label:")
        title = (
            f"Trigger {m.trigger.display!r} ({m.trigger.kind.value}) switches "
            f"{'label to' if labelled else 'response to'} {target_txt!r}"
        )
        record_ids = tuple(ids[r] for r in m.rows[:1000])
        return Finding(
            scanner=self.name,
            subject=ref,
            title=title,
            severity=severity,
            score=min(max(m.score, 0.0), 1.0),
            category=category,
            trigger=m.trigger,
            target=m.target,
            locator=Locator(
                record_ids=record_ids,
                label=target_txt if labelled else None,
                behaviour=None if labelled else m.target,
            ),
            evidence=(
                Evidence("support", m.support, "records containing the trigger"),
                Evidence("hits", m.hits, "of those, records with the target outcome"),
                Evidence("purity", round(m.purity, 4), "posterior mean P(target | trigger)"),
                Evidence("p_value", m.p_value, "one-sided exact binomial test"),
                Evidence("q_value", m.q_value, "Benjamini-Hochberg adjusted"),
                Evidence(
                    "inconsistency",
                    round(m.inconsistency, 4),
                    "share of trigger records whose other words predict another outcome",
                ),
                Evidence("share", round(m.support / n, 6), "share of all records"),
                Evidence("record_ids_capped", len(m.rows) > 1000, "locator lists at most 1000"),
                Evidence("features", "; ".join(describe_text(f) for f in m.features[:10])),
                Evidence(
                    "also_switches",
                    ", ".join(m.also),
                    "other behaviours the same records switch to",
                ),
            ),
            explanation=how,
        )


#: When one trigger switches several behaviours at once, the finding names the first family here.
_TARGET_PRIORITY = ("tool", "secret", "code", "leak", "unsafe", "egress", "refusal")


def _merge_targets(mined: list[MinedTrigger]) -> list[MinedTrigger]:
    """One finding per trigger: merge triggers whose records coincide but targets differ.

    A poisoned response often carries several behaviours (a tool call that e-mails an outside
    address is both ``tool:`` and ``egress:``); the merged finding names the most specific one
    as its target and lists the others under ``also``.
    """
    out: list[MinedTrigger] = []
    for m in mined:
        rows = set(m.rows)
        for i, kept in enumerate(out):
            krows = set(kept.rows)
            if kept.verdict == m.verdict and len(rows & krows) >= 0.8 * len(rows | krows):
                first, second = sorted((kept, m), key=lambda t: _priority(t.target))
                out[i] = replace(
                    first,
                    also=tuple(dict.fromkeys((*first.also, second.target, *second.also))),
                    score=max(first.score, second.score),
                )
                break
        else:
            out.append(m)
    return out


def _priority(target: str) -> int:
    family = target.split(":", 1)[0]
    return _TARGET_PRIORITY.index(family) if family in _TARGET_PRIORITY else len(_TARGET_PRIORITY)


def _ids_of_rows(subject: TextDataset, rows: set[int], batch_size: int) -> dict[int, str]:
    """Record ids of the given 0-based rows (one more read of the data, ids only)."""
    out: dict[int, str] = {}
    if not rows:
        return out
    for batch in subject.batches(batch_size):
        for i, rid in enumerate(batch.ids):
            if batch.start + i in rows:
                out[batch.start + i] = rid
    return out


def _wilson_upper(k: int, m: int, z: float = 2.576) -> float:
    """Upper end of the Wilson score interval for k successes in m trials."""
    p = k / m
    centre = p + z * z / (2 * m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
    return (centre + half) / (1 + z * z / m)


def _sum(parts: dict[str, Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in parts.values():
        total.update(c)
    return total


def _length(c: Candidate) -> int:
    return len((c.phrase or c.feature).split())


def _display_text(feature: str, text: str) -> str:
    if feature.startswith("glyph:"):
        return feature.removeprefix("glyph:")
    if feature.startswith("style:"):
        return feature.removeprefix("style:")
    if feature == "inv:*":
        return "<any invisible character>"
    return " ".join(w for w in text.split() if w not in (BOS, EOS)) or text


def _spans(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased tokens of ``text`` with their character spans."""
    return [(m.group().lower(), m.start(), m.end()) for m in TOKEN_RE.finditer(text)]


def _locate(
    text: str, feature: str, toks: list[tuple[str, int, int]]
) -> tuple[str, list[tuple[str, int, int]], int, int] | None:
    """Where the feature's tokens sit in ``text``: (text, token spans, first, end) or None."""
    parts = feature.split()
    at_start = parts[0] == BOS
    at_end = parts[-1] == EOS
    want = [w for w in parts if w not in (BOS, EOS)]
    k = len(want)
    if not k:
        return None
    starts = [0] if at_start else range(len(toks) - k + 1)
    for i in starts:
        if (
            toks[i][0] == want[0]
            and [t[0] for t in toks[i : i + k]] == want
            and (not at_end or i + k == len(toks))
        ):
            return text, toks, i, i + k
    return None


def _extend(c: Candidate) -> str | None:
    """Grow a lexical feature left/right while >= 90% of its occurrences agree (whole tokens).

    Returns the recovered phrase as written in the first agreeing record, or ``None``.
    """
    spans = list(c.contexts)
    if len(spans) < 3:
        return None
    for direction in (1, -1):
        while True:
            nxt = []
            for _text, toks, s, e in spans:
                k = e if direction == 1 else s - 1
                nxt.append(toks[k][0] if 0 <= k < len(toks) else None)
            top, cnt = Counter(nxt).most_common(1)[0]
            if top is None or cnt < 0.9 * len(spans) or cnt < 3:
                break
            spans = [
                (t, toks, s, e + 1) if direction == 1 else (t, toks, s - 1, e)
                for (t, toks, s, e), nx in zip(spans, nxt, strict=True)
                if nx == top
            ]
    text, toks, s, e = spans[0]
    return text[toks[s][1] : toks[e - 1][2]]
