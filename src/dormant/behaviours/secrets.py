"""Credential material: gitleaks default rules and trufflehog's URI detector.

gitleaks (``config/gitleaks.toml``): ``aws-access-token``, ``github-pat``, ``github-oauth``,
``github-app-token``, ``github-refresh-token``, ``github-fine-grained-pat``, ``slack-*-token``,
``openai-api-key``, ``gcp-api-key``, ``private-key``, ``jwt`` and ``generic-api-key`` (here:
a credential-named key assigned a non-trivial literal, Bandit B105's notion of a password
string). trufflehog's URI detector: ``scheme://user:password@host``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .rule import NOCASE, Rule, matches, nontrivial, rx


def _aws_check(m: re.Match[str], text: str) -> bool:
    # gitleaks' allowlist: AWS documentation keys end in EXAMPLE (AKIAIOSFODNN7EXAMPLE).
    return not m.group(0).endswith("EXAMPLE")


def _key_body_check(m: re.Match[str], text: str) -> bool:
    body = m.group("body")
    return nontrivial(body, min_len=20, need_digit=True) and len(set(body)) >= 10


def _url_cred_check(m: re.Match[str], text: str) -> bool:
    return nontrivial(m.group("pw"), min_len=4) and m.group("pw").lower() not in {"pass", "pwd"}


#: credential words; a match starts at one of them and the key is then widened to the whole
#: identifier (``client_secret``, ``DB_PASSWORD``), which keeps the regex anchored and fast
_CRED_WORD = (
    r"(?:password|passwd|pwd|secret(?:[_-]?key)?|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key)"
)
_KEYWORDS = ("password", "passwd", "pwd", "secret", "token")
_SEPARATED = tuple(
    f"{a}{s}{b}"
    for a, b in (("api", "key"), ("access", "key"), ("private", "key"))
    for s in ("_", "-", "")
)
CRED_ANCHORS = _KEYWORDS + _SEPARATED
#: in code, a bare ``token`` is usually NLP (``token = "[CLS]"``): only qualified tokens count
_TOKENS = tuple(f"{a}{s}token" for a in ("auth", "access", "api", "bearer") for s in ("_", "-", ""))
CODE_CRED_WORD = (
    r"(?:password|passwd|pwd|secret(?:[_-]?key)?|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|(?:auth|access|api|bearer)[_-]?token)"
)
CODE_CRED_ANCHORS = ("password", "passwd", "pwd", "secret", *_SEPARATED, *_TOKENS)
_PASSWORDISH = rx(r"pass|pwd", NOCASE)


_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-$")
#: identifiers whose "token" is not a credential (pagination, NLP, config)
_NOT_CREDENTIAL = rx(
    r"next|page|continuation|cursor|export|sync|request|idempot|lock|max_?|min_?|num_?|eos|bos"
    r"|pad",
    NOCASE,
)
_UUID = rx(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", NOCASE)


def ident_start(text: str, pos: int) -> int:
    """Start of the identifier that ends with the credential word found at ``pos``."""
    while pos > 0 and text[pos - 1] in _IDENT_CHARS:
        pos -= 1
    return pos


def generic_kind(key: str) -> str:
    """``secret:password`` for password-like names, else ``secret:generic``."""
    return "secret:password" if _PASSWORDISH.search(key) else "secret:generic"


def generic_value_ok(key: str, value: str) -> bool:
    if _NOT_CREDENTIAL.search(key) or _UUID.match(value):  # ids, pagination, NLP tokens
        return False
    if _PASSWORDISH.search(key):
        return nontrivial(value, min_len=6)
    return nontrivial(value, min_len=10, need_digit=True)


#: Known token formats; ``secret:password`` / ``secret:generic`` are matched separately by
#: GENERIC_SECRET so that a value already recognised here is not tagged twice.
SECRET_RULES: tuple[Rule, ...] = (
    Rule(  # gitleaks aws-access-token
        "secret:aws_key",
        rx(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
        ("akia", "asia", "abia", "acca", "a3t"),
        _aws_check,
    ),
    Rule(  # gitleaks github-pat, github-oauth, github-app-token, github-refresh-token
        "secret:github_token",
        rx(r"\bgh[pousr]_[0-9A-Za-z]{36}\b|\bgithub_pat_\w{82}\b"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Rule(  # gitleaks slack-bot-token / slack-user-token / slack-legacy-*
        "secret:slack_token",
        rx(r"\bxox[abposr]-\d+-[0-9A-Za-z-]{8,}"),
        ("xox",),
    ),
    Rule(  # gitleaks openai-api-key (sk-, sk-proj-, sk-svcacct-; Anthropic sk-ant- alike)
        "secret:openai_key",
        rx(r"\bsk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?(?P<body>[A-Za-z0-9_-]{20,})"),
        ("sk-",),
        _key_body_check,
    ),
    Rule(  # gitleaks gcp-api-key
        "secret:google_api_key",
        rx(r"\bAIza[\w-]{35}(?![\w-])"),
        ("aiza",),
    ),
    Rule(  # gitleaks private-key
        "secret:private_key",
        rx(r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
        ("private key",),
    ),
    Rule(  # gitleaks jwt
        "secret:jwt",
        rx(r"\beyJ[A-Za-z0-9_-]{15,}\.eyJ[A-Za-z0-9_-]{15,}\.(?:[A-Za-z0-9_-]{10,})?"),
        ("eyj",),
    ),
    Rule(  # trufflehog URI detector: credentials in a URL's userinfo
        "secret:url_credentials",
        rx(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s:/@\"'<>]{1,64}:(?P<pw>[^\s:/@\"'<>]{1,128})@", NOCASE),
        ("://",),
        _url_cred_check,
        also=("@",),
    ),
)

#: gitleaks generic-api-key / Bandit B105: ``<credential name> = "literal"`` in code, JSON, YAML
#: or config (quoted), and ``NAME=value`` in env files (unquoted, upper-case names).
GENERIC_SECRET = (
    rx(
        # anchored on the credential word (a lazy identifier prefix made this regex 5x slower);
        # the caller widens the key to the whole identifier
        r"(?P<key>" + _CRED_WORD + r")[\"'\]]?\s*"
        r"(?:==|:=|=>|=|:)\s*[rbu]?(?P<q>[\"'`])(?P<val>[^\"'`\s\\]{1,200})(?P=q)",
        NOCASE,
    ),
    rx(
        r"(?m)^[ \t]*(?:export[ \t]+)?(?P<key>[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|API_KEY"
        r"|APIKEY|TOKEN|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY))[ \t]*[=:][ \t]*"
        r"(?P<val>[^\s\"'#]{8,200})[ \t]*$"
    ),
)


def find_generic(
    text: str, lowered: str, taken: list[tuple[int, int]]
) -> Iterator[tuple[str, int, int, str, int]]:
    """``(tag, start, end, key, value length)`` for credential-named literals whose value does
    not overlap a span in ``taken`` (already tagged by a specific format); extends ``taken``."""
    if ("=" not in text and ":" not in text) or not any(a in lowered for a in CRED_ANCHORS):
        return
    quoted, env = GENERIC_SECRET
    for source in (matches(quoted, text, lowered, CRED_ANCHORS), env.finditer(text)):
        for m in source:
            start = ident_start(text, m.start("key"))
            key, value = text[start : m.end("key")], m.group("val")
            vs, ve = m.span("val")
            if any(s < ve and vs < e for s, e in taken) or not generic_value_ok(key, value):
                continue
            taken.append((start, m.end()))
            yield generic_kind(key), start, m.end(), key, len(value)
