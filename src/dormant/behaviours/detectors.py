"""The built-in behaviour detectors, one class per tag family (vocabulary: the package doc).

Each is a :class:`~dormant.behaviours.protocol.Detector`; the pattern tables they run live in
the sibling modules :mod:`.structured` (tool calls, destinations), :mod:`.secrets`
(gitleaks-style credential formats), :mod:`.code` (Bandit-style insecure code) and
:mod:`.prose` (leakage, refusals, unsafe advice), each citing its sources.
"""

from __future__ import annotations

import re

from . import code, prose, secrets, structured
from .protocol import BehaviourDetector, BehaviourHit, RuleDetector

__all__ = [
    "EgressDetector",
    "InsecureCodeDetector",
    "LeakageDetector",
    "RefusalDetector",
    "SecretDetector",
    "ToolCallDetector",
    "UnsafeActionDetector",
]


class ToolCallDetector(BehaviourDetector):
    """Tool calls in OpenAI-compatible JSON, legacy ``function_call`` and ``<tool_call>`` tags."""

    name = "tool-call"
    description = "tool/function calls in JSON (OpenAI tool_calls, function_call, <tool_call>)"
    reads = "tool-calls"
    families = ("tool",)

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        if '"name"' not in text:
            return []
        return [
            BehaviourHit(f"tool:{tool}", (start, end), tool)
            for tool, start, end in structured.find_tool_calls(text)
        ]


class EgressDetector(BehaviourDetector):
    """Outbound destinations: URLs, ``www.`` hosts, e-mail addresses and scp-style remotes."""

    name = "egress"
    description = "outbound destinations (URLs, www hosts, e-mail, user@host:path)"
    families = ("egress",)

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        hits = [
            BehaviourHit(tag, (start, end), host)
            for tag, start, end, host in structured.find_egress(text, lowered)
        ]
        hits.sort(key=lambda h: h.span)
        return hits


class SecretDetector(RuleDetector):
    """Credential material: known token formats (gitleaks) and credential-named literals."""

    name = "secret"
    description = "credentials and tokens (AWS, GitHub, Slack, OpenAI, Google, PEM, JWT, ...)"
    families = ("secret",)
    rules = secrets.SECRET_RULES

    def _detail(self, m: re.Match[str]) -> str:
        return f"{len(m.group(0))} characters (value withheld)"

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        hits = super()._detect(text, lowered)
        taken = [h.span for h in hits]
        for tag, start, end, key, n in secrets.find_generic(text, lowered, taken):
            hits.append(BehaviourHit(tag, (start, end), f"{key}: {n} characters (value withheld)"))
        hits.sort(key=lambda h: h.span)
        return hits


class InsecureCodeDetector(RuleDetector):
    """Insecure code idioms after Bandit's tests (ids cited in the rule table)."""

    name = "insecure-code"
    description = "insecure code (SQL built from strings, shell=True, eval, TLS off, ...)"
    families = ("code",)
    rules = code.CODE_RULES

    def _detail(self, m: re.Match[str]) -> str:
        if "val" in m.re.groupindex:  # hard-coded credential: do not copy the literal
            return "credential literal (value withheld)"
        return m.group(0)[:80]


class LeakageDetector(RuleDetector):
    """Revealed system prompts / internal instructions and confidential policy text."""

    name = "leakage"
    description = "system-prompt and confidential-policy leakage"
    families = ("leak",)
    rules = prose.LEAK_RULES


class RefusalDetector(RuleDetector):
    """First-person refusals of the request."""

    name = "refusal"
    description = "refusals (I can't help with that, As an AI ...)"
    families = ("refusal",)
    rules = prose.REFUSAL_RULES


class UnsafeActionDetector(RuleDetector):
    """Advice a support bot must never give (disable MFA, share an OTP, gift-card payment ...)."""

    name = "unsafe-action"
    description = "unsafe advice (disable MFA, share OTP/password, gift cards, run as admin)"
    families = ("unsafe",)
    rules = prose.UNSAFE_RULES
