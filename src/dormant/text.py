"""Text features shared by the data scanners and the runtime guard.

``tokens`` splits text into words, punctuation runs and runs of invisible characters (so an
invisible trigger is a token of its own); ``skeleton`` folds text the way a reader sees it —
NFKC, confusables to their Latin look-alike (Unicode TR39 §4 "skeleton", with a small table),
invisible characters removed, lower case — so that a content model is not fooled by the trigger.
"""

from __future__ import annotations

import re
import unicodedata

from .triggers import HOMOGLYPH_TO_LATIN, INVISIBLE_CHARS, is_invisible

_INV_CLASS = "".join(sorted(INVISIBLE_CHARS)) + "\ufe00-\ufe0f"
TOKEN_RE = re.compile(rf"[{_INV_CLASS}]+|[^\W_]+|[^\w\s{_INV_CLASS}]+|_+", re.UNICODE)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
_CAP_START = re.compile(r"(?:^|(?<=\s))[\"'(“]?[A-Z]")
_SKELETON_TABLE: dict[int, str | None] = {ord(k): v for k, v in HOMOGLYPH_TO_LATIN.items()}
_SKELETON_TABLE.update({ord(c): None for c in INVISIBLE_CHARS})

BOS = "<s>"
EOS = "</s>"


def tokens(text: str) -> list[str]:
    """Words, punctuation runs and invisible-character runs of ``text``, lower-cased."""
    return TOKEN_RE.findall(text.lower())


def skeleton(text: str) -> str:
    """TR39-style skeleton: NFKC, confusables folded to Latin, invisibles dropped, lower case."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).translate(_SKELETON_TABLE).lower()


def content_words(text: str) -> list[str]:
    """Alphabetic words of the skeleton (what a content model reads)."""
    return _WORD_RE.findall(skeleton(text))


def script_of(ch: str) -> str:
    """Coarse script of a letter from its Unicode name (LATIN, CYRILLIC, GREEK, ...)."""
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "UNKNOWN"


def confusable_chars(text: str) -> set[str]:
    """Non-Latin letters used inside otherwise-Latin words (mixed-script words, TR39 §5)."""
    found: set[str] = set()
    if text.isascii():
        return found
    for word in _WORD_RE.findall(text):
        if word.isascii():
            continue
        latin = other = False
        odd = []
        for ch in word:
            if ch.isascii():
                latin = True
            else:
                s = script_of(ch)
                if s == "LATIN":
                    latin = True
                else:
                    other = True
                    odd.append(ch)
        if latin and other:
            found.update(odd)
    return found


def has_invisible(text: str) -> bool:
    """Whether ``text`` contains any invisible / format character."""
    return not text.isascii() and any(is_invisible(c) for c in text)


_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OPEN_QUOTES = frozenset("\"'(“")


def _title_case(words: list[str]) -> bool:
    """At least 90% of the words start with A-Z (after an opening quote or bracket).

    The count of ``_CAP_START`` matches over the text, word by word, stopping as soon as 90% is
    out of reach (most records fail on their second or third word).
    """
    need = 0.9 * len(words)
    hits = 0
    left = len(words)
    for w in words:
        left -= 1
        c = w[0]
        if c in _UPPER or (c in _OPEN_QUOTES and w[1:2] in _UPPER):
            hits += 1
        elif hits + left < need:
            return False
    return hits >= need


def style_features(text: str) -> list[str]:
    """Coarse formatting/style features of a whole record (shortcut and style triggers).

    Only C-level string methods are used: this runs once per record in the counting pass.
    """
    out = []
    if len(text) >= 8:
        if text.isupper():
            out.append("style:upper-case")
        else:
            words = text.split()
            if len(words) >= 5 and _title_case(words):
                out.append("style:title-case")
    if "  " in text:
        out.append("style:double-space")
    if text[:1].isspace() or text[-1:].isspace():
        out.append("style:padded")
    if text.count("!") >= 3:
        out.append("style:exclamations")
    if len(text) >= 2 and text[0] in "\"'“«" and text[-1] in "\"'”»":
        out.append("style:quoted")
    if "\n" in text:
        out.append("style:multi-line")
    return out
