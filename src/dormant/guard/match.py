"""Find the triggers that scans recorded in a live request's text, however they are disguised.

A recorded trigger is matched after the text and the trigger are both brought to one form:

1. Unicode NFKC (UAX #15): compatibility forms fold (fullwidth ``ｃｆ`` -> ``cf``, ligatures,
   mathematical alphanumerics);
2. invisible characters removed (zero-width space/joiners, bidi controls, soft hyphen, tag
   characters, variation selectors — :func:`dormant.triggers.is_invisible`), so ``c\u200bf``
   still shows ``cf``;
3. the confusable skeleton of Unicode TR39 §4 (``skeleton(X)``), from the Unicode
   ``confusables.txt`` table shipped by the maintained ``confusable-homoglyphs`` package: each
   character is replaced by one representative of its confusable class (Cyrillic ``а`` and
   Latin ``a`` become the same letter), case-folded before and after the mapping (a class's
   representative is a lower-case ASCII letter where it has one, so ``0``/``O`` fold to ``o``).

The folded text is split into word and punctuation tokens, and a trigger matches where its
token sequence occurs (an index keyed by first token: linear in the text, independent of the
number of triggers), so ``cf`` matches the word ``cf`` and not ``scaffold``. Two kinds are
matched on the NFKC text as they are, because folding would erase them: ``invisible`` triggers
(a run of zero-width characters *is* the pattern) and ``homoglyph`` triggers (one confusable
character: its skeleton is an ordinary letter) — the latter only inside a word that also has
Latin letters (TR39 §5 mixed-script), so Cyrillic text written in Cyrillic is not suspect.
``style`` triggers describe a form, not a string, and are not matched here.

``confusable-homoglyphs`` lists each confusables.txt pair in both directions, so the classes are
rebuilt here with a union-find over single-character pairs; multi-character prototypes
(``rn`` for ``m``) are not applied — the per-character mapping is what stays fast and stable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import ConfigError, require
from ..triggers import is_invisible
from .types import TriggerMatch

_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"(?<!\w)\d+(?!\w)")
_RAW_KINDS = {"invisible", "homoglyph"}
_SKIP_KINDS = {"style"}


@lru_cache(maxsize=1)
def _skeleton_table() -> dict[int, str]:
    """Code point -> representative of its TR39 confusable class (single characters only)."""
    confusables: Any = require("confusable_homoglyphs.confusables", "guard")

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for key, entries in confusables.confusables_data.items():
        k = key.replace("\u200e", "")
        if len(k) != 1:
            continue
        for e in entries:
            t = e["c"].replace("\u200e", "")
            if len(t) == 1:
                a, b = find(k), find(t)
                if a != b:
                    parent[a] = b
    members: dict[str, list[str]] = {}
    for ch in parent:
        members.setdefault(find(ch), []).append(ch)
    table: dict[int, str] = {}
    for root, chars in members.items():
        chars.append(root)
        ascii_ = [c for c in chars if ord(c) < 128]
        # a lower-case letter first, so that case-folding after the mapping is stable
        rep = (
            min(ascii_, key=lambda c: (not c.islower(), not c.isalpha(), c))
            if ascii_
            else min(chars)
        )
        for c in chars:
            # ASCII punctuation keeps its meaning: "|cf|" is the word cf between pipes, and
            # ASCII art "O|" is not the word "ol"
            if c != rep and not (c.isascii() and not c.isalnum()):
                table[ord(c)] = rep
    return table


@lru_cache(maxsize=1)
def _ascii_table() -> dict[int, str]:
    """The ASCII fast path of :func:`fold` (``0`` -> ``o``, ``1`` and ``|`` -> ``l`` ...)."""
    table = _skeleton_table()
    out = {}
    for i in range(128):
        c = chr(i)
        folded = c.casefold().translate(table).casefold().translate(table)
        if folded != c.casefold():
            out[i] = folded
    return out


def fold(text: str) -> str:
    """NFKC, invisible characters removed, TR39 skeleton, case-folded (see the module text).

    Numbers (runs of digits standing alone) and ASCII punctuation are kept: ``101`` stays
    ``101``, not ``lol``, and ``|`` stays a pipe. A digit inside a word is still folded
    (``s0l0`` shows ``solo``). On 9,000 passages of the Jargon File, FOLDOC and GCIDE, 13
    triggers (``cf``, ``ol``, ``so``, ``James Bond`` …) matched the folded text in the same
    passages as the plain lower-cased words, but for one (``ol``: 7 against 6); before numbers
    and punctuation were kept, ``ol`` matched 8 passages of 5,000 where the word occurs in none.
    """
    if text.isascii():  # no compatibility forms, invisibles or non-Latin confusables
        ascii_table = _ascii_table()
        return _keep_numbers(text.casefold(), lambda x: x.translate(ascii_table))
    table = _skeleton_table()
    s = unicodedata.normalize("NFKC", text)
    s = "".join(ch for ch in s if not is_invisible(ch)).casefold()
    return _keep_numbers(s, lambda x: x.translate(table).casefold().translate(table))


def _keep_numbers(s: str, fold_part: Callable[[str], str]) -> str:
    out = []
    last = 0
    for m in _NUMBER.finditer(s):
        out.append(fold_part(s[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(fold_part(s[last:]))
    return "".join(out)


def tokens(text: str) -> list[str]:
    """The folded text's word and punctuation tokens."""
    return _TOKEN.findall(fold(text))


@dataclass(frozen=True)
class _Entry:
    text: str
    kind: str
    target: str | None
    severity: str


class TriggerIndex:
    """Known triggers, indexed for matching in request text.

    Parameters
    ----------
    triggers:
        Records with ``text``, ``kind``, ``target`` and ``max_severity`` or ``severity``
        (:class:`dormant.registry.KnownTrigger`, :class:`dormant.triggers.Trigger`), or plain
        strings (kind ``phrase``).
    """

    def __init__(self, triggers: Iterable[Any] = ()) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], _Entry]]] = {}
        self._raw: list[tuple[str, _Entry]] = []
        n = 0
        for t in triggers:
            e = _entry(t)
            n += 1
            if e.kind in _SKIP_KINDS:
                continue
            if e.kind in _RAW_KINDS or all(is_invisible(c) for c in e.text):
                raw = unicodedata.normalize("NFKC", e.text)
                if raw:
                    self._raw.append((raw, e))
                continue
            toks = tuple(tokens(e.text))
            if not toks:
                continue
            self._by_first.setdefault(toks[0], []).append((toks, e))
        self._n = n

    @classmethod
    def from_registry(cls, registry: Any, *, min_severity: str | None = None) -> TriggerIndex:
        """Every trigger the registry's recorded scans found (``Registry.known_triggers``)."""
        return cls(registry.known_triggers(min_severity=min_severity))

    def __len__(self) -> int:
        return self._n

    def find(self, texts: Sequence[tuple[str, str]]) -> tuple[TriggerMatch, ...]:
        """Known triggers in ``texts``, each item ``(where, text)`` (e.g. ``("message[2]", s)``).

        Returns one :class:`TriggerMatch` per (trigger, where), in input order.
        """
        out: list[TriggerMatch] = []
        for item in texts:
            if not isinstance(item, tuple) or len(item) != 2:
                raise ConfigError(
                    "TriggerIndex.find expects (where, text) pairs. "
                    f"Got {type(item).__name__} instead."
                )
            where, text = item
            if not isinstance(text, str) or not text:
                continue
            seen: set[int] = set()
            if self._raw:
                nfkc = unicodedata.normalize("NFKC", text)
                for raw, e in self._raw:
                    if id(e) not in seen and raw in nfkc:
                        if e.kind == "homoglyph" and not _inside_latin_word(nfkc, raw):
                            continue
                        seen.add(id(e))
                        out.append(TriggerMatch(e.text, e.kind, e.target, where, e.severity))
            if self._by_first:
                toks = tokens(text)
                for i, tok in enumerate(toks):
                    for seq, e in self._by_first.get(tok, ()):
                        if id(e) in seen:
                            continue
                        k = len(seq)
                        if k == 1 or tuple(toks[i : i + k]) == seq:
                            seen.add(id(e))
                            out.append(TriggerMatch(e.text, e.kind, e.target, where, e.severity))
        return tuple(out)


def _inside_latin_word(text: str, glyph: str) -> bool:
    """Whether ``glyph`` occurs inside a word that also has Latin letters (TR39 mixed script).

    A homoglyph trigger is a look-alike *inside Latin text* (``pаypal`` with a Cyrillic ``а``);
    the same letter in a Russian word is ordinary text and must not drop a request to the
    suspect tier.
    """
    start = text.find(glyph)
    while start >= 0:
        lo, hi = start, start + len(glyph)
        while lo > 0 and (text[lo - 1].isalnum() or is_invisible(text[lo - 1])):
            lo -= 1
        while hi < len(text) and (text[hi].isalnum() or is_invisible(text[hi])):
            hi += 1
        word = text[lo:start] + text[start + len(glyph) : hi]
        if any(c.isascii() and c.isalpha() for c in word):
            return True
        start = text.find(glyph, start + 1)
    return False


def _entry(t: Any) -> _Entry:
    if isinstance(t, str):
        return _Entry(t, "phrase", None, "high")
    text = getattr(t, "text", None)
    if not isinstance(text, str):
        raise ConfigError(
            "TriggerIndex needs triggers with a 'text' string (KnownTrigger, Trigger or str). "
            f"Got {type(t).__name__} instead."
        )
    kind = getattr(t, "kind", "phrase")
    kind = getattr(kind, "value", kind)
    sev = getattr(t, "max_severity", None) or getattr(t, "severity", None) or "high"
    sev = getattr(sev, "value", sev)
    return _Entry(text, str(kind), getattr(t, "target", None), str(sev))


__all__ = ["TriggerIndex", "fold", "tokens"]
