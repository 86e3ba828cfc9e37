"""The Finding of one mined trigger: severity from its calibrated probability and the FDR."""

from __future__ import annotations

from typing import Any

from ...findings import Evidence, Finding, Locator, Severity
from ...triggers import describe_text
from ._mining_features import SECURITY_FAMILIES, MinedTrigger, _is_unnatural

#: Verdict of a natural, on-topic feature: shown apart from the findings (info).
TASK_FEATURE = "task-feature"


def mined_finding(
    scanner: str,
    ref: Any,
    m: MinedTrigger,
    n: int,
    labelled: bool,
    ids: dict[int, str],
    fdr: float,
) -> Finding:
    """A :class:`~dormant.findings.Finding` for ``m``.

    Severity: quarantined under the FDR → high (critical when the target is a security
    behaviour of instruction data); planted-looking (``p >= 0.5``) but not selected → medium;
    an accidental formatting shortcut, or duplicated records (most of the group one text
    filed several times; not for a security behaviour, which stays medium) → low; a task
    feature → info (category ``spurious-correlation``, evidence ``verdict = task-feature``;
    writers list them apart).
    """
    family = m.target.split(":", 1)[0]
    security = not labelled and family in SECURITY_FAMILIES
    p = m.probability
    hygiene = m.verdict == "planted" and m.duplicates and not security
    if hygiene:
        # one page filed many times, the pattern copied with it: a data-hygiene fact, not a
        # string put into records (an inserted one leaves each poisoned record its own text).
        # Not for a security behaviour: a response that sends data out is harmful however
        # often it is repeated (it stays medium, capped as copies)
        severity = Severity.LOW
        category = "spurious-correlation"
        how = (
            f"duplicated records (P planted = {p:.2f} if its records were independent): most "
            "of its records are word for word another of its records, the pattern included — "
            "one or a few texts filed several times, so the pattern's link to this outcome is "
            "repetition, not a trigger; not quarantined; deduplicate before training"
        )
    elif m.verdict == "planted":
        category = "data-poisoning"
        if m.quarantined:
            severity = Severity.CRITICAL if security else Severity.HIGH
            tail = f"quarantined: selected at a target false-discovery rate of {fdr:g}"
        elif m.copies:
            severity = Severity.MEDIUM
            tail = "not quarantined: its records are copies of other records (see below)"
        else:
            severity = Severity.MEDIUM
            tail = (
                f"not quarantined: taking it would push the estimated false-discovery rate "
                f"above {fdr:g}; review these records"
            )
        if _is_unnatural(m.features[0]):
            why = "an invisible/confusable character pattern near-deterministic for one outcome"
        elif m.inconsistency >= 0.5:
            why = (
                f"rare, near-deterministic, and the rest of its records points elsewhere "
                f"({m.inconsistency:.0%} of the way to other outcomes for a content model that "
                "ignores the trigger)"
            )
        else:
            why = (
                "near-deterministic, yet the rest of its records does not predict it (context "
                f"AUC {m.context[0]:.2f} within its class, 0.5 = independent): inserted into "
                "records chosen at random — clean-label poisoning?"
            )
        how = f"looks planted (P = {p:.2f}): {why}; {tail}"
    elif m.verdict == "accidental":
        # a source's formatting habit, not a pattern put there: a data-quality note (low), so
        # a clean dataset does not come back with medium findings for its punctuation
        severity = Severity.LOW
        category = "spurious-correlation"
        how = (
            f"looks like an accidental shortcut (P planted = {p:.2f}): a formatting/punctuation "
            f"feature in {m.support / n:.1%} of records that nearly always carries this "
            "outcome; a model trained on it can learn the shortcut"
        )
    else:
        severity = Severity.INFO
        category = "spurious-correlation"
        how = (
            (
                f"a task feature (P planted = {p:.2f} from its other evidence): its words are "
                "the label's own name — records that state their label carry the task's own "
                "signal, not a trigger"
            )
            if m.own_name
            else (
                f"a task feature (P planted = {p:.2f}): a natural, on-topic pattern of this "
                "class that the rest of its records predicts — the task's own signal, not a "
                "trigger"
            )
        )
    if m.neighbours is not None and m.prior_probability is not None:
        z, _pv, pool = m.neighbours
        how += (
            f" (natural-neighbour test: with the pattern removed its records are "
            f"{'more' if z > 0 else 'no more'} alike than random draws from {pool}, z = {z:.1f}; "
            f"P planted {m.prior_probability:.2f} before it)"
        )
    if m.clean_label is not None:
        zc, _pc, conf = m.clean_label
        how += (
            f" (clean-label test: its records' nearest records of the class hold it "
            f"{'more often than' if zc > 1 else 'as often as'} a random draw would, z = {zc:.1f}; "
            f"{conf:.0%} of the records holding its rarest word carry this outcome)"
        )
    if m.junction is not None:
        zj = m.junction[0]
        how += (
            f" (junction test: taken out, it leaves its sentences "
            f"{'as whole as a random word boundary would' if zj > -2 else 'broken'}, "
            f"z = {zj:.1f}; an inserted token leaves them whole)"
        )
    if m.copies and not hygiene:
        how += (
            "; capped at medium: with the pattern removed its records are copies of other "
            "records far more often than its class's — a copy template (a metadata variant "
            "such as Debian's -prof packages) or planted copies, which text and label alone "
            "cannot tell apart; check where these records came from"
        )
    target_txt = m.target.removeprefix("label:")
    verb = "label to" if labelled else "response to"
    if m.verdict == TASK_FEATURE:
        title = f"Task feature {m.trigger.display!r} of {target_txt!r}"
    elif hygiene:
        what = "labelled" if labelled else "with the response"
        title = f"Duplicated records holding {m.trigger.display!r} all {what} {target_txt!r}"
    else:
        title = (
            f"Trigger {m.trigger.display!r} ({m.trigger.kind.value}) switches {verb} {target_txt!r}"
        )
    record_ids = tuple(ids[r] for r in map(int, m.rows[:1000]) if r in ids)
    return Finding(
        scanner=scanner,
        subject=ref,
        title=title,
        severity=severity,
        score=min(max(p, 0.0), 1.0),
        category=category,
        trigger=m.trigger,
        target=m.target,
        locator=Locator(
            record_ids=record_ids,
            label=target_txt if labelled else None,
            behaviour=None if labelled else m.target,
        ),
        evidence=(
            Evidence("p_planted", round(p, 4), "calibrated probability that it was planted"),
            Evidence("verdict", m.verdict, "planted, accidental or task-feature"),
            Evidence("quarantined", m.quarantined, f"selected at target FDR {fdr:g}"),
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
            Evidence(
                "context_auc_class",
                round(m.context[0], 4),
                "how well its records' other words predict it within its class (0.5: not)",
            ),
            Evidence(
                "context_auc_all",
                round(m.context[2], 4),
                "the same against records of every outcome",
            ),
            Evidence("share", round(m.support / n, 6), "share of all records"),
            Evidence(
                "duplicates",
                m.duplicates,
                "most of its records are word for word another of its records (pattern kept)",
            ),
            *(
                ()
                if m.neighbours is None
                else (
                    Evidence(
                        "neighbour_z",
                        round(m.neighbours[0], 3),
                        "cohesion of its records (pattern removed) against random draws from "
                        f"{m.neighbours[2]}, in standard deviations (0: a random draw)",
                    ),
                    Evidence(
                        "p_planted_before_neighbours",
                        round(m.prior_probability or 0.0, 4),
                        "P(planted) of the verdict model before the natural-neighbour test",
                    ),
                )
            ),
            *(
                ()
                if m.clean_label is None
                else (
                    Evidence(
                        "clean_label_z",
                        round(m.clean_label[0], 3),
                        "share of its records' nearest class records holding it, against "
                        "random draws of the class, in standard deviations (0: a random draw)",
                    ),
                    Evidence(
                        "clean_label_confinement",
                        round(m.clean_label[2], 4),
                        "share of the records holding its rarest word that carry the target",
                    ),
                    Evidence(
                        "p_planted_before_tests",
                        round(m.prior_probability or 0.0, 4),
                        "P(planted) of the verdict model before the record tests",
                    ),
                )
            ),
            *(
                ()
                if m.junction is None
                else (
                    Evidence(
                        "junction_z",
                        round(m.junction[0], 3),
                        "how common the token pair left where the pattern is taken out is, "
                        "against a random word boundary of its records (0: an insertion)",
                    ),
                )
            ),
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
