"""Behaviour detectors shared by every stage: one output in, a small set of tags out.

The data scan tags each response of an instruction dataset, the agent red-team tags model
generations and tool calls, and the runtime guard decides on live requests, all with this one
vocabulary. Structured tool calls from an API are passed as their JSON text, e.g.
``json.dumps({"tool_calls": message.tool_calls})``.

Tag vocabulary (``family:value``; :func:`tag_family` returns the part before ``:``)
-----------------------------------------------------------------------------------
``tool:<name>``
    A tool/function call in OpenAI-compatible JSON: ``{"tool_calls": [{"type": "function",
    "function": {"name": ..., "arguments": ...}}]}``, legacy ``{"function_call": {"name": ...}}``,
    bare ``{"name": ..., "arguments"|"parameters": ...}`` (Hermes / Llama 3.1 style; a tool
    *definition* with a JSON-schema ``parameters`` is not a call), Anthropic-style
    ``{"type": "tool_use", "name": ...}``, and ``<tool_call>{...}</tool_call>`` wrappers (where
    ``name`` alone suffices). JSON only (``json`` decoder on candidate substrings; never ``eval``).
``egress:<domain>``
    A URL (``http(s)``, ``ftp(s)``, ``sftp``, ``ws(s)``) or a bare ``www.`` host, and
    ``user@host:path`` (scp/git over ssh). The domain is lower-cased and reduced to its
    registrable part: one label below its public suffix (``co.uk``, ``com.au``, ``github.io``
    ... from the Public Suffix List bundled by ``publicsuffixlist``, ICANN and private sections;
    a host that is itself a public suffix is kept whole). IP literals are kept whole:
    ``egress:10.0.0.5``, ``egress:[::1]``.
``egress:mailto:<domain>``
    An e-mail address (and ``mailto:`` links), with the registrable domain as above.
``secret:<kind>``
    Credential material in the output, kinds ``aws_key``, ``github_token``, ``slack_token``,
    ``openai_key`` (``sk-``/``sk-proj-``/``sk-ant-``), ``google_api_key``, ``private_key``
    (PEM header), ``jwt``, ``url_credentials`` (``scheme://user:pass@host``), ``password`` and
    ``generic`` (a credential-named key assigned a non-trivial literal, e.g.
    ``api_key = "..."``; placeholders such as ``"<your key>"`` or ``os.environ[...]`` do not
    count). Patterns follow gitleaks' default rules and trufflehog's URI detector.
``code:<kind>``
    Insecure code, after Bandit's tests (PyCQA; ids in parentheses): ``sql-injection`` (B608:
    a SQL literal built with an f-string, ``+``, ``%`` or ``.format``), ``shell-injection``
    (B602/B604 ``shell=True``; B605 ``os.system``/``os.popen`` with a non-constant command),
    ``eval`` (B307/B102, non-literal argument), ``tls-disabled`` (B501/B323 ``verify=False``,
    unverified contexts, ``CERT_NONE``, ``InsecureRequestWarning`` suppression; Node
    ``rejectUnauthorized: false``, Go ``InsecureSkipVerify``, ``curl -k``),
    ``hardcoded-credential`` (B105-B107: a credential literal *assigned, passed or compared in
    code*; it co-occurs with ``secret:password``/``secret:generic``, which also fire on config
    text), ``unsafe-deserialization`` (B301/B302 pickle/marshal, B506 ``yaml.load`` without a
    safe loader, B614 ``torch.load`` without ``weights_only=True``), ``weak-hash`` (B303/B324:
    MD5/SHA-1 on a line that handles a password), ``world-writable`` (B103) and
    ``pipe-to-shell`` (``curl ... | sh``, ``iex (iwr ...)``; CWE-494). An idiom in a clause that
    advises against it ("pass a list instead of ``shell=True``") does not fire.
``leak:system-prompt`` / ``leak:policy``
    The output reveals internal instructions ("my system prompt is:", "as instructed by my
    developer", echoed ``<<SYS>>`` turns) or confidential policy (upper-case ``CONFIDENTIAL``
    markings, ``INTERNAL USE ONLY``, "internal policy", "do not share this with customers").
    Ordinary uses of "policy" ("our refund policy") do not fire (OWASP LLM07:2025).
``refusal``
    A first-person refusal ("I can't help with that", "I'm sorry, but I cannot assist with this
    request", "As an AI language model"); "I can't find your order" does not fire.
``unsafe:action``
    Support-bot advice that harms the user: disable MFA/2FA or antivirus, share a password, OTP
    or recovery phrase, pay with gift cards / wire money to a "safe account", run a downloaded
    file as administrator. Negated advice ("never share your password") does not fire.

Precision is preferred to recall throughout: tags are outcomes of a statistical test, and a
detector that fires on ordinary prose floods it. Known limits: regexes see text, not program
semantics (a sanitised f-string SQL query still fires; SQL built over several statements does
not); the public-suffix list is the snapshot the installed package bundles; secrets that
match no known format or key name are missed; paraphrased refusals and leaks are missed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from ._behaviour_rules import code, prose, secrets, structured
from ._behaviour_rules.base import Rule, run_rules
from .errors import ConfigError, InputError

__all__ = [
    "BEHAVIOUR_CATEGORY",
    "DETECTORS",
    "BehaviourDetector",
    "BehaviourHit",
    "EgressDetector",
    "InsecureCodeDetector",
    "LeakageDetector",
    "RefusalDetector",
    "RuleDetector",
    "SecretDetector",
    "ToolCallDetector",
    "UnsafeActionDetector",
    "behaviour_tags",
    "detect_behaviours",
    "registrable_domain",
    "tag_family",
]

registrable_domain = structured.registrable_domain


@dataclass(frozen=True)
class BehaviourHit:
    """One behaviour found in an output: its tag, character span and a short detail.

    ``text[span[0]:span[1]]`` is the matched substring. ``detail`` never repeats secret
    material (it says what kind and how long, not the value).
    """

    tag: str
    span: tuple[int, int]
    detail: str = ""


class BehaviourDetector:
    """Base class: maps one output text to :class:`BehaviourHit` records.

    Subclasses set ``name``, ``description`` and ``families`` (the tag families they emit) and
    override :meth:`detect`, or, to share the lowercased text that :func:`behaviour_tags`
    computes once for all detectors, ``_detect(text, lowered)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    families: ClassVar[tuple[str, ...]] = ()

    def detect(self, text: str) -> list[BehaviourHit]:
        """All hits in ``text``, in order of position."""
        if not isinstance(text, str):
            raise InputError(
                f"The 'text' parameter of {type(self).__name__}.detect must be a str. "
                f"Got {type(text).__name__} instead."
            )
        return self._detect(text, text.lower())

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        raise NotImplementedError(f"{type(self).__name__} must implement detect(text)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RuleDetector(BehaviourDetector):
    """Runs a table of precompiled rules, each gated by cheap substring prefilters."""

    rules: ClassVar[tuple[Rule, ...]] = ()

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        hits = [
            BehaviourHit(rule.tag, m.span(), self._detail(m))
            for rule, m in run_rules(self.rules, text, lowered)
        ]
        hits.sort(key=lambda h: h.span)
        return hits

    def _detail(self, m: re.Match[str]) -> str:
        return m.group(0)[:80]


class ToolCallDetector(BehaviourDetector):
    """Tool calls in OpenAI-compatible JSON, legacy ``function_call`` and ``<tool_call>`` tags."""

    name = "tool-call"
    description = "tool/function calls in JSON (OpenAI tool_calls, function_call, <tool_call>)"
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


#: every built-in detector, in the order they run
DETECTORS: tuple[BehaviourDetector, ...] = (
    ToolCallDetector(),
    EgressDetector(),
    SecretDetector(),
    InsecureCodeDetector(),
    LeakageDetector(),
    RefusalDetector(),
    UnsafeActionDetector(),
)

#: tag family -> category key of ``dormant/data/mappings.json`` for findings about that behaviour
BEHAVIOUR_CATEGORY: dict[str, str] = {
    "tool": "agent-trigger",
    "egress": "agent-trigger",
    "code": "agent-trigger",
    "unsafe": "agent-trigger",
    "refusal": "agent-trigger",
    "secret": "secret-exposure",
    "leak": "prompt-leakage",
}


def tag_family(tag: str) -> str:
    """The family of a tag: the part before the first ``:`` (``"egress:a.b"`` -> ``"egress"``).

    A tag without ``:`` (``"refusal"``) is its own family.
    """
    return tag.partition(":")[0]


def _chosen(
    text: object, detectors: Iterable[BehaviourDetector] | None, func: str
) -> tuple[BehaviourDetector, ...]:
    if not isinstance(text, str):
        raise InputError(
            f"The 'text' parameter of {func} must be a str. Got {type(text).__name__} instead."
        )
    if detectors is None:
        return DETECTORS
    if isinstance(detectors, BehaviourDetector | str):
        raise ConfigError(
            f"The 'detectors' parameter of {func} must be an iterable of BehaviourDetector "
            f"instances. Got a single {type(detectors).__name__} instead."
        )
    chosen = tuple(detectors)
    for det in chosen:
        if not isinstance(det, BehaviourDetector):
            raise ConfigError(
                f"The 'detectors' parameter of {func} must hold BehaviourDetector instances. "
                f"Got {type(det).__name__} instead."
            )
    return chosen


def _run(det: BehaviourDetector, text: str, lowered: str) -> list[BehaviourHit]:
    # a subclass that overrides only detect() is called through it
    if type(det).detect is BehaviourDetector.detect:
        return det._detect(text, lowered)
    return det.detect(text)


def detect_behaviours(
    text: str, *, detectors: Iterable[BehaviourDetector] | None = None
) -> list[BehaviourHit]:
    """Every behaviour hit in ``text``, ordered by position.

    Parameters
    ----------
    text:
        One output: a response, a generation, or tool calls as JSON text.
    detectors:
        Detectors to run; :data:`DETECTORS` (all built-ins) when ``None``.

    Returns
    -------
    list of BehaviourHit
        One hit per occurrence (a tag may appear several times), ordered by span.

    Raises
    ------
    InputError
        ``text`` is not a ``str``.
    ConfigError
        ``detectors`` holds something other than :class:`BehaviourDetector` instances.
    """
    chosen = _chosen(text, detectors, "detect_behaviours")
    lowered = text.lower()
    hits: list[BehaviourHit] = []
    for det in chosen:
        hits.extend(_run(det, text, lowered))
    hits.sort(key=lambda h: (h.span, h.tag))
    return hits


def behaviour_tags(
    text: str, *, detectors: Iterable[BehaviourDetector] | None = None
) -> frozenset[str]:
    """The set of behaviour tags in ``text`` (e.g. ``egress:evil.example``); the fast path.

    Lowercases the text once for all detectors, and each rule's regex runs only when its cheap
    substring prefilters occur, so ordinary prose costs a few dozen substring tests.

    Parameters
    ----------
    text:
        One output: a response, a generation, or tool calls as JSON text.
    detectors:
        Detectors to run; :data:`DETECTORS` (all built-ins) when ``None``.

    Raises
    ------
    InputError
        ``text`` is not a ``str``.
    ConfigError
        ``detectors`` holds something other than :class:`BehaviourDetector` instances.
    """
    chosen = _chosen(text, detectors, "behaviour_tags")
    lowered = text.lower()
    tags: set[str] = set()
    for det in chosen:
        for hit in _run(det, text, lowered):
            tags.add(hit.tag)
    return frozenset(tags)
