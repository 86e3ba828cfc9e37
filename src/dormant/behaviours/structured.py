"""Structured behaviours: tool calls in JSON and outbound destinations (URLs, e-mail).

Tool-call shapes follow the OpenAI Chat Completions API (``tool_calls`` and the legacy
``function_call``), the Hermes/Qwen ``<tool_call>`` convention, Llama 3.1 JSON tool calls
(``{"name": ..., "parameters": ...}``) and Anthropic ``tool_use`` blocks. Registrable domains come
from the Public Suffix List (https://publicsuffix.org) bundled by ``publicsuffixlist``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .rule import words

JSON_START = re.compile(r'\{\s*"')
DECODER = json.JSONDecoder()
_TOOL_NAME = re.compile(r"[A-Za-z_][\w.\-]{0,127}")
WRAP_OPEN = re.compile(r"<tool_call>\s*$")
WRAP_CLOSE = re.compile(r"\s*</tool_call>")


_BARE_CALL_KEYS = frozenset({"name", "arguments", "parameters", "type", "id", "call_id"})


def _name(value: object) -> str | None:
    if isinstance(value, str) and _TOOL_NAME.fullmatch(value):
        return value
    return None


def tool_names(obj: Any, wrapped: bool, depth: int = 0) -> Iterator[str]:
    """Names of the tool calls in a decoded JSON value (recognised shapes only)."""
    if depth > 8:
        return
    if isinstance(obj, list):
        for item in obj:
            yield from tool_names(item, wrapped, depth + 1)
        return
    if not isinstance(obj, dict):
        return
    calls = obj.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                fn = call.get("function")
                found = _name(fn.get("name")) if isinstance(fn, dict) else _name(call.get("name"))
                if found:
                    yield found
        return
    legacy = obj.get("function_call")
    if isinstance(legacy, dict) and (found := _name(legacy.get("name"))):
        yield found
        return
    fn = obj.get("function")
    if isinstance(fn, dict) and "arguments" in fn and (found := _name(fn.get("name"))):
        yield found
        return
    found = _name(obj.get("name"))
    if found and (
        wrapped
        or obj.get("type") == "tool_use"
        or (
            # a bare call is exactly name + arguments/parameters (+ id/type): larger records
            # that merely have a "name" and "parameters" (API responses, configs) are not calls
            obj.keys() <= _BARE_CALL_KEYS
            and ("arguments" in obj or ("parameters" in obj and not _is_schema(obj["parameters"])))
        )
    ):
        yield found
        return
    for value in obj.values():
        if isinstance(value, dict | list):
            yield from tool_names(value, False, depth + 1)


def _is_schema(params: object) -> bool:
    return isinstance(params, dict) and "properties" in params and "type" in params


URL = re.compile(
    r"\b(?:https?|ftps?|sftp|wss?)://(?:[^\s/?#@\[\]\"'<>]{1,256}@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[\w\-.%~]+)(?::\d{1,5})?(?:[/?#][^\s\"'<>`]*)?",
    re.IGNORECASE,
)
WWW = re.compile(r"(?<![\w./@-])www\.(?P<host>(?:[\w-]+\.)+[A-Za-z]{2,24})\b", re.IGNORECASE)
EMAIL = re.compile(
    r"(?<![\w.+\-/:%])(?:mailto:)?[A-Za-z0-9][\w.+\-]{0,63}@"
    r"(?P<host>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?P<tld>[A-Za-z]{2,24}))"
    r"(?![\w-])(?P<scp>:(?=[\w~./-]))?"
)
URL_TRAILING = ".,;:!?)]}'\"*"
#: e-mail domains must end in a ccTLD (two letters) or one of these, so that matrix products
#: such as ``x@self.weight`` are not read as addresses
EMAIL_TLDS = words(
    "com org net edu gov mil int info biz name pro io ai app dev xyz online site tech store cloud "
    "email mail example test invalid local localhost internal corp lan top club live shop support "
    "services security systems solutions company agency digital network museum aero coop jobs "
    "mobi travel"
)


def registrable_domain(host: str) -> str:
    """Lower-cased registrable part of ``host``; IP literals are returned whole."""
    host = host.lower().strip(".")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare.replace(".", "").isdigit() or ":" in bare:
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            return host
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    labels = [lab for lab in host.split(".") if lab]
    joined = ".".join(labels)
    if len(labels) <= 2:
        return joined
    # None when the host is itself a public suffix (``s3.amazonaws.com``): keep it whole
    return _public_suffixes().privatesuffix(joined) or joined


@lru_cache(maxsize=1)
def _public_suffixes() -> Any:
    """The Public Suffix List (ICANN and private sections) as bundled by ``publicsuffixlist``.

    Read from the package's own snapshot, never fetched; loaded once (about 0.2 s).
    """
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def _end_of_nesting(text: str, start: int) -> int:
    """Index just after the bracket structure opening at ``start`` (or the end of ``text``)."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def find_tool_calls(text: str) -> Iterator[tuple[str, int, int]]:
    """``(tool name, start, end)`` for each tool call; the span covers its JSON object and a
    surrounding ``<tool_call>...</tool_call>`` wrapper."""
    pos = 0
    while (m := JSON_START.search(text, pos)) is not None:
        start = m.start()
        try:
            obj, end = DECODER.raw_decode(text, start)
        except ValueError:
            # Not JSON from here: the expected outcome of probing a candidate, not a failure.
            pos = start + 1
            continue
        except RecursionError:
            # Nested deeper than the interpreter allows (no real tool call is): skip the whole
            # structure at once, else every inner candidate would recurse again (quadratic).
            pos = _end_of_nesting(text, start)
            continue
        wrap = WRAP_OPEN.search(text, max(0, start - 40), start)
        span_start, span_end = start, end
        if wrap is not None:
            span_start = wrap.start()
            close = WRAP_CLOSE.match(text, end)
            span_end = close.end() if close else end
        for tool in dict.fromkeys(tool_names(obj, wrap is not None)):
            yield tool, span_start, span_end
        pos = end


def find_egress(text: str, lowered: str) -> Iterator[tuple[str, int, int, str]]:
    """``(tag, start, end, host)`` for each URL, ``www.`` host, e-mail or ``user@host:path``."""
    if "://" in text:
        for m in URL.finditer(text):
            domain = registrable_domain(m.group("host"))
            if domain:
                end = m.end()
                while end > m.end("host") and text[end - 1] in URL_TRAILING:
                    end -= 1
                yield f"egress:{domain}", m.start(), end, m.group("host")
    if "www." in lowered:
        for m in WWW.finditer(text):
            host = m.group("host")
            yield f"egress:{registrable_domain(host)}", m.start(), m.end(), host
    if "@" in text:
        for m in EMAIL.finditer(text):
            tld = m.group("tld").lower()
            if len(tld) != 2 and tld not in EMAIL_TLDS:
                continue
            host = m.group("host")
            domain = registrable_domain(host)
            if m.group("scp"):  # git@github.com:org/repo.git is ssh, not mail
                yield f"egress:{domain}", m.start("host"), m.end("host"), host
            else:
                yield f"egress:mailto:{domain}", m.start(), m.end("host"), host
