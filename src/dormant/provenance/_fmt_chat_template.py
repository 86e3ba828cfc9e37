"""Chat templates stored beside Hugging Face models: ``tokenizer_config.json`` and ``*.jinja``.

``transformers`` renders the ``chat_template`` of ``tokenizer_config.json`` (a string, or a
list of ``{"name", "template"}``) or the ``chat_template.jinja`` file on every
``apply_chat_template`` call, in Jinja's immutable sandbox; inference servers built on other
engines do not all sandbox it. The same checks as for GGUF templates apply
(:mod:`._jinja_check`); nothing is rendered.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..findings import Severity
from ._jinja_check import check_template

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

#: Largest tokenizer config or template file read (tokenizer configs with added tokens run to
#: a few megabytes).
MAX_TEXT_BYTES = 64 << 20


def _read_text(ctx: _Ctx, fh: Any, size: int, member: str, what: str) -> str | None:
    if size > MAX_TEXT_BYTES:
        ctx.add("unreadable", Severity.HIGH, f"{what} larger than 64 MiB", member)
        return None
    fh.seek(0)
    try:
        return bytes(fh.read(size)).decode("utf-8")
    except UnicodeDecodeError as exc:
        ctx.add("malformed", Severity.HIGH, f"{what} is not UTF-8 text: {exc}", member)
        return None


def scan_tokenizer_config(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Check the chat template(s) of a ``tokenizer_config.json``."""
    text = _read_text(ctx, fh, size, member, "tokenizer_config.json")
    if text is None:
        return
    try:
        config = json.loads(text)
    except ValueError as exc:
        ctx.add("malformed", Severity.HIGH, f"tokenizer_config.json is not JSON: {exc}", member)
        return
    except RecursionError:
        ctx.add("malformed", Severity.HIGH, "tokenizer_config.json is nested too deeply", member)
        return
    raw = config.get("chat_template") if isinstance(config, dict) else None
    templates: list[tuple[str, Any]] = []
    if isinstance(raw, str):
        templates.append(("chat_template", raw))
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            name = item.get("name", i) if isinstance(item, dict) else i
            templates.append(
                (f"chat_template[{name}]", item.get("template") if isinstance(item, dict) else item)
            )
    elif raw is not None:
        ctx.add("malformed", Severity.HIGH, "chat_template is neither a string nor a list", member)
    for key, template in templates:
        if not isinstance(template, str):
            ctx.add(
                "malformed", Severity.HIGH, f"tokenizer_config.json {key} is not a string", member
            )
            continue
        for hit in check_template(template):
            ctx.add(hit.kind, hit.severity, f"{key}: {hit.title}", member, name=hit.name)


def scan_jinja_file(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Check a ``chat_template.jinja`` (or any ``.jinja``) file."""
    text = _read_text(ctx, fh, size, member, "chat template file")
    if text is None:
        return
    for hit in check_template(text):
        ctx.add(hit.kind, hit.severity, f"chat template: {hit.title}", member, name=hit.name)
