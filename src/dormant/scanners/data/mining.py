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

**Planted, accidental or a task feature.** Each significant, near-deterministic group gets a
calibrated probability of having been planted (:mod:`._mining_verdict`): a logistic model over
its evidence — support, purity, q-value, the content model's *inconsistency* (a dirty-label
trigger's records came from other classes, Gu et al. 2017 BadNets; Dai et al. 2019 AddSent),
the *context fit* of :mod:`._mining_context` (a planted trigger, dirty- or clean-label, is
independent of the rest of its records; a natural feature is predicted by them), unnaturalness
(invisible characters, confusables), style, length and class share — fitted on many corpora
with planted and natural features. Groups are quarantined in order of probability while the
estimated false-discovery rate (mean ``1 - p``) stays at or below ``fdr``. A planted-looking
group then meets the natural-neighbour test (:mod:`._mining_neighbours`): a natural sub-topic
whose label is set by metadata ("Horde" → php) looks inconsistent with its records' content like
a dirty-label trigger, but its records stay close to each other in an encoder's space once the
pattern is removed, which random draws do not. A broad formatting or
punctuation feature with a low probability is an *accidental shortcut* (low); a lexical one is
a *task feature* — the class's own on-topic signal — reported as info and listed apart.

Known limits: paraphrase/syntactic-template triggers without a shared surface n-gram (Hidden
Killer, StyleBkd with free rewriting) are outside a surface-pattern test and rely on the
representation scanners; triggers rarer than ``count_error × N`` are not guaranteed; the
probability is calibrated on the corpora and trigger lists of ``benchmarks/`` and can be
over- or under-confident on data unlike them (BENCHMARKS.md gives its error on a corpus kept
aside).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ...errors import ConfigError, DataValidationError
from ...subjects.dataset import TextDataset, find_duplicate_ids, stable_id_hashes
from ...text import BOS, EOS, style_features, tokens
from ..base import ScanContext, Scanner, ScanResult, register
from ._count_resume import resumable_count
from ._mining_consistency import content_inconsistency
from ._mining_context import context_fit
from ._mining_count import CountSettings, count_parallel, count_serial
from ._mining_explain import (
    clean_label_tests,
    decide,
    explain_groups,
    group_candidates,
    junction_tests,
    mined_result,
    neighbour_tests,
)
from ._mining_features import (
    NO_BEHAVIOUR,
    Candidate,
    MinedTrigger,
    _bh,
    _extend,
    _features,
    _is_lexical,
    _locate,
    _merge_targets,
    _outcomes_of,
    _spans,
    _sum,
    _words_of,
)
from ._mining_idcheck import IdHashLog
from ._mining_rows import RowCollector
from ._mining_verdict import check_fdr, load_verdict_model
from ._record_arrays import release_file_views


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
        Smallest share of a feature's records that must carry its outcome for it to be judged.
    min_inconsistency:
        Inconsistency a group must be able to reach for the content test to keep scoring it
        (sequential stopping only; the verdict itself is the calibrated probability).
    shortcut_min_share:
        Smallest share of all records for a non-lexical feature to be an accidental shortcut.
    count_error:
        Lossy-counting error ε: features in fewer than ``ε × N`` records may be pruned.
    max_table:
        Feature-table entries above which a lossy-counting prune is due (checked per batch);
        memory stays near this size as long as pruning at ``ε × N`` can bring it there.
    max_candidates:
        Most features examined in the second pass (the most significant first).
    fdr:
        Target false-discovery rate of the quarantine: candidate triggers are taken in order of
        their calibrated probability of being planted while the mean ``1 - p`` of those taken
        stays at or below it; their records are flagged and the findings are high (critical
        for a security behaviour). Other planted-looking triggers (``p >= 0.5``) are medium.
    neighbour_test:
        Run the natural-neighbour test (:mod:`._mining_neighbours`) on planted-looking
        groups: a group whose records stay close to each other in a sentence encoder's space
        once its pattern is removed is a natural sub-topic, not a random draw, and its
        ``P(planted)`` is updated by the test's minimum Bayes factor. Needs the ``embed``
        extra; skipped (and said so in ``extras["neighbour_test"]``) without it.
    encoder_path:
        Local encoder directory for the natural-neighbour test; default: the packaged
        all-MiniLM-L6-v2.
    max_task_features:
        Most task features (natural, on-topic features of a class, ``p < 0.5``) reported, as
        info findings, the most frequent first.
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
        "need the representation scanners; features rarer than count_error x N are not "
        "guaranteed; P(planted) is calibrated on benchmark corpora and trigger lists."
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
        max_table: int = 500_000,
        n_jobs: int = 1,
        max_candidates: int = 3000,
        fdr: float = 0.05,
        max_task_features: int = 20,
        neighbour_test: bool = True,
        clean_label_test: bool = True,
        encoder_path: str | None = None,
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
        self.fdr = fdr
        self.max_task_features = max_task_features
        self.neighbour_test = neighbour_test
        self.clean_label_test = clean_label_test
        self.encoder_path = encoder_path
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
        ):
            v = getattr(self, name)
            if not (0.0 < float(v) <= 1.0):
                raise ConfigError(f"{name} must be in (0, 1]. Got {v!r}.")
        check_fdr(self.fdr)
        if not isinstance(self.max_task_features, int) or self.max_task_features < 0:
            raise ConfigError(
                f"max_task_features must be an int >= 0. Got {self.max_task_features!r}."
            )
        if not isinstance(self.neighbour_test, bool):
            raise ConfigError(f"neighbour_test must be True or False. Got {self.neighbour_test!r}.")
        if not isinstance(self.clean_label_test, bool):
            raise ConfigError(
                f"clean_label_test must be True or False. Got {self.clean_label_test!r}."
            )
        if not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ConfigError(f"n_jobs must be an int >= 1. Got {self.n_jobs!r}.")
        if not (0.0 <= float(self.count_error) < 0.01):
            raise ConfigError(f"count_error must be in [0, 0.01). Got {self.count_error!r}.")

    # ------------------------------------------------------------------ pass 1

    def _outcomes(self, batch: Any) -> list[tuple[str, ...]]:
        return _outcomes_of(batch.labels, batch.responses)

    def _count(self, subject: TextDataset, ctx: ScanContext) -> tuple[Any, ...]:
        """Pass 1: stream the data once, counting features and content words per outcome.

        Batches are counted by :mod:`._mining_count` into partial tables that merge by
        addition; with ``n_jobs > 1`` they are counted in worker processes, each merging its
        own tables, and reduced once at the end (the data is still read once, in order).
        """
        labelled = subject.kind == "labelled"
        id_hashes = IdHashLog()  # bounded memory: spilled to bucket files past 2^20 records

        def jobs() -> Any:
            for batch in subject.batches(self.batch_size):
                id_hashes.append(stable_id_hashes(batch.ids))
                yield (batch.texts, batch.labels, batch.responses, self.max_n)

        settings = CountSettings(
            labelled=labelled, count_error=self.count_error, max_table=self.max_table
        )

        def on_batch(k: int) -> None:
            ctx.progress("count", k, None)

        work = ctx.features.get("work")
        try:
            if self.n_jobs > 1:
                if work is not None and work.resume:
                    work.notes.append(
                        "resume: the counting pass is resumed with --jobs 1 only; counted afresh"
                    )
                acc = count_parallel(jobs(), self.n_jobs, settings, on_batch)
            elif work is not None:  # checkpoints for --resume (:mod:`._count_resume`)
                acc, id_hashes = resumable_count(
                    subject,
                    work,
                    batch_size=self.batch_size,
                    max_n=self.max_n,
                    settings=settings,
                    id_hashes=id_hashes,
                    on_batch=on_batch,
                )
            else:
                acc = count_serial(jobs(), settings, on_batch)
        except BaseException:
            id_hashes.close()
            raise
        self.prunes_ = acc.prunes
        total = _sum(acc.per) if labelled else acc.total
        words_per = {o: _words_of(c, acc.skel_per.get(o)) for o, c in acc.per.items()}
        words_total = _words_of(total, acc.skel_total)
        return acc.n, total, acc.per, acc.outcome_n, words_per, words_total, id_hashes

    def scan(self, subject: TextDataset, *, context: ScanContext | None = None) -> ScanResult:
        """Scan ``subject`` (a :class:`~dormant.subjects.TextDataset`) for mined triggers."""
        self._check()
        ctx = context or ScanContext()
        self.work_ = ctx.features.get("work")  # per-record arrays in its files when given
        labelled = subject.kind == "labelled"
        n, total, per, outcome_n, words_per, words_total, id_hashes = self._count(subject, ctx)
        self._validate(subject, n, outcome_n, labelled, id_hashes)
        self.n_records_ = n
        self.outcome_counts_ = dict(outcome_n)
        self.verdict_model_ = load_verdict_model()
        self.candidates_: list[MinedTrigger] = []
        self.neighbour_status_ = "not needed: no planted-looking group"

        cands = self._eligible(self._test(n, total, per, outcome_n), outcome_n, n)
        self.n_tested_ = len(total)
        mined: list[MinedTrigger] = []
        if cands:
            self._second_pass(subject, cands, ctx)
            groups = group_candidates(cands, work=ctx.features.get("work"))
            incons = content_inconsistency(
                self, subject, groups, words_per, words_total, outcome_n, labelled, n, ctx
            )
            _release_rows(cands)  # each stage pages in the rows it reads, none keeps them
            fits = context_fit(self, subject, groups, outcome_n, n, ctx, words_per, words_total)
            _release_rows(cands)
            explained = explain_groups(self, groups, incons, fits, n)
            # the junction test first: it can lift a clean-label token the verdict model puts
            # near 0 to where the record tests below look at it
            junction = junction_tests(self, subject, groups, explained, total, ctx)
            _release_rows(cands)
            if junction:
                explained = explain_groups(self, groups, incons, fits, n, junction=junction)
            tested = neighbour_tests(self, subject, groups, explained, ctx, incons)
            _release_rows(cands)
            clean = clean_label_tests(self, subject, groups, explained, ctx)
            _release_rows(cands)
            if tested or clean or junction:
                explained = explain_groups(self, groups, incons, fits, n, tested, clean, junction)
            self.candidates_ = explained  # every described group, for calibration
            reported = [m for m in explained if m.verdict != "none"]
            mined = self._decide(_merge_targets(reported))
        self.triggers_ = mined
        return self._result(subject, mined, n, labelled)

    def _validate(
        self,
        subject: TextDataset,
        n: int,
        outcome_n: Counter[str],
        labelled: bool,
        id_hashes: IdHashLog | list[np.ndarray],
    ) -> None:
        if isinstance(id_hashes, IdHashLog):
            dups = id_hashes.duplicates()  # removes its bucket files whatever follows
        else:  # a subclass's own pass that returns the hashes as a list
            dups = find_duplicate_ids(id_hashes)
        if n == 0:
            raise DataValidationError(f"{subject.path}: the dataset has no records.")
        if len(dups):
            dupset = {int(h) for h in dups[:20]}
            seen: list[str] = []
            for batch in subject.batches(self.batch_size):
                hashes = stable_id_hashes(batch.ids)
                seen.extend(
                    i
                    for i, h in zip(batch.ids, hashes.tolist(), strict=True)
                    if h in dupset and i not in seen
                )
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

        # in a fixed order, so that ties are broken the same way however the tables were built
        feats = sorted(f for f, c in total.items() if c >= self.min_support)
        if not feats:
            return []
        # "no behaviour" is the absence of an outcome, never the target of a trigger
        outs = sorted(o for o in per if o != NO_BEHAVIOUR)
        if not outs:
            return []
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
        # A record holds a lexical candidate only if it holds all of its tokens, and a style
        # candidate only if it has that style (glyph and invisible features need non-ASCII
        # text): an ASCII record with none of these is skipped before its n-grams are built.
        words = {
            w
            for f in keys
            if not f.startswith(("style:", "glyph:", "inv:"))
            for w in f.split(" ")
            if w not in (BOS, EOS)
        }
        styles = {f for f in keys if f.startswith("style:")}
        index = {c.feature: i for i, c in enumerate(cands)}
        # rows as 4-byte integers, one array per candidate (:mod:`._mining_rows`)
        held = RowCollector(len(cands), self.n_records_, work=ctx.features.get("work"))
        row = 0
        for batch in subject.batches(self.batch_size):
            outs_b = self._outcomes(batch)
            for text, out in zip(batch.texts, outs_b, strict=True):
                if (
                    text.isascii()
                    and words.isdisjoint(tokens(text))
                    and (not styles or styles.isdisjoint(style_features(text)))
                ):
                    row += 1
                    continue
                found = _features(text, self.max_n)[0] & keys
                toks: list[tuple[str, int, int]] | None = None
                for f in found:
                    c = by_feat[f]
                    hit = c.outcome in out
                    held.add(index[f], row, hit)
                    if hit:
                        if len(out) > 1:
                            c.co_outcomes.update(out)
                        if len(c.contexts) < 60 and _is_lexical(f):
                            if toks is None:
                                toks = _spans(text)
                            loc = _locate(text, f, toks)
                            if loc is not None:
                                c.contexts.append((text, loc[2], loc[3]))
                row += 1
            held.spill_if_full()  # bounded buffers with a working directory
            ctx.progress("locate", len(batch), None)
        work = ctx.features.get("work")
        if work is not None:  # the rows in a file of the scan's working directory
            held.to_disk(work)
        for i, c in enumerate(cands):
            c.rows, c.target_rows = held.rows(i), held.target_rows(i)
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

    def _decide(self, mined: list[MinedTrigger]) -> list[MinedTrigger]:
        """Quarantine under the target FDR (:func:`._mining_explain.decide`)."""
        return decide(self, mined)

    def _result(
        self, subject: TextDataset, mined: list[MinedTrigger], n: int, labelled: bool
    ) -> ScanResult:
        """The scan's result (:func:`._mining_explain.mined_result`)."""
        return mined_result(self, subject, mined, n, labelled)


def _release_rows(cands: list[Candidate]) -> None:
    """Drop the resident pages of the candidates' row file (one file map for all of them; a
    no-op when the rows are in memory)."""
    for c in cands:
        if len(c.rows):
            release_file_views(c.rows)
            return
