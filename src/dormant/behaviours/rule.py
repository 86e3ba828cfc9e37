"""Rule machinery of :mod:`dormant.behaviours` (the vocabulary is documented there).

Each :class:`Rule` is a precompiled regular expression, the tag it emits, cheap lowercase
substring *prefilters* (the rule's regex runs only when one of them occurs in the lowercased
text) and an optional *check* that rejects a match (placeholder values, negated advice, a
literal argument). The tables live next to this module, each citing where its patterns come
from:

- secrets: gitleaks default rules (``config/gitleaks.toml``: ``aws-access-token``,
  ``github-pat``/``github-oauth``/``github-app-token``/``github-fine-grained-pat``,
  ``slack-*-token``, ``openai-api-key``, ``gcp-api-key``, ``private-key``, ``jwt``,
  ``generic-api-key``) and trufflehog's URI detector for ``scheme://user:pass@host``;
- insecure code: Bandit test ids (B102 exec, B103 permissive chmod, B105-B107 hard-coded
  passwords, B301/B302 pickle/marshal, B303/B324 weak hashes, B307 eval, B323 unverified SSL
  context, B501 requests ``verify=False``, B506 ``yaml.load``, B602/B605 shell, B608 SQL built
  from strings, B614 ``torch.load``) plus the Node/Go equivalents (``rejectUnauthorized``,
  ``InsecureSkipVerify``) and the ``curl | sh`` install idiom (CWE-494);
- refusals: the refusal-prefix lists of Zou et al. (2023, "Universal and Transferable
  Adversarial Attacks on Aligned Language Models", arXiv:2307.15043) and garak's
  ``mitigation.MitigationBypass`` detector, narrowed to first-person refusals;
- leakage and unsafe advice: OWASP LLM07:2025 (system prompt leakage) and the support-scam
  scripts of the FTC's consumer alerts (gift-card payment, "safe account" transfers, OTP sharing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Check = Callable[["re.Match[str]", str], bool]


@dataclass(frozen=True)
class Rule:
    """One pattern: ``tag`` is emitted for each match of ``regex`` that passes ``check``.

    The regex runs only when one of ``prefilter`` and (if given) one of ``also`` occur in the
    lowercased text, and (if given) ``gate`` matches somewhere in the text. ``anchored`` rules
    are tried only where a prefilter needle occurs (``regex.match`` at that position) instead of
    scanning every position: much faster for case-insensitive alternations.
    """

    tag: str
    regex: re.Pattern[str]
    prefilter: tuple[str, ...]
    check: Check | None = None
    also: tuple[str, ...] = ()
    gate: re.Pattern[str] | None = None
    anchored: bool = False


def rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile once, at import."""
    return re.compile(pattern, flags)


NOCASE = re.IGNORECASE


def words(text: str) -> frozenset[str]:
    """A word list written as one string."""
    return frozenset(text.split())


def matches(
    regex: re.Pattern[str], text: str, lowered: str, anchors: tuple[str, ...] = ()
) -> Iterator[re.Match[str]]:
    """Matches of ``regex``; with ``anchors``, only those starting where an anchor occurs."""
    if not anchors or len(lowered) != len(text):  # lower() changed offsets: scan everything
        yield from regex.finditer(text)
        return
    seen: set[int] = set()
    for anchor in anchors:
        i = lowered.find(anchor)
        while i >= 0:
            if i not in seen:
                seen.add(i)
                m = regex.match(text, i)
                if m is not None:
                    yield m
            i = lowered.find(anchor, i + 1)


def run_rules(
    rules: tuple[Rule, ...], text: str, lowered: str
) -> Iterator[tuple[Rule, re.Match[str]]]:
    """Every (rule, match) that passes the rule's prefilters, gate and check."""
    for rule in rules:
        # plain loops: cheaper than any(<generator>) on the per-record hot path; ``also``
        # (short, usually absent from prose: "=", "(") first
        if rule.also:
            for needle in rule.also:
                if needle in lowered:
                    break
            else:
                continue
        for needle in rule.prefilter:
            if needle in lowered:
                break
        else:
            continue
        if rule.gate is not None and rule.gate.search(text) is None:
            continue
        for m in matches(rule.regex, text, lowered, rule.prefilter if rule.anchored else ()):
            if rule.check is None or rule.check(m, text):
                yield rule, m


# ---------------------------------------------------------------- helpers used by checks

_PLACEHOLDER = rx(
    r"^(?:[$<{%*~]|\.{2,}|/|\\|x{3,}$)|your[_-]?|example|placeholder|changeme|change[_-]me"
    r"|redacted|dummy|sample|replace|xxxx|\*\*\*|\.\.\.|[<>]|\{\{|\$\{|%\(|environ|getenv"
    r"|process\.env|secret[_-]?here|key[_-]?here|token[_-]?here",
    NOCASE,
)
_TRIVIAL = words(
    "password passwd secret token apikey api_key none null undefined true false test string admin "
    "root user username changeme"
)


def nontrivial(value: str, *, min_len: int, need_digit: bool = False) -> bool:
    """A literal that looks like a real credential, not a placeholder or an empty default."""
    if len(value) < min_len or value.lower() in _TRIVIAL or _PLACEHOLDER.search(value):
        return False
    if len(set(value)) < 4:
        return False
    if need_digit:
        return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return True


_NEGATION = rx(
    r"\b(?:not|never|don['’]?t|doesn['’]?t|won['’]?t|shouldn['’]?t|cannot|can['’]?t|avoid"
    r"|no\s+one|nobody|refuse\s+to|without|warn\w*|scam\w*|fraud\w*)\b",
    NOCASE,
)
_SENTENCE_END = rx(r"[.!?](?=\s|$)|\n")


def not_negated(m: re.Match[str], text: str) -> bool:
    """True unless the clause before the match negates it ("never share your password")."""
    start = m.start()
    window = text[max(0, start - 80) : start]
    clause_start = max((e.end() for e in _SENTENCE_END.finditer(window)), default=0)
    return _NEGATION.search(window, clause_start) is None


#: prose that advises *against* a code idiom ("use a list instead of shell=True"); a bare
#: "not" is left out because code is full of ``if not ...``
_ADVISED_AGAINST = rx(
    r"\b(?:instead\s+of|avoid(?:ing)?|never|don['’]?t|do\s+not|rather\s+than|unlike|not\s+use"
    r"|insecure|unsafe|dangerous|vulnerable)\b",
    NOCASE,
)


def not_advised_against(check: Check | None) -> Check:
    """``check`` (if any) and: the clause before the match does not advise against it."""

    def combined(m: re.Match[str], text: str) -> bool:
        start = m.start()
        window = text[max(0, start - 80) : start]
        clause_start = max((e.end() for e in _SENTENCE_END.finditer(window)), default=0)
        if _ADVISED_AGAINST.search(window, clause_start) is not None:
            return False
        return check is None or check(m, text)

    return combined


#: an empty call, a plain string literal, or a number (``exec(2)``: a man-page reference)
_LITERAL_ARG = rx(r"""\s*(?:\)|\d+\)|[rbuRBU]?(?:"[^"\n]*"|'[^'\n]*')\s*[,)])""")


def nonliteral_arg(m: re.Match[str], text: str) -> bool:
    """The call's first argument is neither empty, a plain string literal nor a number."""
    return _LITERAL_ARG.match(text, m.end()) is None


def call_args(text: str, start: int, limit: int = 400) -> str:
    """Text of a call's arguments from just after ``(`` to its balanced ``)`` (bounded)."""
    depth = 1
    end = min(len(text), start + limit)
    for i in range(start, end):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return text[start:end]
