"""The classifier screen's decision on one input, and its character signals.

Kept apart from :mod:`dormant.guard.classify` (the screen itself) so the decision type can be
read by the proxy app, the CLI and the report reader without the screen's machinery.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..triggers import describe_text, is_invisible
from .types import TriggerMatch


@dataclass(frozen=True)
class ScreenDecision:
    """The screen's decision on one input.

    Attributes
    ----------
    flagged:
        ``True``: the input is held back (a trigger signal fired, or the screen failed).
    label:
        The model's predicted label (``None`` when the model failed).
    reasons:
        Why, one sentence per signal that fired (or why it passed).
    p_value:
        The conformal p-value of the model-behaviour test (small = unlike clean inputs);
        ``None`` when it did not run.
    score:
        The raw score of that test (higher = more suspicious).
    span:
        The span the test found deciding the prediction (``transplant``/``onion``), if any.
    triggers:
        Known triggers from the registry found in the input.
    representation:
        How tightly the donors moved by :attr:`span` collapse in the model's penultimate
        features (higher = tighter; ``representation=True`` only, else ``None``).
    """

    flagged: bool
    label: str | None
    reasons: tuple[str, ...]
    p_value: float | None = None
    score: float | None = None
    span: str | None = None
    triggers: tuple[TriggerMatch, ...] = field(default=())
    representation: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "flagged": self.flagged,
            "label": self.label,
            "reasons": list(self.reasons),
            "p_value": self.p_value,
            "score": self.score,
            "span": self.span,
            "triggers": [t.to_dict() for t in self.triggers],
            "representation": self.representation,
        }


def character_reasons(text: str) -> list[str]:
    """Invisible characters, and Latin words with a confusable letter of another script."""
    from .match import fold

    out = []
    inv = sorted({f"U+{ord(c):04X}" for c in text if is_invisible(c)})
    if inv:
        out.append(f"invisible character(s) {', '.join(inv)}")
    mixed = []
    for w in unicodedata.normalize("NFKC", text).split():
        letters = [c for c in w if c.isalpha()]
        if not any(c.isascii() for c in letters):
            continue
        odd = [c for c in letters if not unicodedata.name(c, "").startswith("LATIN ")]
        if odd and any(fold(c).isascii() and fold(c).isalpha() for c in odd):
            mixed.append(describe_text(w))
    if mixed:
        out.append(f"look-alike letters of another script in {', '.join(mixed[:5])}")
    return out


__all__ = ["ScreenDecision", "character_reasons"]
