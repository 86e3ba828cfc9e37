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

from ...errors import ConfigError
from ...findings import SubjectRef
from ...report import RecordScore, Report, ScanIssue
from ...text import has_invisible
from ._cooccur import cooccurring_phrases, directive_vocabulary, word_tokens
from ._dupes import near_duplicate_clusters
from ._findings import (
    SCANNER,
    carrier_finding,
    char_findings,
    cluster_finding,
    directive_finding,
    hidden_kind,
    phrase_finding,
    secret_findings,
)
from ._passages import load_passages, passages_from
from ._patterns import PatternHit, find_directives, fold, prior_class
from ._semantic import (
    DIRECTIVE_EXEMPLARS,
    DISCUSSION_EXEMPLARS,
    SemanticScores,
    null_pvalues,
    semantic_scores,
    weighted_bh,
)

#: the smallest share of a trigger's carriers that the directive test must have found itself
_MIN_TRIGGER_PRECISION = 0.1


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
    # a trigger is beside the directive (directive wording such as "instructions" or "the
    # user" is listed in the extras only) and carried by most directive passages; its other
    # carriers are read as directives the encoder missed, as long as the directive test found
    # at least a tenth of them (a common phrase that a few directive
    # passages share is carried mostly by clean text, and flags nothing)
    trigger_phrases = [
        ph
        for ph in phrases
        if ph.precision >= _MIN_TRIGGER_PRECISION
        and ph.in_directive > ph.n_directive / 2
        and any(w not in vocab for w in ph.text.split())
    ]
    carrier = np.zeros(n, dtype=bool)
    if trigger_phrases:
        for i, t in enumerate(texts):
            joined = " " + " ".join(word_tokens(t)) + " "
            if any(f" {ph.text} " in joined for ph in trigger_phrases):
                carrier[i] = True
    # a copy holds the injected text itself, not only the host passage it was appended to
    copy = np.zeros(n, dtype=bool)
    planted = []
    for c in clusters:
        snippets = [_injected(texts[i], hits[i], sem, i) for i in c if directive[i]]
        members = [
            i
            for i in c
            if directive[i] or carrier[i] or any(sn in fold(texts[i])[0] for sn in snippets)
        ]
        if len(members) >= 2 and any(directive[i] or carrier[i] for i in members):
            planted.append(members)
            copy[members] = True
    hidden = np.array([has_invisible(t) and hidden_kind(t) != "typographic" for t in texts])
    flags = _Flags(directive, carrier & ~directive, copy & ~directive & ~carrier, hidden)

    for i in map(int, np.flatnonzero(directive)):
        report.findings.append(
            directive_finding(
                subject, passages[i], hits[i], sem, i, p, q, w, bool(confirmed[i]), carrier, hidden
            )
        )
    for ph in trigger_phrases:
        report.findings.append(
            phrase_finding(subject, ph, passages, texts, directive, ph in trigger_phrases)
        )
    for c in planted:
        report.findings.append(cluster_finding(subject, c, passages, directive))
    for ps in passages:
        report.findings.extend(char_findings(subject, ps, has_invisible(ps.text)))
        report.findings.extend(secret_findings(subject, ps))
    for i in map(int, np.flatnonzero(flags.phrase)):
        report.findings.append(carrier_finding(subject, passages[i], trigger_phrases))

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


def _injected(text: str, hits: list[PatternHit], sem: SemanticScores | None, i: int) -> str:
    """The folded text of a directive passage's directive: its pattern or its best sentence."""
    lead = next((h for h in hits if not h.quoted), hits[0] if hits else None)
    if lead is not None:
        span = lead.span
    elif sem is not None:
        span = sem.best_span[i]
    else:
        span = (0, len(text))
    return fold(text[span[0] : span[1]])[0].strip() or fold(text)[0]


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
