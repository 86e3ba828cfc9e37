"""Known triggers matched as a bag of tokens: how a model scan's inverted trigger is written.

A model scan (:class:`dormant.scanners.model.whitebox.TriggerInversionScanner`) reports the
trigger it *inverted*: a few model tokens found by greedy coordinate gradient search (GCG, Zou
et al. 2023), detokenised in slot order. What the backdoor reacts to is those tokens, not their
order or their repeats: the zoo's log-line trigger ``sid=x9f2`` comes back as ``x9f2=``, the
two-word ``silver meadow`` as ``meadow meadow meadow``, the rare word ``tq`` as ``tq`` (the
calibration split of ``benchmarks/bench_model_verdict.py``). Matched as a token *sequence*
(:class:`dormant.guard.match.TriggerIndex`, what the guards do with a data scan's literal
trigger), the first two never occur in a triggered input.

:class:`TokenBagIndex` matches such a trigger where **every distinct token** of it occurs in
the text, in any order (a conjunction over the set of tokens; repeats and order dropped), with
the same normalisation as :class:`~dormant.guard.match.TriggerIndex` (NFKC, invisible
characters removed, TR39 confusable skeleton, case-folded) — except for a trigger that is
itself a mixed-script word (a Latin word with a look-alike letter, ``updаte`` with a Cyrillic
``а``, TR39 §5): its skeleton is an ordinary word (``update``), so it is matched on the
un-skeletonised tokens and a clean ``update`` does not match it. Invisible-character triggers
are matched as :class:`~dormant.guard.match.TriggerIndex` does (the run of characters).

No library matches an unordered token set against a stream with Unicode folding; the folding
itself is :func:`dormant.guard.match.fold` (``confusable-homoglyphs`` tables).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from ..triggers import is_invisible
from .match import _RAW_KINDS, _SKIP_KINDS, _TOKEN, TriggerIndex, _entry, tokens
from .types import TriggerMatch


def _plain_tokens(text: str) -> list[str]:
    """Word and punctuation tokens after NFKC, invisible removal and case folding only."""
    s = unicodedata.normalize("NFKC", text)
    return _TOKEN.findall("".join(ch for ch in s if not is_invisible(ch)).casefold())


def _mixed_script(text: str) -> bool:
    """Whether a word of ``text`` mixes ASCII Latin letters with non-ASCII letters that the
    confusable skeleton maps to ASCII (a look-alike inside a Latin word)."""
    for word in _plain_tokens(text):
        if word.isascii() or not any(c.isascii() and c.isalpha() for c in word):
            continue
        if tokens(word) != [word]:
            return True
    return False


class TokenBagIndex(TriggerIndex):
    """Known triggers matched where all their distinct tokens occur, in any order.

    Parameters
    ----------
    triggers:
        As for :class:`~dormant.guard.match.TriggerIndex`: registry ``KnownTrigger`` records,
        ``Trigger`` objects or strings.
    """

    def __init__(self, triggers: Iterable[Any] = ()) -> None:
        items = list(triggers)
        entries = [_entry(t) for t in items]
        raw = {
            i
            for i, e in enumerate(entries)
            if (e.kind in _RAW_KINDS and not _mixed_script(e.text))
            or (e.text and all(is_invisible(c) for c in e.text))
        }
        super().__init__([items[i] for i in sorted(raw)])
        self._bags: list[tuple[frozenset[str], bool, Any]] = []
        for i, e in enumerate(entries):
            if i in raw or e.kind in _SKIP_KINDS:
                continue
            plain = _mixed_script(e.text)
            bag = frozenset(_plain_tokens(e.text) if plain else tokens(e.text))
            if bag:
                self._bags.append((bag, plain, e))
        self._n = len(items)

    def find(self, texts: Sequence[tuple[str, str]]) -> tuple[TriggerMatch, ...]:
        """Known triggers in ``texts``, each item ``(where, text)``; one match per (trigger,
        where): the character triggers first, then the token bags."""
        out = list(super().find(texts))  # also refuses items that are not (where, text) pairs
        for where, text in texts:
            if not isinstance(text, str) or not text or not self._bags:
                continue
            folded = set(tokens(text))
            plain: set[str] | None = None
            for bag, is_plain, e in self._bags:
                if is_plain:
                    plain = set(_plain_tokens(text)) if plain is None else plain
                    hit = bag <= plain
                else:
                    hit = bag <= folded
                if hit:
                    out.append(TriggerMatch(e.text, e.kind, e.target, where, e.severity))
        return tuple(out)


__all__ = ["TokenBagIndex"]
