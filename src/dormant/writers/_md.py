"""Markdown escaping: prose, code spans, fenced blocks and table rows that data cannot break.

Markdown punctuation is backslash-escaped (which also stops raw HTML), pipes cannot break a
table, and code spans and fenced blocks pick a backtick fence longer than any run inside the
value, so a hostile string renders as text.
"""

from __future__ import annotations

import re

_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#+!|&~])")
_LINE_START = re.compile(r"^(\d+(?=[.)](?:\s|$))|)([-=.)])(?=[\s=-]|$)")


def md_text(value: object) -> str:
    """Escape a value for Markdown prose or a table cell (one line, punctuation escaped)."""
    text = MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    # a leading "- ", "1. ", "---" or "===" would start a list, a rule or a heading
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def md_code(value: object, *, in_table: bool = False) -> str:
    """A value as an inline code span that no backtick inside it can close early.

    Line breaks and tabs are shown as ``\\n``, ``\\r``, ``\\t``; in a table cell a pipe is
    written ``\\|`` (GitHub-flavoured Markdown requires that even inside code spans).
    """
    text = str(value).translate(_CONTROL) or " "
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


__all__ = ["MD_SPECIAL", "fenced", "md_code", "md_text", "row"]
