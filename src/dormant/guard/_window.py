"""Where in a text a model reads: insert a transplanted span only inside that window.

A transformer classifier reads at most ``max_length`` tokens of a text and drops the rest
(truncation). The transplant test (:func:`dormant.guard._strip.transplant_evidence`) inserts
a candidate span at a random place in clean donor texts and asks whether the model's label
moves; a span inserted past the last token the model reads cannot move anything, whatever it
is, so that donor reports a "resisting" donor that is a measurement artefact, and it pulls
the span's mean log-odds down by up to ``ceiling + 9.2`` over the number of donors. On long
texts (dictionary definitions of 40 words against a 64-token model) this strikes trigger
spans and clean spans alike; the expectation was that it costs a trigger most, because a
trigger otherwise moves every donor. :class:`ReadingWindow` gives the last word position at
which a span still lies wholly inside what the model reads.

Measured, it does not pay as a default (:class:`dormant.guard.classify.ClassifierScreen`
takes ``read_window=True`` to use it): the clean calibration texts' most decisive words are
truncated away just as often, and once always read they score higher too, so the conformal
threshold rises with the triggers; on a held-out dictionary model with a ``key=value``
trigger TPR fell from 28/51 to 12/51 (BENCHMARKS.md, "Fresh held-out split, a reading
window tried").

The window is known only when the model says how it reads: a tokenizer and a token limit
(the Hugging Face adapters expose both, :class:`dormant.adapters.hf_classifier.HFClassifier`).
For any other model (an HTTP endpoint, a scikit-learn pipeline, which reads the whole text)
:func:`reading_window` returns ``None`` and spans go anywhere, as before.

Written here because no library offers "the word offset at which a tokenizer's truncation
starts": ``tokenizers`` reports offsets of the tokens it keeps, per text, which would mean one
tokenizer call per donor and span; counting each word's tokens once (cached) is enough for
the pre-tokenizers that split on whitespace first (WordPiece/BERT; for byte-level BPE a
word's count differs by at most its leading space, which the one-token margin covers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any


class ReadingWindow:
    """How many tokens a model reads, and how many each word costs.

    Parameters
    ----------
    tokenizer:
        A Hugging Face tokenizer (``tokenizer(text, add_special_tokens=False)["input_ids"]``).
    max_length:
        Tokens the model reads per text, special tokens included.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        try:
            special = int(tokenizer.num_special_tokens_to_add(pair=False))
        except Exception:  # a tokenizer without the method: [CLS] ... [SEP]
            special = 2
        # one token of margin: a word's count can differ in context (a leading space in BPE)
        self.budget = self.max_length - special - 1
        self._cost: dict[str, int] = {}

    def cost(self, word: str) -> int:
        """Tokens of one whitespace word (counted once per word)."""
        n = self._cost.get(word)
        if n is None:
            n = len(self.tokenizer(word, add_special_tokens=False)["input_ids"])
            if len(self._cost) < 200_000:
                self._cost[word] = n
        return n

    def last_slot(self, words: Sequence[str], span: str) -> int:
        """The largest ``k`` such that ``words[:k] + [span]`` fits in the window (at least 0,
        at most ``len(words)``): inserting ``span`` at any slot ``0..k`` keeps it read."""
        room = self.budget - sum(self.cost(w) for w in span.split())
        if room <= 0:
            return 0
        used = itertools.accumulate(self.cost(w) for w in words)
        k = 0
        for total in used:
            if total > room:
                break
            k += 1
        return k


def reading_window(model: Any) -> ReadingWindow | None:
    """The model's :class:`ReadingWindow`, or ``None`` when it does not say how it reads.

    Looks for a ``tokenizer`` and an integer ``max_length`` on the model or its ``adapter``.
    """
    for obj in (model, getattr(model, "adapter", None)):
        if obj is None:
            continue
        tok = getattr(obj, "tokenizer", None)
        limit = getattr(obj, "max_length", None)
        if tok is None:
            continue
        if not isinstance(limit, int) or isinstance(limit, bool):
            adapter = getattr(obj, "adapter", None)
            limit = getattr(adapter, "max_length", None)
        if callable(tok) and isinstance(limit, int) and not isinstance(limit, bool) and limit > 4:
            return ReadingWindow(tok, limit)
    return None


__all__ = ["ReadingWindow", "reading_window"]
