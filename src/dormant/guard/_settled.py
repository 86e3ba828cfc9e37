"""What one completion becomes once the guard settled it: a decision per call, a screen.

:class:`Pending` is a choice as the upstream proposed it; :class:`Settled` carries the decisions
(and approval ids) back and says what may be released — the allowed calls, a notice per denied
or held call, the (possibly redacted) text or the notice that withheld it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._openai import NOTICE_PREFIX, notice
from .types import Decision, Outcome, ResponseDecision


@dataclass(frozen=True)
class Pending:
    """One choice of a completion waiting to be settled."""

    index: int
    calls: list[Any]
    text: str
    #: Why the calls are not whole (a broken stream): then they are denied undecided.
    incomplete: str | None = None


@dataclass
class Settled:
    """A choice after settling: a decision per call (with its audit sequence number and, when
    held, its approval id) and the text's screen."""

    pending: Pending
    decisions: list[Decision]
    verdict: ResponseDecision | None

    def kept(self) -> list[Any]:
        return [
            raw
            for raw, d in zip(self.pending.calls, self.decisions, strict=True)
            if d.outcome is Outcome.ALLOW
        ]

    def notices(self) -> list[str]:
        return [
            notice(d, approval_id=None if d.hold_id is None else str(d.hold_id))
            for d in self.decisions
            if d.outcome is not Outcome.ALLOW
        ]

    def withheld(self) -> str | None:
        """The notice replacing the text when the screen denied it (else None)."""
        v = self.verdict
        if v is None or v.outcome is Outcome.ALLOW:
            return None
        return f"{NOTICE_PREFIX} The assistant's answer was withheld: {'; '.join(v.reasons)}."

    def text(self, original: Any) -> Any:
        """The text to release: the screen's (possibly redacted) text, or the original."""
        v = self.verdict
        return v.text if v is not None else original


class AuditUnavailable(Exception):
    """An audit write failed: nothing may be released."""
