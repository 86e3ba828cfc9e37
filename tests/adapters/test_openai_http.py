"""OpenAIChat against real loopback HTTP servers: correct, flaky, slow, malformed, refused."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dormant.adapters import openai_http
from dormant.adapters.openai_http import OpenAIChat
from dormant.errors import ConfigError, EndpointError
from dormant.subjects.agent import ChatMessage, ChatModel, ToolSpec

# (status, headers, body bytes) for the n-th request (0-based) and its parsed JSON body
Answer = Callable[[int, dict[str, Any]], tuple[int, dict[str, str], bytes]]


def completion(content: str | None = "hello", tool_calls: list[Any] | None = None) -> bytes:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        msg["tool_calls"] = tool_calls
    return json.dumps(
        {
            "id": "cmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
        }
    ).encode()


@contextmanager
def serve(answer: Answer, *, delay: float = 0.0) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback server on port 0; yields its /v1 URL and the list of request bodies seen."""
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                body = json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
                self._send(200, {}, body)
            else:
                self._send(404, {}, b"{}")

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(n) or b"{}")
            with lock:
                i = len(seen)
                seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            if delay:
                stop.wait(delay)
            status, headers, out = answer(i, body)
            self._send(status, headers, out)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(openai_http, "_sleep", waits.append)
    return waits


MSGS = [ChatMessage("system", "You are a support bot."), ChatMessage("user", "Where is #12?")]
TOOLS = [
    ToolSpec(
        "lookup_order",
        "Look up an order",
        {"type": "object", "properties": {"order_id": {"type": "string"}}},
    )
]


def test_correct_server_text_and_tool_calls_round_trip(delays: list[float]) -> None:
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id": "12"}'},
        }
    ]

    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if body.get("tools"):
            return 200, {}, completion(None, calls)
        return 200, {}, completion("Your order shipped.")

    with serve(answer) as (url, seen):
        chat = OpenAIChat(url, model="m", api_key="k-123")
        assert isinstance(chat, ChatModel)
        assert chat.capabilities == {"generate", "tools"}
        r = chat.chat(MSGS, tools=TOOLS, max_tokens=32, temperature=0.0, seed=7)
        assert r.content == ""
        assert [(c.name, c.arguments, c.id) for c in r.tool_calls] == [
            ("lookup_order", {"order_id": "12"}, "c1")
        ]
        plain = chat.chat(MSGS)
        assert plain.content == "Your order shipped." and not plain.tool_calls
        ref = chat.ref()
        assert ref.digest.startswith("sha256:") and ref.kind == "llm"
        assert OpenAIChat(url, model="other").ref().digest != ref.digest
        chat.close()
    req = seen[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer k-123"
    assert req["model"] == "m" and req["max_tokens"] == 32 and req["seed"] == 7
    assert req["messages"][0] == {"role": "system", "content": "You are a support bot."}
    assert req["tools"][0]["function"]["name"] == "lookup_order"
    assert "tools" not in seen[1]
    assert delays == []


def test_batch_keeps_order_and_runs_concurrently(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, completion("echo " + body["messages"][-1]["content"])

    convs = [[ChatMessage("user", f"q{i}")] for i in range(12)]
    with (
        serve(answer, delay=0.05) as (url, seen),
        OpenAIChat(url, model="m", concurrency=4) as chat,
    ):
        out = chat.chat_batch(convs)
    assert [r.content for r in out] == [f"echo q{i}" for i in range(12)]
    assert len(seen) == 12


def test_flaky_server_succeeds_after_retries(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if i < 2:
            return 503, {}, b'{"error": "warming up"}'
        return 200, {}, completion("ok")

    with serve(answer) as (url, seen):
        r = OpenAIChat(url, model="m", retries=3, backoff=0.5).chat(MSGS)
    assert r.content == "ok"
    assert len(seen) == 3
    assert len(delays) == 2
    assert 0 <= delays[0] <= 0.5 and 0 <= delays[1] <= 1.0  # full jitter under 0.5 * 2**k


def test_retry_after_is_honoured_on_429(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if i == 0:
            return 429, {"Retry-After": "2"}, b'{"error": "rate limited"}'
        return 200, {}, completion("ok")

    with serve(answer) as (url, _):
        assert OpenAIChat(url, model="m").chat(MSGS).content == "ok"
    assert delays == [2.0]


def test_always_failing_server_gives_retryable_error_naming_url(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return 500, {}, b'{"error": "boom in the backend"}'

    with serve(answer) as (url, seen), pytest.raises(EndpointError) as ei:
        OpenAIChat(url, model="m", retries=2).chat(MSGS)
    assert ei.value.retryable
    assert "/v1/chat/completions" in str(ei.value) and "3 attempt" in str(ei.value)
    assert "HTTP 500" in str(ei.value) and "boom in the backend" in str(ei.value)
    assert len(seen) == 3 and len(delays) == 2


def test_client_error_is_not_retried(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return 404, {}, b'{"error": "model m not found"}'

    with serve(answer) as (url, seen), pytest.raises(EndpointError) as ei:
        OpenAIChat(url, model="m", retries=3).chat(MSGS)
    assert not ei.value.retryable
    assert "HTTP 404" in str(ei.value) and "model m not found" in str(ei.value)
    assert len(seen) == 1 and delays == []


def test_slow_server_times_out_after_retries(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, completion("too late")

    with serve(answer, delay=2.0) as (url, seen), pytest.raises(EndpointError) as ei:
        OpenAIChat(url, model="m", timeout=0.2, retries=1).chat(MSGS)
    assert ei.value.retryable
    assert "timed out" in str(ei.value) and url in str(ei.value)
    assert len(seen) == 2 and len(delays) == 1


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (b"<html>502 bad gateway</html>", "not JSON"),
        (b'{"object": "chat.completion"}', "no 'choices'"),
        (b'{"choices": []}', "no 'choices'"),
        (b'{"choices": [{"index": 0}]}', "without a 'message'"),
        (b"[1, 2]", "JSON list"),
    ],
)
def test_malformed_answers_are_endpoint_errors(
    body: bytes, expect: str, delays: list[float]
) -> None:
    with serve(lambda i, b: (200, {}, body)) as (url, seen), pytest.raises(EndpointError) as ei:
        OpenAIChat(url, model="m").chat(MSGS)
    assert not ei.value.retryable
    assert expect in str(ei.value) and url in str(ei.value)
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("call", "expect"),
    [
        ({"type": "function", "function": {"name": "x", "arguments": "{not json"}}, "not JSON"),
        ({"type": "function", "function": {"arguments": "{}"}}, "A tool call must be"),
        ({"type": "function", "function": {"name": "x", "arguments": "[1]"}}, "JSON object"),
    ],
)
def test_invalid_tool_calls_are_endpoint_errors(
    call: dict[str, Any], expect: str, delays: list[float]
) -> None:
    answer = completion(None, [call])
    with serve(lambda i, b: (200, {}, answer)) as (url, _), pytest.raises(EndpointError) as ei:
        OpenAIChat(url, model="m").chat(MSGS, tools=TOOLS)
    assert "invalid tool call" in str(ei.value) and expect in str(ei.value)
    assert url in str(ei.value)


def test_connection_refused_is_retried_then_fails(delays: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EndpointError) as ei:
        OpenAIChat(f"http://127.0.0.1:{port}/v1", model="m", retries=2).chat(MSGS)
    assert ei.value.retryable and "could not connect" in str(ei.value)
    assert str(port) in str(ei.value)
    assert len(delays) == 2


def test_batch_raises_the_first_failure(delays: list[float]) -> None:
    def answer(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if body["messages"][-1]["content"] == "q3":
            return 400, {}, b'{"error": "bad request"}'
        return 200, {}, completion("ok")

    convs = [[ChatMessage("user", f"q{i}")] for i in range(8)]
    with serve(answer) as (url, _), pytest.raises(EndpointError, match="HTTP 400"):
        OpenAIChat(url, model="m", concurrency=3).chat_batch(convs)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"base_url": "ftp://x/v1"}, "base_url"),
        ({"base_url": "127.0.0.1:8000"}, "base_url"),
        ({"model": ""}, "model"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    args: dict[str, Any] = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs}
    with pytest.raises(ConfigError, match=f"'{param}'"):
        OpenAIChat(args.pop("base_url"), **args)
