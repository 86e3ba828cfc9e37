"""Insecure code idioms, after Bandit's tests (ids cited per rule) and CWE-494 (``curl | sh``).

Bandit (PyCQA): B102 exec, B103 permissive chmod, B105-B107 hard-coded passwords, B301/B302
pickle/marshal, B303/B324 weak hashes, B307 eval, B323 unverified SSL context, B501 requests
``verify=False``, B506 ``yaml.load``, B602/B605 shell, B608 SQL built from strings, B614
``torch.load``; plus the Node/Go equivalents (``rejectUnauthorized``, ``InsecureSkipVerify``).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .rule import NOCASE, Rule, call_args, nonliteral_arg, nontrivial, not_advised_against, rx
from .secrets import CODE_CRED_ANCHORS, CODE_CRED_WORD

#: a string literal starting at a quote; tried at *every* quote (an anchored rule), so that a
#: stray apostrophe or a Markdown fence earlier in the text cannot swallow the SQL literal
_SQL_LITERAL = rx(
    r"\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
    r"|(?<!`)`(?!`)[^`]*(?<!`)`(?!`)"
)
_FSTRING_PREFIX = rx(r"(?<![\w])(?:[fF][rR]?|[rR][fF])$")
#: SQL statement shapes. Gaps are bounded and the SELECT ... FROM gap is atomic, so that text
#: full of "select"/"from" costs linear time instead of cubic (nested lazy gaps backtrack)
_SQL_UPPER = rx(
    r"\b(?:SELECT\b(?>[^;]{0,200}?\bFROM)|INSERT\s+INTO|UPDATE\s+\S{1,64}\s+SET|DELETE\s+FROM)\b"
)
_SQL_ANY = rx(
    r"\b(?:select\b(?>[^;]{0,200}?\bfrom\b)[^;]{0,300}?\bwhere|insert\s+into\b[^;]{0,300}?\bvalues"
    r"|update\s+\S{1,64}\s+set\b[^;]{0,300}?\bwhere|delete\s+from\b[^;]{0,300}?\bwhere)\b",
    NOCASE,
)
_FSTRING_FIELD = rx(r"(?<!\{)\{[^{}\n]+\}")
_AFTER_CONCAT = rx(r"\s*(?:\+\s*[\w(\[$]|%\s*[\w(\[]|\.format\s*\()")
_BEFORE_CONCAT = rx(r"[\w)\]]\s*\+\s*$")


def _sql_check(m: re.Match[str], text: str) -> bool:
    """B608: a SQL string literal that is built from data (f-string, +, %, .format, ${})."""
    lit = m.group(0)
    body = lit[3:-3] if lit[:3] in ('"""', "'''") else lit[1:-1]
    if not (_SQL_UPPER.search(body) or _SQL_ANY.search(body)):
        return False
    is_f = _FSTRING_PREFIX.search(text, max(0, m.start() - 3), m.start()) is not None
    if is_f and _FSTRING_FIELD.search(body):
        return True
    if lit[0] == "`" and "${" in body:
        return True
    after = _AFTER_CONCAT.match(text, m.end())
    if after and (after.group(0).lstrip()[0] != "%" or re.search(r"%[sdr(]", body)):
        return True
    return _BEFORE_CONCAT.search(text[max(0, m.start() - 40) : m.start()]) is not None


_SAFE_YAML = rx(r"\b(?:C?SafeLoader|BaseLoader)\b")
_WEIGHTS_ONLY = rx(r"\bweights_only\s*=\s*True\b")


def _yaml_check(m: re.Match[str], text: str) -> bool:
    return _SAFE_YAML.search(call_args(text, m.end())) is None


def _torch_check(m: re.Match[str], text: str) -> bool:
    return _WEIGHTS_ONLY.search(call_args(text, m.end())) is None


_PW_WORD = rx(r"pass(?:word|wd|phrase)?|pwd|\bpw\b", NOCASE)


def _weak_hash_check(m: re.Match[str], text: str) -> bool:
    """B303/B324 narrowed to the brief's case: MD5/SHA-1 applied to a password on that line."""
    # the line of the match, at most 200 characters each side (long lines stay linear)
    lo = max(0, m.start() - 200)
    newline = text.rfind("\n", lo, m.start())
    if newline >= 0:
        lo = newline + 1
    hi = text.find("\n", m.end(), m.end() + 200)
    line = text[lo : hi if hi >= 0 else m.end() + 200]
    return _PW_WORD.search(line) is not None and "usedforsecurity=False" not in line


def _hardcoded_check(m: re.Match[str], text: str) -> bool:
    return nontrivial(m.group("val"), min_len=6)


_CODE_RULES: tuple[Rule, ...] = (
    Rule(
        "code:sql-injection",  # Bandit B608 hardcoded_sql_expressions
        _SQL_LITERAL,
        ('"', "'", "`"),
        _sql_check,
        also=("select", "insert", "update", "delete"),
        gate=rx(_SQL_UPPER.pattern + "|(?i:" + _SQL_ANY.pattern + ")"),
        anchored=True,
    ),
    Rule("code:shell-injection", rx(r"\bshell\s*=\s*True\b"), ("shell",), also=("=",)),  # B602
    Rule(  # B605 start_process_with_a_shell, with a non-constant command
        "code:shell-injection",
        rx(r"\bos\.(?:system|popen)\s*\("),
        ("os.system", "os.popen"),
        nonliteral_arg,
        also=("(",),
    ),
    Rule(  # B307 eval / B102 exec (not `model.eval()`, not `ast.literal_eval`)
        "code:eval",
        rx(r"(?<![\w.$])(?:eval|exec)\s*\("),
        ("eval", "exec"),
        nonliteral_arg,
        also=("(",),
    ),
    Rule(
        "code:tls-disabled",  # B501, B323, Node rejectUnauthorized, Go InsecureSkipVerify
        rx(
            r"\bverify\s*=\s*False\b|\bssl\._create_unverified_context\b"
            r"|(?:(?<![=!<>])=(?!=)|[(,:])\s*(?:ssl\.)?CERT_NONE\b"
            r"|\bcheck_hostname\s*=\s*False\b|\brejectUnauthorized[\"']?\s*:\s*false\b"
            r"|\bNODE_TLS_REJECT_UNAUTHORIZED[\"']?\s*[=:]\s*[\"']?0\b"
            r"|\bInsecureSkipVerify\s*:\s*true\b"
            r"|\b(?:disable_warnings|filterwarnings|simplefilter)\([^)\n]{0,200}InsecureRequestWarning"
            r"|\burllib3\.disable_warnings\(\s*\)"
            r"|\bcurl\s[^\n|]{0,300}?(?<=\s)(?:-[A-Za-z]*k[A-Za-z]*|--insecure)\b"
        ),
        (
            "verify=",
            "verify =",
            "unverified",
            "cert_none",
            "check_hostname",
            "rejectunauthorized",
            "tls_reject",
            "insecureskipverify",
            "insecurerequestwarning",
            "disable_warnings",
            "--insecure",
            " -k",
        ),
        also=("=", ":", "(", "-k"),
    ),
    Rule(  # B105/B106/B107: a credential literal assigned, passed or compared in code
        "code:hardcoded-credential",
        rx(
            CODE_CRED_WORD
            + r"(?:[\"']\])?\s*(?:==|=)(?!=)\s*[rbu]?(?P<q>[\"'])(?P<val>[^\"'\s\\]{1,200})(?P=q)",
            NOCASE,
        ),
        CODE_CRED_ANCHORS,
        _hardcoded_check,
        also=("=",),
        anchored=True,
    ),
    Rule(  # B301 pickle/dill/jsonpickle, B302 marshal
        "code:unsafe-deserialization",
        rx(
            r"\b(?:c?pickle|_pickle|dill|cloudpickle|marshal)\.(?:loads?|Unpickler)\s*\("
            r"(?!\s*(?:c?pickle|_pickle|dill|cloudpickle|marshal)\.dumps\()"  # a round trip
            r"|\bjsonpickle\.decode\s*\(|\byaml\.unsafe_load(?:_all)?\s*\(|\ballow_pickle\s*=\s*True\b",
            NOCASE,
        ),
        ("pickle", "dill", "marshal", "unsafe_load"),
        also=("(", "="),
    ),
    Rule(  # B506 yaml_load without a safe Loader
        "code:unsafe-deserialization",
        rx(r"\byaml\.load(?:_all)?\s*\("),
        ("yaml.load",),
        _yaml_check,
        also=("(",),
    ),
    Rule(  # B614 pytorch_load without weights_only=True
        "code:unsafe-deserialization",
        rx(r"\btorch\.load\s*\("),
        ("torch.load",),
        _torch_check,
        also=("(",),
    ),
    Rule(  # B303/B324 md5/sha1 (hashlib, hashlib.new, Node createHash, Java MessageDigest)
        "code:weak-hash",
        rx(
            r"\b(?:md5|sha1)(?:_?hex)?\s*\(|\bhashlib\.new\(\s*[\"'](?:md5|sha1)[\"']"
            r"|\bcreateHash\(\s*[\"'](?:md5|sha1)[\"']|\bgetInstance\(\s*\"(?:MD5|SHA-?1)\"",
            NOCASE,
        ),
        ("md5", "sha1", "sha-1"),
        _weak_hash_check,
        also=("(",),
    ),
    Rule(  # B103 set_bad_file_permissions: write bit for "other"
        "code:world-writable",
        rx(
            r"\bchmod\s+(?:-[A-Za-z]+\s+)*(?:[0-7]?[0-7]{2}[2367]\b|[ugo]*[oa][ugo]*\+[rxX]*w)"
            r"|\bos\.chmod\([^)\n]{0,200},\s*(?:0[oO]?)?[0-7]?[0-7]{2}[2367]\b"
            r"|\bos\.chmod\([^)\n]{0,200}\bS_IWOTH\b"
        ),
        ("chmod", "s_iwoth"),
    ),
    Rule(  # CWE-494 download-and-execute: curl|sh, bash <(curl), iex (iwr ...)
        "code:pipe-to-shell",
        rx(
            r"\b(?:curl|wget)\b[^\n|;&]{0,300}\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|k|da|fi)?sh\b"
            r"|\b(?:curl|wget)\b[^\n|;&]{0,300}\|\s*(?:sudo\s+)?python3?\b"
            r"|\b(?:ba|z)?sh\s+(?:-c\s+)?[\"']?(?:<|\$)\(\s*(?:curl|wget)\b"
            r"|\b(?:iex|Invoke-Expression)\b[^\n]{0,120}?(?:DownloadString|\biwr\b|\birm\b"
            r"|Invoke-WebRequest|Invoke-RestMethod)"
            r"|\b(?:iwr|irm|Invoke-WebRequest|Invoke-RestMethod)\b[^\n|]{0,300}\|\s*(?:iex|Invoke-Expression)\b",
            NOCASE,
        ),
        ("curl", "wget", "iex", "invoke-expression"),
    ),
)

#: every code rule also stays silent where the prose around it advises against the idiom
#: ("pass a list instead of shell=True", "never use verify=False")
CODE_RULES: tuple[Rule, ...] = tuple(
    replace(rule, check=not_advised_against(rule.check)) for rule in _CODE_RULES
)
