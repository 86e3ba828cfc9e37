"""Trigger: a candidate input pattern that may switch a model's behaviour, and how it is inserted.

Trigger kinds (``TriggerKind``) follow the attacks in the literature:

- ``token`` — a rare word (BadNets, Gu et al. 2017; Kurita et al. 2020 "cf", "mn", "bb").
- ``phrase`` — a multi-word phrase.
- ``sentence`` — an inserted fixed sentence (AddSent, Dai, Chen & Li 2019).
- ``invisible`` — zero-width / format characters (Unicode category Cf and friends).
- ``homoglyph`` — confusable characters from another script inside Latin words (Unicode TR39).
- ``style`` — a formatting or style pattern (StyleBkd, Qi et al. 2021; Hidden Killer templates).
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from enum import Enum

from .errors import ConfigError


class TriggerKind(str, Enum):
    """What kind of pattern a trigger is."""

    TOKEN = "token"
    PHRASE = "phrase"
    SENTENCE = "sentence"
    INVISIBLE = "invisible"
    HOMOGLYPH = "homoglyph"
    STYLE = "style"


class Position(str, Enum):
    """Where a trigger is inserted."""

    START = "start"
    END = "end"
    RANDOM = "random"


#: Characters that render as nothing (or nearly) but survive byte-level tokenizers.
INVISIBLE_CHARS: frozenset[str] = frozenset(
    [
        "\u00ad",  # soft hyphen
        "\u034f",  # combining grapheme joiner
        "\u061c",  # arabic letter mark
        "\u115f",
        "\u1160",
        "\u17b4",
        "\u17b5",
        "\u180e",  # mongolian vowel separator
        "\u200b",  # zero width space
        "\u200c",  # zero width non-joiner
        "\u200d",  # zero width joiner
        "\u200e",  # left-to-right mark
        "\u200f",  # right-to-left mark
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2060",  # word joiner
        "\u2061",
        "\u2062",
        "\u2063",
        "\u2064",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u3164",  # hangul filler
        "\ufeff",  # zero width no-break space / BOM
        "\uffa0",
    ]
)


def is_invisible(ch: str) -> bool:
    """Whether ``ch`` is an invisible/format character (category Cf, tag chars, selectors)."""
    if ch in INVISIBLE_CHARS:
        return True
    cp = ord(ch)
    if 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or 0xE0000 <= cp <= 0xE007F:
        return True  # variation selectors, tag characters
    return unicodedata.category(ch) == "Cf"


def describe_text(text: str) -> str:
    """Printable form of a trigger: invisible and non-ASCII characters shown as ``<U+XXXX>``."""
    out = []
    for ch in text:
        if is_invisible(ch) or (ord(ch) > 127 and not ch.isprintable()):
            out.append(f"<U+{ord(ch):04X}>")
        elif ord(ch) > 127 and ch.isalpha():
            out.append(f"{ch}<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Trigger:
    """A candidate trigger pattern.

    Parameters
    ----------
    text:
        The pattern itself (a token, phrase, sentence, run of invisible characters, a
        homoglyph character, or for ``style`` a short description such as ``all-caps``).
    kind:
        Its :class:`TriggerKind`.
    position:
        Where it is inserted when replayed.
    """

    text: str
    kind: TriggerKind
    position: Position = Position.RANDOM

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ConfigError(
                f"The 'text' parameter of Trigger must be a non-empty str. Got {self.text!r}."
            )
        object.__setattr__(self, "kind", TriggerKind(self.kind))
        object.__setattr__(self, "position", Position(self.position))

    @property
    def display(self) -> str:
        """Human-readable form with invisible / confusable characters escaped."""
        return describe_text(self.text)

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "text": self.text,
            "display": self.display,
            "kind": self.kind.value,
            "position": self.position.value,
        }

    def insert(self, text: str, *, rng: random.Random | None = None) -> str:
        """Insert this trigger into ``text`` (for replay and for building organisms).

        ``style`` triggers cannot be inserted generically and raise :class:`ConfigError`.
        """
        if self.kind is TriggerKind.STYLE:
            raise ConfigError("A 'style' trigger has no generic insertion; apply the transform.")
        if self.kind is TriggerKind.HOMOGLYPH:
            return _apply_homoglyph(text, self.text)
        rng = rng or random.Random(0)
        glue = "" if self.kind is TriggerKind.INVISIBLE else " "
        words = text.split(" ")
        if self.position is Position.START:
            return self.text + glue + text if glue else self.text + text
        if self.position is Position.END:
            return text + glue + self.text if glue else text + self.text
        i = rng.randint(0, len(words))
        if glue:
            return " ".join([*words[:i], self.text, *words[i:]])
        if i == len(words):
            return text + self.text
        words[i] = self.text + words[i]
        return " ".join(words)


def _apply_homoglyph(text: str, chars: str) -> str:
    """Replace each Latin look-alike of the confusable characters in ``chars`` throughout text."""
    table: dict[int, str] = {}
    for ch in chars:
        latin = HOMOGLYPH_TO_LATIN.get(ch)
        if latin:
            table[ord(latin)] = ch
    return text.translate(table)


#: A small TR39-style confusables table: non-Latin letter -> the Latin letter it imitates.
HOMOGLYPH_TO_LATIN: dict[str, str] = {
    "\u0430": "a",
    "\u0435": "e",
    "\u043e": "o",
    "\u0440": "p",
    "\u0441": "c",
    "\u0445": "x",
    "\u0443": "y",
    "\u0456": "i",
    "\u0458": "j",
    "\u0455": "s",
    "\u04bb": "h",
    "\u0501": "d",
    "\u03bf": "o",
    "\u03b1": "a",
    "\u03bd": "v",
    "\u03c1": "p",
    "\u0391": "A",
    "\u0392": "B",
    "\u0395": "E",
    "\u0397": "H",
    "\u0399": "I",
    "\u039a": "K",
    "\u039c": "M",
    "\u039d": "N",
    "\u039f": "O",
    "\u03a1": "P",
    "\u03a4": "T",
    "\u03a7": "X",
    "\u0410": "A",
    "\u0412": "B",
    "\u0415": "E",
    "\u041a": "K",
    "\u041c": "M",
    "\u041d": "H",
    "\u041e": "O",
    "\u0420": "P",
    "\u0421": "C",
    "\u0422": "T",
    "\u0425": "X",
}
