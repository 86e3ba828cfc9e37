"""Retrieval-corpus (RAG) scan: directives aimed at the model, hidden characters, the phrase
that co-occurs with the directives (a RAG backdoor's trigger) and planted near-duplicates.

Public API: :func:`scan_corpus` (returns a :class:`~dormant.report.Report`),
:func:`load_passages`, :class:`Passage` and :func:`write_corpus_outputs` (reports plus the
``clean.jsonl`` / ``quarantine.jsonl`` split).
"""

from __future__ import annotations

from ._outputs import check_corpus_outputs, write_corpus_outputs
from ._passages import Passage, load_passages
from .scan import scan_corpus

__all__ = [
    "Passage",
    "check_corpus_outputs",
    "load_passages",
    "scan_corpus",
    "write_corpus_outputs",
]
