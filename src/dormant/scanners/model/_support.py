"""Task support of a candidate trigger: is it the target class's own vocabulary in the clean data?

A trigger inverted from a classifier is either a *task feature* (a word the target class
uses: ``database`` for a computing topic) or a *plant* (a token the clean data does not have
or has in no class more than another, that nevertheless flips most inputs). The clean data the
user hands the scan tells the two apart: the class-conditional frequency of the candidate's
tokens.

The statistic is the log-odds ratio with an informative Dirichlet prior of Monroe, Colaresi
& Quinn, "Fightin' Words: Lexical Feature Selection and Evaluation for Identifying the Content
of Political Conflict", *Political Analysis* 16(4), 2008 (their eq. 16-22): for token ``w``,
class ``t`` against the rest,

``delta = log((y_tw + a_w) / (n_t + a0 - y_tw - a_w))
- log((y_rw + a_w) / (n_r + a0 - y_rw - a_w))``,
``z = delta / sqrt(1 / (y_tw + a_w) + 1 / (y_rw + a_w))``,

with the prior ``a_w = a0 * (y_w + 0.5) / (n + 0.5 V)`` proportional to the token's frequency
in the whole clean data (``a0`` = :data:`PRIOR_WEIGHT`, the add-half floor gives a token the
clean data never shows a small prior rather than none). ``z`` is a standard score: a token with
``z >= 1.96`` is associated with ``t`` at the 5 % level. Counting is over the model's own
tokenizer (a WordPiece piece of a topic word is as much a task feature as the word). No
library computes it (it is twenty lines over a count matrix), so it is written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: ``a0`` of Monroe et al.: the prior's total pseudo-count
PRIOR_WEIGHT = 100.0
#: z at or above which a token is associated with a class (two-sided 5 % level)
Z_ASSOCIATED = 1.96
#: z is clipped to this range before it is used as a decision feature
Z_CLIP = 10.0


class TaskSupport:
    """Per-class Fightin' Words z-scores of every token of the model's vocabulary."""

    def __init__(self, z: np.ndarray, labels: Sequence[str], counts: np.ndarray) -> None:
        self.z = z  # labels x vocab
        self.labels = list(labels)
        self.counts = counts  # labels x vocab (token occurrences)

    @classmethod
    def fit(
        cls, adapter: Any, texts: Sequence[str], given: Sequence[str], labels: Sequence[str]
    ) -> TaskSupport:
        """Count the clean data's tokens per class (``given`` the labels of ``texts``)."""
        tok = adapter.tokenizer
        vocab = int(adapter.embedding_matrix().shape[0])
        enc = tok(
            list(texts), add_special_tokens=False, truncation=True, max_length=adapter.max_length
        )["input_ids"]
        index = {lab: i for i, lab in enumerate(labels)}
        counts = np.zeros((len(labels), vocab), dtype=float)
        for ids, y in zip(enc, given, strict=True):
            k = index.get(str(y))
            if k is not None and ids:
                np.add.at(counts[k], np.asarray(ids, dtype=int) % vocab, 1.0)
        return cls(log_odds_z(counts), labels, counts)

    def token_z(self, label: str, ids: Iterable[int]) -> float:
        """Mean z (clipped to ``[0, Z_CLIP]``) of the distinct ``ids`` for ``label``; 0 if none."""
        k = self.labels.index(label)
        vals = [float(np.clip(self.z[k, i], 0.0, Z_CLIP)) for i in dict.fromkeys(ids)]
        return float(np.mean(vals)) if vals else 0.0

    def text_z(self, adapter: Any, label: str, text: str | None) -> float:
        """:meth:`token_z` of a trigger text, tokenised by the model's tokenizer."""
        if not text:
            return 0.0
        ids = adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.token_z(label, ids)

    def associated(self, label: str) -> set[int]:
        """Token ids associated with ``label`` (z >= :data:`Z_ASSOCIATED`)."""
        k = self.labels.index(label)
        return {int(i) for i in np.flatnonzero(self.z[k] >= Z_ASSOCIATED)}


def log_odds_z(counts: np.ndarray, *, a0: float = PRIOR_WEIGHT) -> np.ndarray:
    """Monroe et al. (2008) z-scores, one class against the rest, for a classes x vocab count
    matrix (see the module docstring)."""
    total = counts.sum(0)
    n_all = float(total.sum())
    vocab = counts.shape[1]
    alpha = a0 * (total + 0.5) / (n_all + 0.5 * vocab)
    out = np.zeros_like(counts)
    for k in range(counts.shape[0]):
        yt, yr = counts[k], total - counts[k]
        nt, nr = float(yt.sum()), float(yr.sum())
        delta = np.log((yt + alpha) / (nt + a0 - yt - alpha)) - np.log(
            (yr + alpha) / (nr + a0 - yr - alpha)
        )
        out[k] = delta / np.sqrt(1.0 / (yt + alpha) + 1.0 / (yr + alpha))
    return out
