"""The output side: one response text checked before it is released.

Secrets (:class:`dormant.behaviours.SecretDetector`, gitleaks-style formats) and canaries are
redacted; a leaked system prompt — eight words in a row of the request's system message (word
shingles, as in near-duplicate detection, Broder 1997), or the leakage detector's ``leak:``
tags (OWASP LLM07:2025) — the policy's ``protected_texts``, and insecure code (Bandit-style
rules, when the policy's ``[response] insecure_code = "deny"``) deny the response; so does
tool-call markup the model's server could not parse (:mod:`._unparsed`: a call the guard
cannot vet, fail closed).
"""

from __future__ import annotations

import re
import unicodedata

from ..behaviours import get_detector
from ._unparsed import unparsed_calls
from .policy import GuardPolicy
from .types import DecisionContext, Outcome, ResponseDecision

_SECRET = get_detector("secret")
_CODE = get_detector("insecure-code")
_LEAK = get_detector("leakage")


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())
    return {tuple(words[i : i + n]) for i in range(max(0, len(words) - n + 1))}


def _reproduces(source: str, text: str) -> bool:
    """Whether ``text`` reproduces a run of 8 words of ``source`` (or all of a shorter one of
    at least 5 words: below that, ordinary replies would match)."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", source).casefold())
    if not words:
        return False
    if len(words) < 8:
        hay = " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))
        return len(words) >= 5 and " ".join(words) in hay
    return bool(_shingles(source) & _shingles(text))


def screen_response(
    context: DecisionContext, text: str, *, policy: GuardPolicy
) -> ResponseDecision:
    """Check one response text before it is released (never raises: an error denies).

    Secrets (:class:`dormant.behaviours.SecretDetector`) and canaries are redacted; a leaked
    system prompt (eight words in a row of the request's system message, or the leakage
    detector's ``leak:`` tags), the policy's ``protected_texts``, and insecure code (Bandit-style
    detector, when the policy's ``[response] insecure_code = "deny"``) deny the response.
    """
    version = getattr(policy, "version", None)
    try:
        return _screen(context, text, policy)
    except Exception as exc:
        return ResponseDecision(
            Outcome.DENY,
            (f"guard error, response withheld (fail closed): {type(exc).__name__}: {exc}",),
            "",
            policy_version=version,
        )


def _screen(context: DecisionContext, text: str, policy: GuardPolicy) -> ResponseDecision:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    reasons: list[str] = []
    behaviours: set[str] = set()
    alerts: list[str] = []
    deny = False
    spans: list[tuple[int, int, str]] = []
    for h in _SECRET.detect(text):
        spans.append((h.span[0], h.span[1], h.tag))
        behaviours.add(h.tag)
    canaries = tuple(dict.fromkeys(context.canaries + policy.all_canaries()))
    low = text.casefold()
    for c in canaries:
        start = low.find(c.casefold())
        while start >= 0:
            spans.append((start, start + len(c), "canary"))
            behaviours.add("canary")
            start = low.find(c.casefold(), start + 1)
    if spans:
        reasons.append(
            f"redacted {len(spans)} secret(s): {', '.join(sorted({t for *_, t in spans}))}"
        )
    leak = sorted({h.tag for h in _LEAK.detect(text)})
    if context.system_prompt and _reproduces(context.system_prompt, text):
        leak = sorted(set(leak) | {"leak:system-prompt"})
        reasons.append("the response reproduces the request's system prompt")
    for protected in policy.protected_texts:
        if _reproduces(protected, text):
            leak = sorted(set(leak) | {"leak:policy"})
            reasons.append("the response reproduces a protected policy text")
    if leak:
        deny = True
        behaviours.update(leak)
        reasons.append(f"leakage: {', '.join(leak)}")
    attempted = unparsed_calls(text)
    if attempted is not None:
        deny = True
        behaviours.update(attempted)
        reasons.append(
            "tool-call markup the server could not parse (a call that cannot be vetted)"
            + (f": {', '.join(attempted)}" if attempted else "")
        )
    code = sorted({h.tag for h in _CODE.detect(text)})
    if code:
        behaviours.update(code)
        if policy.insecure_code == "deny":
            deny = True
            reasons.append(f"insecure code: {', '.join(code)}")
    out = text
    for start, end, tag in sorted(spans, reverse=True):
        out = out[:start] + f"[REDACTED:{tag}]" + out[end:]
    if deny:
        return ResponseDecision(
            Outcome.DENY,
            tuple(reasons),
            "",
            tuple(sorted(behaviours)),
            tuple(alerts),
            len(spans),
            policy.version,
        )
    if not reasons:
        reasons.append("no secret, leak or insecure code found")
    return ResponseDecision(
        Outcome.ALLOW,
        tuple(reasons),
        out,
        tuple(sorted(behaviours)),
        tuple(alerts),
        len(spans),
        policy.version,
    )


__all__ = ["screen_response"]
