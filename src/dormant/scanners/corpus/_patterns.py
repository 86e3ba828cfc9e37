"""Pattern families of directives aimed at a model, matched on a folded copy of the passage.

The families follow the indirect prompt-injection taxonomy of Greshake et al., "Not what you've
signed up for: Compromising Real-World LLM-Integrated Applications with Indirect Prompt
Injection" (AISec 2023) and OWASP LLM01:2025: override the approved sources or prior
instructions, call a tool, send data to a destination, reveal the system prompt, take on another
role, and text that addresses the model itself. They are evidence, not verdicts: a strong match
is a directive only when the encoder reads its passage as nearer a directive than a discussion
exemplar, and a weak or quoted match raises the prior weight of the passage in the weighted
Benjamini-Hochberg test (both in :mod:`._semantic`). So a manual page that says "call the
function" or an essay that quotes "ignore previous instructions" is not flagged by the pattern
alone. A match preceded in its sentence by "such as", "e.g.", "phrases like" and an opening
quote, or by a reporting verb whose object is the model ("told the assistant to", "make a
chatbot"), is *quoted*: text about a directive, not one.

Text is folded before matching (NFKC, invisible characters dropped, confusable letters mapped
to Latin, lower case, as :func:`dormant.text.skeleton`), keeping for each folded character its
offset in the original, so spans point into the passage as the user has it.
:func:`dormant.text.skeleton` itself returns no offset map, hence :func:`fold`.

Destinations (URLs, e-mail, hosts) come from :class:`dormant.behaviours.EgressDetector` and
tool calls in JSON from :class:`dormant.behaviours.ToolCallDetector`; a destination counts as
a directive only after a sending verb in the same sentence.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ...behaviours import get_detector
from ...triggers import HOMOGLYPH_TO_LATIN, is_invisible

#: families whose match is strong evidence, and those that ordinary technical prose also uses
STRONG = ("override", "reveal", "role", "exfiltrate", "address-model")
WEAK = ("tool",)

_D = r"(?:all |any |the |your |every |of |these |those |its |my |prior |previous |above )*"
_FAMILIES: dict[str, tuple[str, ...]] = {
    "override": (
        r"\b(?:ignore|disregard|forget|override|bypass|skip|discard|set aside)\b\W+"
        + _D
        + r"(?:previous|prior|above|earlier|preceding|original|approved|official|system|other|"
        r"existing|given|provided|retrieved|cited|trusted)?\s*(?:instructions?|directions|"
        r"directives|rules|guidelines|sources?|context|documents?|prompts?|guardrails|"
        r"polic(?:y|ies)|references|citations|knowledge base)\b",
        r"\bdo not (?:use|trust|rely on|cite|consult|follow|mention) "
        + _D
        + r"(?:approved|official|other|provided|retrieved|original|trusted|cited) "
        r"(?:sources?|documents?|context|references|instructions)\b",
        r"\b(?:instead|from now on),? (?:only )?(?:follow|obey|use|trust|cite|answer with)\b",
        r"\b(?:new|updated|real|actual|true) instructions?\s*(?::|follow|are)\b",
    ),
    "reveal": (
        r"\b(?:reveal|print|output|repeat|show|disclose|display|share|tell (?:me|the user)|"
        r"write out|leak|recite|dump)\b.{0,40}?\b(?:system prompt|system message|"
        r"(?:initial|hidden|original|internal|secret|full) (?:instructions|prompt|rules)|"
        r"your (?:instructions|prompt|rules|configuration)|developer (?:message|instructions)|"
        r"prompt above)",
    ),
    "role": (
        r"\byou are (?:now|no longer)\b",
        r"\bfrom now on,? you\b",
        r"\b(?:act|behave|respond) as (?:if you (?:were|are)|an? |the )",
        r"\bpretend (?:to be|you are|that you)\b",
        r"\b(?:enter|switch to|enable) (?:developer|debug|god|admin|dan|jailbreak) mode\b",
        r"(?:^|\W)(?:\[system\]|<\|im_start\|>|<<sys>>|### (?:system|instruction)|"
        r"system\s*:\s*you)",
    ),
    "address-model": (
        r"\b(?:note|message|instructions?|attention) (?:to|for) (?:the |any )?(?:ai|assistant|"
        r"language model|llm|chatbot|model|agent|bot)\b",
        r"\bif you are an? (?:ai|assistant|language model|llm|chatbot|agent|bot)\b",
        r"\b(?:dear|hey|attention|important:?) (?:ai|assistant|llm|chatbot|agent|model)\b",
        r"\b(?:ai|assistant|llm|chatbot|agent) (?:reading|processing|summari[sz]ing) this\b",
        r"\bwhen (?:you|the assistant|the model) (?:answer|respond|reply|summari[sz]e)",
    ),
    "tool": (
        r"\b(?:call|invoke|run|execute|trigger|use)\b (?:the )?[\w.-]{0,30} ?"
        r"(?:tool|function|plugin|api|command|action)\b",
        r"\b(?:call|invoke|execute)\s+[a-z_][\w.]*\(",
    ),
}
#: a sending verb, a sensitive object, then "to"/"at"/"into"/"via" just before the destination
_SEND_TO = re.compile(
    r"\b(?:send|forward|post|upload|e-?mail|transmit|exfiltrate|leak|report|copy|submit|"
    r"relay|share|paste|pass|deliver|mail)\b(?!:)[^.!?]{0,80}?\b(?:data|details|passwords?|"
    r"credentials?|keys?|tokens?|history|conversations?|transcripts?|chats?|messages|"
    r"secrets?|cookies|codes?|otp|personal|account|logins?|e-?mails|contacts|"
    r"information|prompt|instructions|everything)\b[^.!?]{0,60}?\b(?:to|at|into|via|on)\b"
    r"[^.!?]{0,40}$"
)
_COMPILED = {fam: tuple(re.compile(p, re.DOTALL) for p in pats) for fam, pats in _FAMILIES.items()}
#: a match preceded by one of these (in the same sentence) is quoted, not addressed
_QUOTE_CUE = re.compile(
    r"(?:such as|e\.g\.|for example|for instance|like|phrases?|strings?|called|"
    r"known as|text|wrote|writes|says?|said|instructions such as)\W{0,4}[\"'“‘«]\W{0,2}$"
)
#: ... or reported: the model is the third-person object of a reporting verb ("told the
#: assistant to ignore", "make a chatbot reveal", "asks them to disregard")
_REPORTED = re.compile(
    r"\b(?:tells?|told|telling|ask(?:s|ed|ing)?|instruct\w*|mak(?:e|es|ing)|made|gets?|got|"
    r"trick\w*|caus\w*|convinc\w*|persuad\w*|lets?|forc\w*|coax\w*|manipulat\w*|lead\w*|"
    r"led)\s+(?:the |a |an |its |their |this |that |such )?(?:models?|assistants?|chatbots?|"
    r"agents?|llms?|ai|bots?|systems?|them|it|victims?)(?:\s+to)?\s*$"
)
_SENTENCE_END = re.compile(r"[.!?\n]\s|\n")
_EGRESS = get_detector("egress")
_TOOLS = get_detector("tool-call")


@dataclass(frozen=True)
class PatternHit:
    """One directive-pattern match: family, span in the original passage, matched text, and
    whether it is quoted or reported (third-person text about a directive)."""

    family: str
    span: tuple[int, int]
    text: str
    quoted: bool = False


def fold(text: str) -> tuple[str, list[int]]:
    """Folded ``text`` and, per folded character, its offset in ``text``.

    NFKC per character, invisible characters dropped, confusables to Latin
    (:data:`dormant.triggers.HOMOGLYPH_TO_LATIN`), lower case.
    """
    if text.isascii():
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if is_invisible(ch):
            continue
        for c in unicodedata.normalize("NFKC", ch):
            c = HOMOGLYPH_TO_LATIN.get(c, c).lower()
            out.append(c)
            where.extend([i] * len(c))
    return "".join(out), where


def _orig_span(where: list[int], start: int, end: int, n: int) -> tuple[int, int]:
    if not where:
        return (0, 0)
    s = where[min(start, len(where) - 1)]
    e = where[end - 1] + 1 if end > 0 else s
    return (s, min(max(e, s), n))


def _sentence_start(folded: str, pos: int) -> int:
    start = 0
    for m in _SENTENCE_END.finditer(folded, 0, pos):
        start = m.end()
    return start


def find_directives(text: str) -> list[PatternHit]:
    """Directive-pattern hits in ``text`` (spans in ``text``), ordered by position."""
    folded, where = fold(text)
    hits: list[PatternHit] = []
    for fam, pats in _COMPILED.items():
        for pat in pats:
            for m in pat.finditer(folded):
                before = folded[_sentence_start(folded, m.start()) : m.start()]
                quoted = bool(_QUOTE_CUE.search(before[-60:]) or _REPORTED.search(before[-60:]))
                span = _orig_span(where, m.start(), m.end(), len(text))
                hits.append(PatternHit(fam, span, text[span[0] : span[1]][:120], quoted))
    for hit in _EGRESS.detect(text):
        lo = max(0, hit.span[0] - 160)
        window = text[lo : hit.span[0]].lower()
        cut = max(window.rfind(". "), window.rfind("\n"), window.rfind(": <"))
        clause = window[cut + 1 :] if cut >= 0 else window
        send = _SEND_TO.search(clause)
        if send:
            s = lo + (cut + 1 if cut >= 0 else 0) + send.start()
            hits.append(PatternHit("exfiltrate", (s, hit.span[1]), text[s : hit.span[1]][:120]))
    for hit in _TOOLS.detect(text):
        hits.append(PatternHit("tool", hit.span, hit.detail, False))
    hits.sort(key=lambda h: (h.span, h.family))
    return hits


def prior_class(hits: list[PatternHit]) -> str:
    """``strong`` (an unquoted strong family), ``weak`` (tool verbs or quoted) or ``none``."""
    if any(h.family in STRONG and not h.quoted for h in hits):
        return "strong"
    return "weak" if hits else "none"
