"""``scan_corpus``: directives, hidden characters, trigger phrases and planted copies in a
retrieval corpus, as one :class:`~dormant.report.Report`.

The steps, each in its own module:

1. directive patterns per passage (:mod:`._patterns`), reusing the shared egress and tool-call
   detectors of :mod:`dormant.behaviours`;
2. the semantic score with the real MiniLM encoder, calibrated on the corpus, and a weighted
   Benjamini-Hochberg decision over all passages (:mod:`._semantic`);
3. phrases that co-occur with the directive passages (:mod:`._cooccur`), the trigger of a RAG
   backdoor; passages that carry such a phrase are flagged too;
4. near-duplicate clusters (:mod:`._dupes`): copies of a directive passage are flagged;
5. invisible and confusable characters (:func:`dormant.text.has_invisible`,
   :func:`dormant.text.confusable_chars`) and credentials (:class:`dormant.behaviours.
   SecretDetector`).

Flagged passages (a finding of severity medium or above points at them) go to the quarantine
split; see :func:`dormant.scanners.corpus.write_corpus_outputs`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...behaviours import SecretDetector
from ...errors import ConfigError
from ...findings import Evidence, Finding, Locator, Severity, SubjectRef
from ...report import RecordScore, Report, ScanIssue
from ...text import confusable_chars, has_invisible
from ...triggers import Trigger, TriggerKind, is_invisible
from ._cooccur import Phrase, cooccurring_phrases, directive_vocabulary, word_tokens
from ._dupes import near_duplicate_clusters
from ._passages import Passage, load_passages, passages_from
from ._patterns import STRONG, PatternHit, find_directives, prior_class
from ._semantic import (
    DIRECTIVE_EXEMPLARS,
    DISCUSSION_EXEMPLARS,
    SemanticScores,
    null_pvalues,
    semantic_scores,
    weighted_bh,
)

SCANNER = "corpus"
_SECRETS = SecretDetector()
#: invisible characters of ordinary typography (soft hyphen): reported, not quarantined alone
_TYPOGRAPHIC = frozenset({"U+00AD"})


@dataclass(frozen=True)
class _Flags:
    directive: np.ndarray
    phrase: np.ndarray
    copy: np.ndarray
    hidden: np.ndarray


def scan_corpus(
    path_or_passages: str | os.PathLike[str] | Iterable[Any],
    *,
    text_field: str = "text",
    id_field: str = "id",
    alpha: float = 0.05,
    embed: bool = True,
    encoder: Any = None,
    encoder_path: str | os.PathLike[str] | None = None,
    weak_weight: float = 10.0,
    dup_threshold: float = 0.6,
    seed: int = 0,
) -> Report:
    """Scan a retrieval corpus for directives aimed at the model and the phrase that triggers them.

    Parameters
    ----------
    path_or_passages:
        A folder of ``.txt``/``.md``/``.html`` files, a JSONL file of passages, one document,
        or an iterable of :class:`Passage`, ``str`` or ``{"id": ..., "text": ...}``.
    text_field, id_field:
        JSONL fields of the passage text and id.
    alpha:
        Target false-discovery rate of the directive test (weighted Benjamini-Hochberg) and of
        the co-occurring phrase test; in ``(0, 1)``.
    embed:
        Use the encoder (the semantic, calibrated test). ``False`` decides on unquoted strong
        patterns alone (no calibration; a keyword-level fallback).
    encoder:
        Anything with ``encode(list[str]) -> ndarray`` of L2-normalised rows; default a
        :class:`~dormant.adapters.encoder.TextEncoder` on ``encoder_path`` (the packaged
        all-MiniLM-L6-v2 when ``None``).
    weak_weight:
        Prior weight (before rescaling to mean 1) in the semantic test of a passage with a
        directive pattern that is weak (tool verbs), quoted, or not confirmed by the encoder;
        passages without a pattern weigh 1.
    dup_threshold:
        Estimated Jaccard similarity of word 3-shingles at which two passages are copies.
    seed:
        Seed of the MinHash permutations.

    Returns
    -------
    Report
        Findings per directive passage, per co-occurring phrase, per cluster of copies, per
        passage with hidden characters or credentials; one record score per passage, flagged
        when it belongs in quarantine.

    Raises
    ------
    ConfigError
        A setting is out of range.
    InputError
        The corpus cannot be read (see :func:`load_passages`).
    """
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ConfigError(f"The 'alpha' parameter must be a number in (0, 1). Got {alpha!r}.")
    if not (0 < dup_threshold <= 1):
        raise ConfigError(
            f"The 'dup_threshold' parameter must be in (0, 1]. Got {dup_threshold!r}."
        )
    if not (isinstance(weak_weight, float | int) and weak_weight > 0):
        raise ConfigError(
            f"The 'weak_weight' parameter must be a positive number. Got {weak_weight!r}."
        )
    warnings: list[str] = []
    if isinstance(path_or_passages, str | os.PathLike):
        passages, warnings = load_passages(
            path_or_passages, text_field=text_field, id_field=id_field
        )
        name = str(path_or_passages)
    else:
        passages = passages_from(path_or_passages)
        name = "<passages>"
    texts = [ps.text for ps in passages]
    n = len(texts)
    digest = hashlib.sha256()
    for ps in passages:
        digest.update(f"{ps.id}\0{ps.doc}\0{ps.text}\n".encode())
    subject = SubjectRef(kind="corpus", name=name, digest="sha256:" + digest.hexdigest())
    config = {
        "alpha": alpha,
        "embed": embed,
        "weak_weight": weak_weight,
        "dup_threshold": dup_threshold,
        "text_field": text_field,
        "id_field": id_field,
    }
    report = Report(subject=subject, config=config, seed=seed)
    report.issues.extend(ScanIssue(SCANNER, "warning", w) for w in warnings)

    hits = [find_directives(t) for t in texts]
    prior = [prior_class(h) for h in hits]
    sem: SemanticScores | None = None
    strong = np.array([c == "strong" for c in prior])
    if embed:
        encode = _encode_fn(encoder, encoder_path)
        sem = semantic_scores(texts, encode)
        confirmed = strong & (sem.score > 0)
        reference = ~confirmed
        if reference.sum() < max(20, n // 2):
            report.issues.append(
                ScanIssue(
                    SCANNER,
                    "warning",
                    f"{int(confirmed.sum())} of {n} passages carry confirmed directives: the "
                    "calibration reference (the rest) is small, so p-values are weak",
                )
            )
        p = null_pvalues(sem.score, sem.score[reference] if reference.any() else sem.score)
        prior_b = ["weak" if c == "strong" else c for c in prior]
        w, q = weighted_bh(p, prior_b, weak_weight=weak_weight)
        directive = confirmed | (q <= alpha)
    else:
        report.issues.append(
            ScanIssue(SCANNER, "skip", "semantic test off (embed=False): patterns alone decide")
        )
        confirmed = strong
        p = np.where(strong, 0.0, 1.0)
        w, q = np.ones(n), p.copy()
        directive = strong.copy()

    clusters = near_duplicate_clusters(texts, threshold=dup_threshold, seed=seed)
    independent = np.ones(n, dtype=bool)
    for c in clusters:
        independent[c[1:]] = False
    phrases = cooccurring_phrases(texts, directive, alpha=alpha, independent=independent)
    vocab = directive_vocabulary(DIRECTIVE_EXEMPLARS + DISCUSSION_EXEMPLARS)
    # a trigger is beside the directive, carried by most directive passages and mostly by
    # them; directive wording ("instructions", "the user") is listed in the extras only
    trigger_phrases = [
        ph
        for ph in phrases
        if ph.precision >= 0.5
        and ph.in_directive > ph.n_directive / 2
        and any(w not in vocab for w in ph.text.split())
    ]
    carrier = np.zeros(n, dtype=bool)
    if trigger_phrases:
        for i, t in enumerate(texts):
            joined = " " + " ".join(word_tokens(t)) + " "
            if any(f" {ph.text} " in joined for ph in trigger_phrases):
                carrier[i] = True
    copy = np.zeros(n, dtype=bool)
    planted = [c for c in clusters if any(directive[i] or carrier[i] for i in c)]
    for c in planted:
        copy[c] = True
    hidden = np.array([has_invisible(t) and _hidden_kind(t) != "typographic" for t in texts])
    flags = _Flags(directive, carrier & ~directive, copy & ~directive & ~carrier, hidden)

    for i in map(int, np.flatnonzero(directive)):
        report.findings.append(
            _directive_finding(
                subject, passages[i], hits[i], sem, i, p, q, w, bool(confirmed[i]), carrier, hidden
            )
        )
    for ph in trigger_phrases:
        report.findings.append(
            _phrase_finding(subject, ph, passages, texts, directive, ph in trigger_phrases)
        )
    for c in planted:
        report.findings.append(_cluster_finding(subject, c, passages, directive))
    for ps in passages:
        report.findings.extend(_char_findings(subject, ps, has_invisible(ps.text)))
        report.findings.extend(_secret_findings(subject, ps))
    for i in map(int, np.flatnonzero(flags.phrase)):
        report.findings.append(_carrier_finding(subject, passages[i], trigger_phrases))

    flagged = directive | carrier | copy | hidden
    for i, ps in enumerate(passages):
        s_dir = float(1.0 - min(0.1 if confirmed[i] else 1.0, q[i]))
        score = max(s_dir, 0.8 if carrier[i] else 0.0, 0.7 if copy[i] else 0.0)
        score = max(score, 0.6 if hidden[i] else 0.0)
        parts = (("directive", s_dir), ("pattern", {"strong": 1.0, "weak": 0.5}.get(prior[i], 0.0)))
        report.records.append(RecordScore(ps.id, score, bool(flagged[i]), parts))
    report.extras["corpus"] = {
        "passages": n,
        "documents": len({ps.doc for ps in passages}),
        "directive": int(directive.sum()),
        "phrase_carriers": int(flags.phrase.sum()),
        "copies": int(flags.copy.sum()),
        "hidden_characters": int(hidden.sum()),
        "quarantined": int(flagged.sum()),
        "phrases": [ph.text for ph in phrases],
        "phrase_counts": [
            {
                "phrase": ph.text,
                "in_directive": ph.in_directive,
                "total": ph.total,
                "p_value": ph.p_value,
                "q_value": ph.q_value,
            }
            for ph in phrases
        ],
        "trigger_phrases": [ph.text for ph in trigger_phrases],
    }
    return report.finish()


def _encode_fn(encoder: Any, encoder_path: Any) -> Callable[[list[str]], np.ndarray]:
    if encoder is None:
        from ...adapters.encoder import TextEncoder

        encoder = TextEncoder(model_path=encoder_path).load()
    if not callable(getattr(encoder, "encode", None)):
        raise ConfigError(
            "The 'encoder' parameter must have an encode(list[str]) method returning an array. "
            f"Got {type(encoder).__name__} instead."
        )

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(encoder.encode(texts), dtype=np.float32)

    return encode


def _hidden_kind(text: str) -> str:
    names = {f"U+{ord(c):04X}" for c in text if is_invisible(c)}
    return "typographic" if names <= _TYPOGRAPHIC else "hidden"


def _doc_ev(ps: Passage) -> tuple[Evidence, ...]:
    return (
        Evidence("document", ps.doc, "the document the passage comes from"),
        Evidence("passage_offset", ps.offset, "character offset of the passage in it"),
    )


def _directive_finding(
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
    route = (
        "directive pattern, confirmed by the encoder (nearer a directive exemplar than any "
        "discussion exemplar)"
        if confirmed
        else "encoder score significant against the corpus (weighted Benjamini-Hochberg)"
    )
    ev += [
        Evidence("route", route, "how the passage was found"),
        Evidence("families", ", ".join(families) or "none (semantic only)", "directive patterns"),
        Evidence("matched", ps.text[span[0] : span[1]][:160], "the directive text"),
        Evidence("p_value", float(p[i]), "calibrated on the corpus (conformal, GPD tail)"),
        Evidence("q_value", float(q[i]), "weighted Benjamini-Hochberg adjusted p-value"),
        Evidence("weight", round(float(w[i]), 4), "prior weight from the patterns (mean 1)"),
    ]
    if sem is not None:
        ev += [
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


def _phrase_finding(
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


def _cluster_finding(
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


def _carrier_finding(subject: SubjectRef, ps: Passage, phrases: list[Phrase]) -> Finding:
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


def _char_findings(subject: SubjectRef, ps: Passage, hidden: bool) -> list[Finding]:
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


def _secret_findings(subject: SubjectRef, ps: Passage) -> list[Finding]:
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
