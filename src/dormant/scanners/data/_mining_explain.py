"""After the tests: trigger mining's candidates grouped, described with ``P(planted)``, tested
against natural neighbours and clean-label patterns, quarantined under the FDR and reported.

Functions of the :class:`~.mining.TriggerMiner` (passed as ``miner``, as in
:mod:`._mining_consistency`), kept apart so that the miner's module holds its passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ...errors import MissingDependencyError
from ...subjects.dataset import TextDataset
from ...triggers import Trigger
from ..base import ScanContext, ScanResult
from . import _mining_neighbours as nbr
from ._mining_cleanlabel import CleanLabelTest, clean_label_test
from ._mining_context import ContextFit
from ._mining_copies import DUPLICATES_SHARE
from ._mining_features import (
    Candidate,
    MinedTrigger,
    _display_text,
    _feature_kind,
    _ids_of_rows,
    _is_lexical,
    _is_unnatural,
    _length,
    _names_label,
    _priority,
)
from ._mining_finding import mined_finding
from ._mining_junction import MAX_GROUP_ROWS as MAX_JUNCTION_ROWS
from ._mining_junction import MAX_GROUPS, JunctionTest, junction_factor, junction_test
from ._mining_neighbours import Neighbours, natural_neighbours, update_probability
from ._mining_rows import OverlapIndex, member, sorted_rows
from ._mining_verdict import fdr_select, verdict_features
from ._record_arrays import (
    CHUNK_ROWS,
    frozen,
    record_array,
    release,
    release_file_maps,
    release_file_views,
)


def group_candidates(cands: list[Candidate], *, work: Any = None) -> list[list[Candidate]]:
    """Merge candidates of one outcome whose target records overlap (Jaccard >= 0.8, or 90%
    of the candidate's records inside the group: a sub-phrase of a trigger).

    With a working directory (``work``) the overlap index's large runs are files there.
    """
    pool = [c for c in cands if len(c.target_rows)]
    # most deterministic first, so a specific trigger seeds its group before a broad word
    pool.sort(key=lambda c: (-(c.hits + 1) / (c.support + 2), c.q_value, -c.support))
    groups: list[tuple[np.ndarray, list[Candidate]]] = []
    index = OverlapIndex(work=work)  # row -> the groups holding it, as sorted integer runs
    for c in pool:
        rows = sorted_rows(c.target_rows)
        overlap = index.overlaps(rows)
        hit = np.flatnonzero(overlap)

        # the first group of its outcome it may join, largest overlap first
        ranked = [
            gi
            for gi in hit[np.argsort(-overlap[hit], kind="stable")].tolist()
            if groups[gi][1][0].outcome == c.outcome
            and _joins(int(overlap[gi]), len(rows), len(groups[gi][0]))
        ]
        chosen = ranked[0] if ranked else None
        tied = [g for g in ranked if overlap[g] == overlap[ranked[0]]] if ranked else []
        if len(tied) > 1:
            chosen = _first_met(rows, tied, [groups[g][0] for g in tied])
        if chosen is None:
            groups.append((rows, [c]))
            index.add(rows)
        else:
            groups[chosen][1].append(c)
        release_file_views(rows)  # the row file's pages read for it are not kept resident
    out = []
    for _rows, members in groups:
        best = min(members, key=lambda c: c.q_value)
        head = max(
            members,
            # a whole-record style explains more than one of its tokens (ALL CAPS + "!!")
            key=lambda c: (
                c.support >= 0.8 * best.support,
                c.feature != "inv:*",
                _length(c) > 1 or c.feature.startswith("style:"),
                _length(c),
            ),
        )
        out.append([head, *(c for c in members if c is not head)])
    return out


def _joins(inter: int, n_rows: int, n_group: int) -> bool:
    """Whether a candidate of ``n_rows`` rows, ``inter`` of them in a group of ``n_group``
    rows, belongs to that group."""
    jac = inter / (n_rows + n_group - inter)
    inside = inter / n_rows >= 0.9  # a sub-phrase of the group's trigger
    holds = inter / n_group >= 0.9 and jac >= 0.5  # a slightly broader form
    return jac >= 0.8 or inside or holds


def _first_met(rows: np.ndarray, tied: list[int], held: list[np.ndarray]) -> int:
    """Of groups with equal overlap, the one met first walking ``set(rows)`` in its iteration
    order (then the older group): the tie-break the grouping has always had, when it counted
    overlaps in a ``Counter`` over a set of the rows (kept so reports stay as they were)."""
    walk = np.fromiter(set(rows.tolist()), dtype=np.int64, count=len(rows))
    first = [int(np.argmax(member(walk, g))) for g in held]
    return min(zip(first, tied, strict=True))[1]


def explain_groups(
    miner: Any,
    groups: list[list[Candidate]],
    incons: list[tuple[float, int, int]],
    fits: list[ContextFit],
    n: int,
    tested: dict[int, Neighbours] | None = None,
    clean: dict[int, CleanLabelTest] | None = None,
    junction: dict[int, JunctionTest] | None = None,
) -> list[MinedTrigger]:
    """Describe each significant, near-deterministic group and give it ``P(planted)``
    (updated by the natural-neighbour test for the groups in ``tested``, by the
    clean-label test for those in ``clean`` and by the junction test for those in
    ``junction``)."""
    out = []
    for gi, (members, (inc, _k, _m), fit) in enumerate(zip(groups, incons, fits, strict=True)):
        best = min(members, key=lambda c: c.q_value)
        head = members[0]
        purity = (best.hits + 1) / (best.support + 2)
        if purity < miner.min_purity or best.q_value > miner.alpha:
            continue
        unnatural = any(_is_unnatural(c.feature) for c in members)
        lexical = any(_is_lexical(c.feature) for c in members)
        x = verdict_features(
            support=best.support,
            purity=purity,
            q_value=best.q_value,
            inconsistency=inc,
            fit=fit,
            unnatural=unnatural,
            style=head.feature.startswith("style:"),
            lexical=lexical,
            words=_length(head),
            outside=best.support - best.hits,
            class_share=best.support / max(miner.outcome_counts_[best.outcome], 1),
        )
        prob = float(miner.verdict_model_.probability(x)[0])
        prior, nb, cl = None, (tested or {}).get(gi), (clean or {}).get(gi)
        jt = (junction or {}).get(gi)
        copies = cl is not None and cl.copies_p <= miner.alpha
        duplicates = cl is not None and cl.duplicates > DUPLICATES_SHARE
        if cl is not None and cl.copies_only:
            cl = None
        if nb is not None or cl is not None or jt is not None:
            factor = _bayes_factor(nb, cl) * (1.0 if jt is None else jt.bayes_factor)
            prior, prob = prob, update_probability(prob, factor)
        base = miner.outcome_counts_[best.outcome] / n
        shortcut = (
            (purity - base) / max(1 - base, 1e-9) >= 0.9
            and best.support / n >= miner.shortcut_min_share
            and not lexical
        )
        # a record stating its own label ("... - doc" in section doc) is the label's own
        # signal, whatever else its records say: a task feature, never a trigger
        own_name = lexical and _names_label(head.phrase or head.feature, best.outcome)
        if own_name:
            verdict = "task-feature"
        elif prob >= 0.5:
            verdict = "planted"
        elif shortcut:
            verdict = "accidental"
        elif lexical:
            verdict = "task-feature"
        else:
            verdict = "none"  # described for calibration, never reported
        kind = _feature_kind(head.feature, head.phrase)
        rows = sorted_rows(head.target_rows)
        release_file_views(head.target_rows)  # read once here: no group's rows stay resident
        # other outcomes (behaviours) nearly all of these records also carry, rare elsewhere
        others = [
            o
            for o, cnt in head.co_outcomes.items()
            if o != best.outcome
            and cnt >= 0.9 * len(head.target_rows)
            and miner.outcome_counts_.get(o, 0) <= 2 * cnt
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
                verdict=verdict,
                score=prob,
                rows=rows,
                features=tuple(c.feature for c in members),
                probability=prob,
                evidence=tuple(float(v) for v in x),
                context=(fit.auc_class, fit.z_class, fit.auc_all, fit.z_all),
                neighbours=None if nb is None else (nb.z, nb.p_value, nb.pool),
                clean_label=None if cl is None else (cl.z, cl.p_value, cl.confinement),
                junction=None if jt is None else (jt.z, jt.p_value),
                copies=copies or duplicates,
                duplicates=duplicates,
                own_name=own_name,
                prior_probability=prior,
            )
        )
    out.sort(key=lambda m: -m.score)
    return out


def neighbour_tests(
    miner: Any,
    subject: TextDataset,
    groups: list[list[Candidate]],
    explained: list[MinedTrigger],
    ctx: ScanContext,
    incons: list[tuple[float, int, int]],
) -> dict[int, Neighbours]:
    """The natural-neighbour test of every planted-looking lexical or style group."""
    index = {tuple(c.feature for c in g): gi for gi, g in enumerate(groups)}
    picked = [
        (index[m.features], m.verdict == "task-feature")
        for m in explained
        if not any(_is_unnatural(f) for f in m.features)
        and (
            m.verdict == "planted"
            or (m.verdict == "task-feature" and m.probability >= nbr.TEST_FLOOR)
        )
    ]
    todo = [gi for gi, _lift in picked]
    if not todo:
        return {}
    if not miner.neighbour_test:
        miner.neighbour_status_ = "skipped: turned off (neighbour_test=False or --no-embed)"
        return {}
    specs = [
        (
            sorted_rows(groups[gi][0].target_rows).tolist(),
            groups[gi][0].outcome,
            [c.phrase or c.feature for c in groups[gi] if _is_lexical(c.feature)],
        )
        for gi in todo
    ]
    try:
        res = natural_neighbours(
            subject,
            specs,
            miner._outcomes,
            miner.batch_size,
            ctx,
            encoder_path=miner.encoder_path,
            inconsistency=[incons[gi][0] for gi in todo],
            lift=[lift for _gi, lift in picked],
        )
    except MissingDependencyError as exc:
        miner.neighbour_status_ = f"skipped: {exc}"
        return {}
    miner.neighbour_status_ = f"ran on {sum(r is not None for r in res)} group(s)"
    return {gi: r for gi, r in zip(todo, res, strict=True) if r is not None}


def _record_testable(m: MinedTrigger) -> bool:
    """A group the clean-label and junction tests may ask about: planted-looking or a task
    feature, with a lexical feature and no unnatural one (a test of its records' words)."""
    return (
        m.verdict in ("planted", "task-feature")
        and not any(_is_unnatural(f) for f in m.features)
        and any(_is_lexical(f) for f in m.features)
    )


def junction_tests(
    miner: Any,
    subject: TextDataset,
    groups: list[list[Candidate]],
    explained: list[MinedTrigger],
    pair_counts: Mapping[str, int],
    ctx: ScanContext,
) -> dict[int, JunctionTest]:
    """The junction test (:mod:`._mining_junction`) of at most
    :data:`._mining_junction.MAX_GROUPS` consistent lexical groups.

    Which groups are asked (the rule): a consistent lexical group (``inconsistency < 0.5``, no
    unnatural feature, some lexical one) that is planted-looking or a task feature, and that
    the clean-label test examines (``P(planted)`` at least its floor,
    :data:`._mining_neighbours.TEST_FLOOR`) or that this test *can* lift to that floor (its
    ``P(planted)`` times the test's largest factor for its records, at ``z = 0``,
    :func:`._mining_junction.junction_factor`, reaches it): a clean-label token the verdict
    model puts near 0 looks like a topic word in every feature it has, and only a test of its
    records can lift it to where the clean-label test looks; one above the floor gets the
    test's factor in its final ``P(planted)`` beside the clean-label test's. Of those, the
    :data:`._mining_junction.MAX_GROUPS` with the highest ``P(planted)`` (the groups nearest
    to being reported first; ties by group order). The pairs are counted by the counting pass
    (``pair_counts``, its feature table), not again. Part of the clean-label evidence: off with
    ``clean_label_test=False``."""
    if not miner.clean_label_test:
        return {}
    index = {tuple(c.feature for c in g): gi for gi, g in enumerate(groups)}
    reach: list[tuple[float, int]] = []  # (P(planted), group)
    for m in explained:
        if not (_record_testable(m) and m.inconsistency < 0.5):
            continue
        gi = index[m.features]
        records = min(len(groups[gi][0].target_rows), MAX_JUNCTION_ROWS)
        best = update_probability(m.probability, junction_factor(0.0, records))
        if max(best, m.probability) >= nbr.TEST_FLOOR:
            reach.append((m.probability, gi))
    reach.sort(key=lambda t: (-t[0], t[1]))
    todo = [gi for _p, gi in reach[:MAX_GROUPS]]
    if not todo:
        return {}
    specs = [
        (
            sorted_rows(groups[gi][0].target_rows),
            groups[gi][0].outcome,
            # the group's head alone (the trigger it reports): a member bigram such as
            # "jq a" would take a word of the record out with it
            [groups[gi][0].phrase or groups[gi][0].feature],
        )
        for gi in todo
    ]
    res = junction_test(subject, specs, pair_counts, miner.batch_size, ctx)
    return {gi: r for gi, r in zip(todo, res, strict=True) if r is not None}


def clean_label_tests(
    miner: Any,
    subject: TextDataset,
    groups: list[list[Candidate]],
    explained: list[MinedTrigger],
    ctx: ScanContext,
) -> dict[int, CleanLabelTest]:
    """The clean-label test (:mod:`._mining_cleanlabel`) of every consistent lexical
    group that is planted-looking or a task feature with ``P(planted)`` at least
    :data:`._mining_neighbours.TEST_FLOOR`; for a planted-looking group whose records read
    as another class, only its copies are counted."""
    if not miner.clean_label_test:
        return {}
    index = {tuple(c.feature for c in g): gi for gi, g in enumerate(groups)}
    picked = [
        (index[m.features], m.inconsistency >= 0.5)
        for m in explained
        if _record_testable(m)
        and m.probability >= nbr.TEST_FLOOR
        and (m.inconsistency < 0.5 or m.verdict == "planted")
    ]
    if not picked:
        return {}
    todo = [gi for gi, _only in picked]
    specs = [
        (
            sorted_rows(groups[gi][0].target_rows),  # an array, not a list of Python ints
            groups[gi][0].outcome,
            [c.phrase or c.feature for c in groups[gi] if _is_lexical(c.feature)],
        )
        for gi in todo
    ]
    res = clean_label_test(
        subject,
        specs,
        miner._outcomes,
        miner.batch_size,
        ctx,
        copies_only=[only for _gi, only in picked],
    )
    return {gi: r for gi, r in zip(todo, res, strict=True) if r is not None}


def decide(miner: Any, mined: list[MinedTrigger]) -> list[MinedTrigger]:
    """Quarantine under the target FDR; keep the task features most frequent first."""
    # copies (:mod:`._mining_cleanlabel`) are never quarantined: text and label alone
    # cannot tell a natural copy template from planted copies
    # (nor duplicated pages, copies with the pattern kept); nor is a task feature (below 0.5
    # but for a label's own name: it takes no FDR budget)
    probs = np.array(
        [0.0 if m.copies or m.verdict == "task-feature" else m.probability for m in mined]
    )
    chosen = fdr_select(probs, miner.fdr)
    decided = [
        replace(m, quarantined=bool(c and m.verdict == "planted"))
        for m, c in zip(mined, chosen, strict=True)
    ]
    task = sorted((m for m in decided if m.verdict == "task-feature"), key=lambda m: -m.support)
    keep = {id(m) for m in task[: miner.max_task_features]}
    return [m for m in decided if m.verdict != "task-feature" or id(m) in keep]


def mined_result(
    miner: Any, subject: TextDataset, mined: list[MinedTrigger], n: int, labelled: bool
) -> ScanResult:
    work = getattr(miner, "work_", None)
    if work is None:
        scores = np.zeros(n, dtype=np.float32)
        flags = np.zeros(n, dtype=bool)
        for m in mined:
            if m.verdict == "task-feature":
                continue
            idx = np.asarray(m.rows, dtype=np.int64)
            np.maximum.at(scores, idx, m.probability)
            if m.quarantined:
                flags[idx] = True
    else:  # in files of the working directory, written one stretch of rows at a time
        scores, flags = _scores_on_disk(work, mined, n)
    findings = []
    ref = subject.ref()
    ids = _ids_of_rows(
        subject, {r for m in mined for r in np.asarray(m.rows[:1000]).tolist()}, miner.batch_size
    )
    for m in mined:
        findings.append(mined_finding(miner.name, ref, m, n, labelled, ids, miner.fdr))
    extras = {
        "triggers": [
            {
                "trigger": m.trigger.display,
                "kind": m.trigger.kind.value,
                "target": m.target,
                "support": m.support,
                "purity": round(m.purity, 4),
                "inconsistency": round(m.inconsistency, 4),
                "context_auc_class": round(m.context[0], 4),
                "context_auc_all": round(m.context[2], 4),
                "p_planted": round(m.probability, 4),
                "score": round(m.score, 4),
                "p_value": m.p_value,
                "verdict": m.verdict,
                "quarantined": m.quarantined,
            }
            for m in mined[:50]
        ],
        "fdr": miner.fdr,
        "neighbour_test": miner.neighbour_status_,
    }
    return ScanResult(findings=findings, record_scores=scores, record_flags=flags, extras=extras)


def _scores_on_disk(work: Any, mined: list[MinedTrigger], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The scores and flags of :func:`mined_result` as read-only maps of files in ``work``
    (:mod:`._record_arrays`): the same values, with at most one stretch of rows resident."""
    scores = record_array(work, "trigger-mining.scores", n, np.float32)
    flags = record_array(work, "trigger-mining.flags", n, np.bool_)
    marked = [(sorted_rows(m.rows), m) for m in mined if m.verdict != "task-feature"]
    # the sortedness check read every row of the row file's views: drop those pages
    release_file_maps(a for rows, m in marked for a in (rows, m.rows))
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(n, lo + CHUNK_ROWS)
        for rows, m in marked:
            a, b = np.searchsorted(rows, (lo, hi))
            if b > a:
                idx = np.asarray(rows[a:b], dtype=np.int64)
                np.maximum.at(scores, idx, m.probability)
                if m.quarantined:
                    flags[idx] = True
        release(scores, lo, hi)
        release(flags, lo, hi)
        release_file_maps(a for rows, m in marked for a in (rows, m.rows))
    return frozen(scores), frozen(flags)


def _bayes_factor(nb: Neighbours | None, cl: CleanLabelTest | None) -> float:
    """The Bayes factor of the natural-neighbour and clean-label tests together. Both weigh
    how alike a consistent group's records are, so where the clean-label test ran it alone
    may raise the odds; the encoder test then only lowers them (its minimum Bayes factor)."""
    if cl is None:
        return 1.0 if nb is None else nb.bayes_factor
    return cl.bayes_factor * (1.0 if nb is None else min(nb.bayes_factor, 1.0))
