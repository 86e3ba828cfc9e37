"""The findings of a corpus scan: one builder per kind (directive passage, trigger phrase,
carrier of the phrase, cluster of copies, hidden characters, credentials)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...behaviours import get_detector
from ...findings import Evidence, Finding, Locator, Severity, SubjectRef
from ...text import confusable_chars
from ...triggers import Trigger, TriggerKind, is_invisible
from ._cooccur import Phrase, word_tokens
from ._passages import Passage
from ._patterns import STRONG, PatternHit
from ._semantic import SemanticScores

SCANNER = "corpus"
_SECRETS = get_detector("secret")
#: invisible characters of ordinary typography (soft hyphen): reported, not quarantined alone
_TYPOGRAPHIC = frozenset({"U+00AD"})


def hidden_kind(text: str) -> str:
    names = {f"U+{ord(c):04X}" for c in text if is_invisible(c)}
    return "typographic" if names <= _TYPOGRAPHIC else "hidden"


def _doc_ev(ps: Passage) -> tuple[Evidence, ...]:
    return (
        Evidence("document", ps.doc, "the document the passage comes from"),
        Evidence("passage_offset", ps.offset, "character offset of the passage in it"),
    )


def directive_finding(
    subject: SubjectRef,
    ps: Passage,
    hits: list[PatternHit],
    sem: SemanticScores | None,
    i: int,
    p: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    confirmed: bool,
    carrier: np.ndarray,
    hidden: np.ndarray,
) -> Finding:
    families = sorted({h.family for h in hits if not h.quoted})
    lead = next((h for h in hits if h.family in STRONG and not h.quoted), hits[0] if hits else None)
    span = lead.span if lead else (sem.best_span[i] if sem else (0, len(ps.text)))
    severe = bool({"exfiltrate", "reveal"} & set(families)) or bool(carrier[i] or hidden[i])
    ev = list(_doc_ev(ps))
    if sem is None:
        route = "directive pattern alone (encoder off: no semantic check, no calibration)"
    elif confirmed:
        route = (
            "directive pattern, confirmed by the encoder (nearer a directive exemplar than any "
            "discussion exemplar)"
        )
    else:
        route = "encoder score significant against the corpus (weighted Benjamini-Hochberg)"
    ev += [
        Evidence("route", route, "how the passage was found"),
        Evidence("families", ", ".join(families) or "none (semantic only)", "directive patterns"),
        Evidence("matched", ps.text[span[0] : span[1]][:160], "the directive text"),
    ]
    if sem is not None:
        ev += [
            Evidence("p_value", float(p[i]), "calibrated on the corpus (conformal, GPD tail)"),
            Evidence("q_value", float(q[i]), "weighted Benjamini-Hochberg adjusted p-value"),
            Evidence("weight", round(float(w[i]), 4), "prior weight from the patterns (mean 1)"),
            Evidence("semantic_score", round(float(sem.score[i]), 4), "directive - discussion"),
            Evidence("directive_similarity", round(float(sem.dir_sim[i]), 4), "cosine"),
        ]
    where = f"{ps.doc}" + (f" (passage {ps.id})" if ps.id != ps.doc else "")
    return Finding(
        scanner=SCANNER,
        subject=subject,
        title=f"Directive aimed at the model in {where}: "
        + (", ".join(families) if families else "paraphrased instruction"),
        severity=Severity.CRITICAL if severe else Severity.HIGH,
        score=float(1.0 - min(0.1 if confirmed else 1.0, q[i])),
        category="prompt-injection",
        locator=Locator(record_ids=(ps.id,), span=span),
        evidence=tuple(ev),
        explanation="The passage addresses the model with an instruction (to override its "
        "sources or instructions, call a tool, send data out, reveal its prompt or change "
        "role): a directive pattern that the encoder reads as an instruction rather than "
        "as text about one, or an encoder score that stands out from the rest of the corpus "
        "at the chosen false-discovery rate.",
    )


def phrase_finding(
    subject: SubjectRef,
    ph: Phrase,
    passages: list[Passage],
    texts: list[str],
    directive: Any,
    trigger: bool,
) -> Finding:
    ids = []
    for i, t in enumerate(texts):
        if directive[i] and f" {ph.text} " in " " + " ".join(word_tokens(t)) + " ":
            ids.append(passages[i].id)
    return Finding(
        scanner=SCANNER,
        subject=subject,
        title=f"Phrase {ph.text!r} co-occurs with directives in {ph.in_directive} of "
        f"{ph.n_directive} directive passages ({ph.total} passages in all)",
        severity=Severity.HIGH if trigger else Severity.LOW,
        score=float(max(0.0, min(1.0, 1.0 - ph.q_value))),
        category="data-poisoning",
        trigger=Trigger(ph.text, TriggerKind.PHRASE if " " in ph.text else TriggerKind.TOKEN),
        locator=Locator(record_ids=tuple(ids[:50])),
        evidence=(
            Evidence("in_directive", ph.in_directive, "directive passages that carry it"),
            Evidence("total", ph.total, "passages that carry it"),
            Evidence("precision", round(ph.precision, 4), "share of carriers that are directive"),
            Evidence("p_value", ph.p_value, "one-sided hypergeometric (Fisher exact)"),
            Evidence("q_value", ph.q_value, "Benjamini-Hochberg across candidate n-grams"),
        ),
        explanation="A phrase planted next to the injected instructions across documents: the "
        "candidate trigger that makes a model trained or grounded on this corpus follow them.",
    )


def cluster_finding(
    subject: SubjectRef, cluster: list[int], passages: list[Passage], directive: Any
) -> Finding:
    docs = sorted({passages[i].doc for i in cluster})
    return Finding(
        scanner=SCANNER,
        subject=subject,
        title=f"{len(cluster)} near-duplicate copies of injected content in "
        f"{len(docs)} document(s)",
        severity=Severity.HIGH if len(cluster) >= 3 else Severity.MEDIUM,
        score=min(1.0, 0.5 + 0.05 * len(cluster)),
        category="prompt-injection",
        locator=Locator(record_ids=tuple(passages[i].id for i in cluster[:200])),
        evidence=(
            Evidence("copies", len(cluster), "passages in the cluster"),
            Evidence("directive_copies", int(sum(bool(directive[i]) for i in cluster)), ""),
            Evidence("documents", ", ".join(docs[:10]), "documents holding a copy"),
        ),
        explanation="MinHash near-duplicates of a flagged passage: an attacker plants many "
        "copies so that retrieval finds one.",
    )


def carrier_finding(subject: SubjectRef, ps: Passage, phrases: list[Phrase]) -> Finding:
    lowered = " " + " ".join(word_tokens(ps.text)) + " "
    ph = next(p for p in phrases if f" {p.text} " in lowered)
    return Finding(
        scanner=SCANNER,
        subject=subject,
        title=f"Passage {ps.id} carries the co-occurring phrase {ph.text!r}",
        severity=Severity.MEDIUM,
        score=0.8,
        category="data-poisoning",
        trigger=Trigger(ph.text, TriggerKind.PHRASE if " " in ph.text else TriggerKind.TOKEN),
        locator=Locator(record_ids=(ps.id,)),
        evidence=_doc_ev(ps),
        explanation="The passage holds a phrase that elsewhere comes with injected directives.",
    )


def char_findings(subject: SubjectRef, ps: Passage, hidden: bool) -> list[Finding]:
    out = []
    if hidden:
        idx = [k for k, c in enumerate(ps.text) if is_invisible(c)]
        names = sorted({f"U+{ord(ps.text[k]):04X}" for k in idx})
        typographic = set(names) <= _TYPOGRAPHIC
        out.append(
            Finding(
                scanner=SCANNER,
                subject=subject,
                title=f"Invisible characters in passage {ps.id} ({', '.join(names[:4])})",
                severity=Severity.LOW if typographic else Severity.MEDIUM,
                score=0.6,
                category="prompt-injection",
                trigger=Trigger(
                    "".join(dict.fromkeys(ps.text[k] for k in idx)), TriggerKind.INVISIBLE
                ),
                locator=Locator(record_ids=(ps.id,), span=(idx[0], idx[-1] + 1)),
                evidence=(*_doc_ev(ps), Evidence("count", len(idx), "invisible characters")),
                explanation="Zero-width or bidi characters hide text from a reader but not "
                "from the model.",
            )
        )
    odd = confusable_chars(ps.text)
    if odd:
        out.append(
            Finding(
                scanner=SCANNER,
                subject=subject,
                title=f"Look-alike letters inside Latin words in passage {ps.id}",
                severity=Severity.LOW,
                score=0.4,
                category="prompt-injection",
                trigger=Trigger(sorted(odd)[0], TriggerKind.HOMOGLYPH),
                locator=Locator(record_ids=(ps.id,)),
                evidence=(*_doc_ev(ps), Evidence("characters", " ".join(sorted(odd)), "")),
                explanation="Mixed-script words (Unicode TR39 section 5) evade keyword filters.",
            )
        )
    return out


def secret_findings(subject: SubjectRef, ps: Passage) -> list[Finding]:
    hits = _SECRETS.detect(ps.text)
    if not hits:
        return []
    return [
        Finding(
            scanner=SCANNER,
            subject=subject,
            title=f"Credential material in passage {ps.id} ({hits[0].tag})",
            severity=Severity.LOW,
            score=0.4,
            category="secret-exposure",
            locator=Locator(record_ids=(ps.id,), span=hits[0].span),
            evidence=(*_doc_ev(ps), Evidence("detail", hits[0].detail, "")),
            explanation="A retriever would hand this credential to the model and its users.",
        )
    ]
