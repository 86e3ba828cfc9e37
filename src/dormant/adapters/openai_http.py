"""A :class:`~dormant.subjects.agent.ChatModel` over any OpenAI-compatible chat endpoint.

Speaks ``POST {base_url}/chat/completions`` as vLLM, Ollama, llama.cpp's server, LiteLLM and
``dormant serve-model`` do, with tool definitions in the OpenAI ``tools`` shape. Transient
failures (connection refused or reset, timeouts, HTTP 429 and 5xx) are retried with capped
exponential backoff and full jitter (the AWS Architecture Blog's "Exponential Backoff And
Jitter", 2015), honouring ``Retry-After`` (RFC 9110 section 10.2.3); a 4xx other than 429, or
an answer that is not the documented shape, fails at once with an
:class:`~dormant.errors.EndpointError` that names the URL and what was wrong, with a short
excerpt of the body.

``httpx`` is imported lazily; without it the constructor raises
:class:`~dormant.errors.MissingDependencyError` naming the ``agent`` extra.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, DataFormatError, EndpointError, MissingDependencyError
from ..findings import SubjectRef
from .chat import ChatMessage, ChatResponse, ToolCall, ToolSpec

__all__ = ["OpenAIChat"]

#: the longest wait a ``Retry-After`` header may impose before one retry
MAX_RETRY_AFTER = 60.0
#: the longest backoff between two attempts without ``Retry-After``
MAX_BACKOFF = 30.0
_EXCERPT = 200


def _sleep(seconds: float) -> None:
    """Wait between attempts (a module function so tests can record the delays)."""
    time.sleep(seconds)


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - exercised when the extra is absent
        raise MissingDependencyError(
            "'httpx' is required to probe an OpenAI-compatible endpoint but is not installed; "
            "install it with: pip install 'dormant[agent]'"
        ) from exc
    return httpx


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIChat:
    """Chat with a model served behind an OpenAI-compatible ``/v1/chat/completions``.

    Parameters
    ----------
    base_url:
        The API root, e.g. ``http://127.0.0.1:8000/v1`` (a URL that already ends in
        ``/chat/completions`` is used as it is).
    model:
        The ``model`` field sent with every request.
    api_key:
        Sent as ``Authorization: Bearer <key>`` when given.
    timeout:
        Seconds per request (connect, read and write each).
    retries:
        Further attempts after a transient failure (0 disables retrying).
    backoff:
        Base of the exponential backoff in seconds: attempt ``k`` waits a uniform random time
        in ``[0, backoff * 2**k]`` (capped at 30 s), or what ``Retry-After`` asks (capped at
        60 s).
    concurrency:
        Requests in flight at once in :meth:`chat_batch`.

    Raises
    ------
    ConfigError
        A setting has the wrong type or value.
    MissingDependencyError
        ``httpx`` is not installed.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 4,
    ) -> None:
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                "The 'base_url' parameter of OpenAIChat must be an http(s) URL such as "
                f"'http://127.0.0.1:8000/v1'. Got {base_url!r} instead."
            )
        if not isinstance(model, str) or not model:
            raise ConfigError(
                f"The 'model' parameter of OpenAIChat must be a non-empty str. Got {model!r}."
            )
        for pname, val, lo in (("timeout", timeout, 0.0), ("backoff", backoff, 0.0)):
            if isinstance(val, bool) or not isinstance(val, int | float) or val < lo:
                raise ConfigError(
                    f"The '{pname}' parameter of OpenAIChat must be a number >= {lo}. "
                    f"Got {val!r} instead."
                )
        if timeout <= 0:
            raise ConfigError(
                f"The 'timeout' parameter of OpenAIChat must be > 0. Got {timeout!r}."
            )
        for pname, ival, ilo in (("retries", retries, 0), ("concurrency", concurrency, 1)):
            if isinstance(ival, bool) or not isinstance(ival, int) or ival < ilo:
                raise ConfigError(
                    f"The '{pname}' parameter of OpenAIChat must be an int >= {ilo}. "
                    f"Got {ival!r} instead."
                )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.concurrency = concurrency
        self.name = model
        self._httpx = _httpx()
        if self.base_url.endswith("/chat/completions"):
            self.url = self.base_url
            self._root = self.base_url[: -len("/chat/completions")]
        else:
            self.url = self.base_url + "/chat/completions"
            self._root = self.base_url
        self._client: Any = None
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._ref: SubjectRef | None = None

    # -- protocol -------------------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        """``{"generate", "tools"}``."""
        return frozenset({"generate", "tools"})

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> ChatResponse:
        """One completion for one conversation.

        Raises
        ------
        EndpointError
            The endpoint failed after the retries (``retryable=True``), refused the request
            with a 4xx, or answered with something that is not a chat completion.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages],
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "seed": int(seed),
        }
        if tools:
            body["tools"] = [t.to_openai() for t in tools]
        return self._parse(self._post(body))

    def chat_batch(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[ChatResponse]:
        """Completions for many conversations, ``concurrency`` requests at a time, in order.

        The first failure cancels the requests not yet started and is raised.
        """
        convs = list(conversations)
        if len(convs) <= 1 or self.concurrency == 1:
            return [
                self.chat(c, tools=tools, max_tokens=max_tokens, temperature=temperature, seed=seed)
                for c in convs
            ]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(convs))) as pool:
            futures = [
                pool.submit(
                    self.chat,
                    c,
                    tools=tools,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                )
                for c in convs
            ]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for fut in futures:
                if fut.done() and fut.exception() is not None:
                    for p in pending:
                        p.cancel()
                    raise fut.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def ref(self) -> SubjectRef:
        """Digest: ``sha256`` of the base URL, the model name and the ``/models`` answer if any."""
        if self._ref is None:
            listing = ""
            try:
                resp = self._get_client().get(self._root + "/models", timeout=min(self.timeout, 5))
                if resp.status_code == 200:
                    listing = json.dumps(resp.json(), sort_keys=True)
            except Exception:  # the listing is optional: many servers do not offer it
                listing = ""
            h = hashlib.sha256()
            for part in (self.base_url, self.model, listing):
                h.update(part.encode("utf-8") + b"\n")
            self._ref = SubjectRef(
                kind="llm", name=f"{self.model} @ {self.base_url}", digest="sha256:" + h.hexdigest()
            )
        return self._ref

    def close(self) -> None:
        """Close the HTTP connection pool."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIChat({self.base_url!r}, model={self.model!r})"

    # -- transport ------------------------------------------------------------------------

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                httpx = self._httpx
                headers = {"Accept": "application/json"}
                if self.api_key:
                    headers["Authorization"] = f"Bearer {self.api_key}"
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    headers=headers,
                    limits=httpx.Limits(
                        max_connections=self.concurrency,
                        max_keepalive_connections=self.concurrency,
                    ),
                    follow_redirects=False,
                    trust_env=False,
                )
            return self._client

    def _post(self, body: dict[str, Any]) -> Any:
        """POST with retries; the parsed JSON answer."""
        httpx = self._httpx
        client = self._get_client()
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            wait_for: float | None = None
            try:
                resp = client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                last = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"could not connect ({type(exc).__name__}: {exc})"
            else:
                status = resp.status_code
                if status == 200:
                    return self._json(resp)
                text = _excerpt(resp.text)
                if status == 429 or status >= 500:
                    last = f"HTTP {status}: {text!r}"
                    wait_for = _retry_after(resp.headers.get("Retry-After"))
                else:
                    raise EndpointError(
                        f"POST {self.url} was refused with HTTP {status} (not retried): "
                        f"{text!r}. Check the model name {self.model!r}, the API key and the "
                        "request shape the server expects.",
                        retryable=False,
                    )
            if attempt + 1 < attempts:
                if wait_for is None:
                    wait_for = self._rng.uniform(0, min(MAX_BACKOFF, self.backoff * 2**attempt))
                _sleep(min(wait_for, MAX_RETRY_AFTER))
        raise EndpointError(
            f"POST {self.url} failed after {attempts} attempt(s): {last}.", retryable=True
        )

    def _json(self, resp: Any) -> Any:
        try:
            return json.loads(resp.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EndpointError(
                f"POST {self.url} answered HTTP 200 with a body that is not JSON ({exc}): "
                f"{_excerpt(resp.text)!r}.",
                retryable=False,
            ) from None

    def _parse(self, obj: Any) -> ChatResponse:
        """A :class:`ChatResponse` from a chat-completion object; errors name what is missing."""

        def bad(what: str) -> EndpointError:
            shown = _excerpt(json.dumps(obj, ensure_ascii=False, default=str))
            return EndpointError(
                f"POST {self.url} answered with {what}; expected an OpenAI chat completion "
                f"{{'choices': [{{'message': {{...}}}}]}}. Got {shown!r}.",
                retryable=False,
            )

        if not isinstance(obj, dict):
            raise bad(f"a JSON {type(obj).__name__} instead of an object")
        if "error" in obj and "choices" not in obj:
            raise bad("an error object")
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("no 'choices'")
        first = choices[0]
        msg = first.get("message") if isinstance(first, dict) else None
        if not isinstance(msg, dict):
            raise bad("a choice without a 'message' object")
        content = msg.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if content is not None and not isinstance(content, str):
            raise bad(f"a 'content' of type {type(content).__name__}")
        raw_calls = msg.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise bad("'tool_calls' that is not a list")
        calls: list[ToolCall] = []
        for raw in raw_calls:
            try:
                calls.append(ToolCall.from_openai(raw))
            except DataFormatError as exc:
                raise EndpointError(
                    f"POST {self.url} answered with an invalid tool call: {exc}",
                    retryable=False,
                ) from None
        if not calls and isinstance(msg.get("function_call"), dict):  # legacy shape
            try:
                calls.append(ToolCall.from_openai({"function": msg["function_call"]}))
            except DataFormatError as exc:
                raise EndpointError(
                    f"POST {self.url} answered with an invalid function call: {exc}",
                    retryable=False,
                ) from None
        finish = first.get("finish_reason") or ("tool_calls" if calls else "stop")
        return ChatResponse(
            content=content or "", tool_calls=tuple(calls), finish_reason=str(finish), raw=obj
        )
