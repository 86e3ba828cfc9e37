"""Code comments as features of their own in trigger mining (see :mod:`.mining`).

A code-comment trigger (``# opt: inline-sql`` appended to a snippet's comment; the "specific
comment pattern" of a poisoned coding assistant) is several word tokens long, and a careful
attacker — or the ordinary variety of a code base — leaves its head and its tail in clean
records: ``# opt: lazy connect`` shares the head, ``# legacy: inline-sql`` the tail. Every word
1-2-gram of the trigger is then impure (it also occurs in clean records) and none is tested,
while the whole comment, which is pure, is longer than the n-grams the counting pass counts.

So each comment is counted once more as a unit: from a line-comment marker (``#`` or ``//``,
at the start of a line or after white space, followed by white space) to the next such marker
on the line or the end of the line — a developer writes one annotation per marker, and a
trigger appended after an existing comment (``# TODO: retry on lock # opt: inline-sql``) is a
unit of its own. The unit is the feature string of its word tokens (lower-cased, space
separated, like an n-gram), so the second pass locates and extends it like any phrase and the
finding names it word for word. Units of fewer than three tokens are left out (they are
already word 1-2-grams) and so are units of more than :data:`MAX_UNIT_TOKENS` tokens (prose,
which the n-grams and the phrase extension handle).

This is the whole-segment feature of code-aware backdoor detection: triggers in code models
are statements or comments inserted whole ("dead code" triggers, Ramakrishnan & Albarghouthi,
"Backdoors in Neural Models of Source Code", ICPR 2022; Wan et al., "You See What I Want You
to See: Poisoning Vulnerabilities in Neural Code Search", FSE 2022), so the statement or the
comment, not its words, is the natural unit to test. No maintained library extracts comment
units from mixed prose-and-code records of unknown language (a parser such as ``tokenize`` or
tree-sitter needs well-formed code of one known language), hence this regular expression.
"""

from __future__ import annotations

import re

from ...text import tokens

#: longest comment unit counted, in word tokens (the marker included)
MAX_UNIT_TOKENS = 16
#: shortest: shorter units are word 1-2-grams already
MIN_UNIT_TOKENS = 3
_MARKER = re.compile(r"(?:(?<=\s)|^)(?:#|//)(?=[ \t])", re.MULTILINE)


def has_comment_marker(text: str) -> bool:
    """Whether ``text`` holds a comment marker at all (the cheap test before any parsing)."""
    return "#" in text or "//" in text


def comment_units(text: str) -> list[str]:
    """The record's code-comment units as feature strings (tokens joined by one space).

    Parameters
    ----------
    text:
        One record's text.

    Returns
    -------
    list of str
        One entry per comment unit of :data:`MIN_UNIT_TOKENS` to :data:`MAX_UNIT_TOKENS`
        tokens holding at least one letter or digit; empty when ``text`` has no marker.
    """
    if not has_comment_marker(text):
        return []
    out = []
    for line in text.splitlines():
        starts = [m.start() for m in _MARKER.finditer(line)]
        for a, b in zip(starts, [*starts[1:], len(line)], strict=False):
            toks = tokens(line[a:b])
            if MIN_UNIT_TOKENS <= len(toks) <= MAX_UNIT_TOKENS and any(
                ch.isalnum() for t in toks[1:] for ch in t
            ):
                out.append(" ".join(toks))
    return out
