"""The request side of :mod:`.openai_server`: a chat-completions body checked into a job.

Every field is checked against the OpenAI Chat Completions API reference; a bad one is a
:class:`~._http.RequestError` (400, or 404 for an unknown model) whose message names the field,
what was expected and what was received. The server's own settings are checked here too
(:func:`_check_settings`), with the same validators.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DataFormatError
from ..subjects.agent import ChatMessage, ChatResponse, ToolSpec
from ._http import RequestError

#: ``max_tokens`` when a request does not say (capped by ``max_tokens_limit``)
DEFAULT_MAX_TOKENS = 128


@dataclass
class Job:
    """One validated chat request waiting for the model worker."""

    key: str
    messages: list[ChatMessage]
    tools: tuple[ToolSpec, ...]
    max_tokens: int
    temperature: float
    seed: int
    stream: bool = False
    include_usage: bool = False
    future: Future[tuple[ChatResponse, dict[str, int]]] = field(default_factory=Future)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def parse_request(body: Any, *, model_name: str, max_tokens_limit: int) -> Job:
    """Check one ``/v1/chat/completions`` body; the job for the model worker (raises
    :class:`RequestError` naming the field)."""
    if not isinstance(body, dict):
        raise RequestError(
            400,
            f"The request body must be a JSON object. Got a JSON {type(body).__name__}.",
        )
    model = body.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise RequestError(
                400, f"'model' must be a string. Got {json.dumps(model)[:80]}.", param="model"
            )
        if model != model_name:
            raise RequestError(
                404,
                f"The model '{model}' does not exist; this server serves '{model_name}'.",
                param="model",
                code="model_not_found",
            )
    stream, include_usage = _parse_stream(body)
    n = body.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise RequestError(400, f"'n' must be 1 (one choice per request). Got {n!r}.", param="n")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestError(
            400,
            "'messages' is required: a non-empty list of {'role', 'content'} objects."
            + ("" if raw_messages is None else f" Got {json.dumps(raw_messages)[:80]}."),
            param="messages",
        )
    messages: list[ChatMessage] = []
    for i, raw in enumerate(raw_messages):
        try:
            messages.append(ChatMessage.from_openai(raw))
        except DataFormatError as exc:
            raise RequestError(400, f"messages[{i}]: {exc}", param=f"messages[{i}]") from None
        except (TypeError, ValueError, AttributeError) as exc:  # e.g. 'tool_calls': 5
            raise RequestError(
                400,
                f"messages[{i}] is not an OpenAI chat message ({exc}); expected "
                "{'role', 'content', 'tool_calls': [...]}.",
                param=f"messages[{i}]",
            ) from None
    tools = _parse_tools(body)
    max_tokens = _parse_max_tokens(body, max_tokens_limit)
    temperature = body.get("temperature")
    if temperature is None:
        temperature = 0.0
    if not _is_number(temperature) or not 0 <= temperature <= 2:
        raise RequestError(
            400,
            f"'temperature' must be a number from 0 to 2. Got {json.dumps(temperature)}.",
            param="temperature",
        )
    seed = body.get("seed")
    if seed is None:
        seed = 0
    if not _is_int(seed):
        raise RequestError(
            400, f"'seed' must be an integer. Got {json.dumps(seed)[:80]}.", param="seed"
        )
    key = json.dumps(
        [[t.to_openai() for t in tools], max_tokens, float(temperature), int(seed)],
        sort_keys=True,
    )
    return Job(
        key,
        messages,
        tools,
        max_tokens,
        float(temperature),
        int(seed),
        stream=stream,
        include_usage=include_usage,
    )


def _parse_tools(body: dict[str, Any]) -> tuple[ToolSpec, ...]:
    raw_tools = body.get("tools")
    if raw_tools is None:
        raw_tools = []
    if not isinstance(raw_tools, list):
        raise RequestError(
            400,
            "'tools' must be a list of {'type': 'function', 'function': {...}} objects. "
            f"Got {json.dumps(raw_tools)[:80]}.",
            param="tools",
        )
    tools: list[ToolSpec] = []
    for i, raw in enumerate(raw_tools):
        try:
            tools.append(ToolSpec.from_openai(raw))
        except DataFormatError as exc:
            raise RequestError(400, f"tools[{i}]: {exc}", param=f"tools[{i}]") from None
        except (TypeError, ValueError, AttributeError) as exc:  # e.g. 'parameters': "x"
            raise RequestError(
                400,
                f"tools[{i}] is not an OpenAI tool definition ({exc}); expected "
                "{'type': 'function', 'function': {'name', 'description', 'parameters': "
                "{JSON Schema object}}}.",
                param=f"tools[{i}]",
            ) from None
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("auto", "none"):
        raise RequestError(
            400,
            "'tool_choice' must be 'auto' or 'none' (this server cannot force a call). "
            f"Got {json.dumps(choice)[:80]}.",
            param="tool_choice",
        )
    return () if choice == "none" else tuple(tools)


def _parse_max_tokens(body: dict[str, Any], max_tokens_limit: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or not 1 <= value <= max_tokens_limit:
            raise RequestError(
                400,
                f"'{name}' must be an integer from 1 to {max_tokens_limit}. "
                f"Got {json.dumps(value)[:80]}.",
                param=name,
            )
        return int(value)
    return min(DEFAULT_MAX_TOKENS, max_tokens_limit)


def _parse_stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """``stream`` and ``stream_options.include_usage`` of a request, checked."""
    stream = body.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError(
            400, f"'stream' must be true or false. Got {json.dumps(stream)[:80]}.", param="stream"
        )
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise RequestError(
            400, "'stream_options' is only allowed with 'stream': true.", param="stream_options"
        )
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise RequestError(
            400,
            "'stream_options' must be an object with at most 'include_usage' (true or false). "
            f"Got {json.dumps(options)[:80]}.",
            param="stream_options",
        )
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise RequestError(
            400,
            f"'stream_options.include_usage' must be true or false. Got {json.dumps(include)}.",
            param="stream_options.include_usage",
        )
    return stream, include


def _check_settings(
    host: Any,
    port: Any,
    model_name: Any,
    api_key: Any,
    max_body_bytes: Any,
    max_tokens_limit: Any,
    batch_window_ms: Any,
    max_batch: Any,
) -> None:
    """The settings of :class:`~.openai_server.ChatServer`, checked before it binds a port."""
    if not isinstance(host, str) or not host:
        raise ConfigError(f"The 'host' parameter must be a non-empty str. Got {host!r} instead.")
    if not _is_int(port) or not 0 <= port <= 65535:
        raise ConfigError(
            f"The 'port' parameter must be an int from 0 (any free port) to 65535. "
            f"Got {port!r} instead."
        )
    for pname, sval in (("model_name", model_name), ("api_key", api_key)):
        if sval is not None and (not isinstance(sval, str) or not sval):
            raise ConfigError(
                f"The '{pname}' parameter must be a non-empty str or None. Got {sval!r} instead."
            )
    for pname, ival in (
        ("max_body_bytes", max_body_bytes),
        ("max_tokens_limit", max_tokens_limit),
        ("max_batch", max_batch),
    ):
        if not _is_int(ival) or ival < 1:
            raise ConfigError(f"The '{pname}' parameter must be an int >= 1. Got {ival!r} instead.")
    if not _is_number(batch_window_ms) or batch_window_ms < 0:
        raise ConfigError(
            f"The 'batch_window_ms' parameter must be a number >= 0. Got {batch_window_ms!r} "
            "instead."
        )
