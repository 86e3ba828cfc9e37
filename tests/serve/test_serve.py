"""``dormant serve-model`` and dormant.serve: a real server on loopback over a real tiny model.

The model is the two-layer GPT-2 of tests/_tiny_chat.py (trained once per session): it calls
``lookup_order`` when asked where an order is and answers greetings in plain text.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _tiny_chat import GREETING_ANSWER, SYSTEM, TOOLS, one_torch_thread, tiny_chat_model

from dormant.adapters.causal_lm import CausalLMChat, load_causal_lm
from dormant.adapters.openai_http import OpenAIChat
from dormant.errors import ConfigError, EndpointError
from dormant.findings import SubjectRef
from dormant.serve import ChatServer, serve
from dormant.subjects.agent import ChatMessage, ChatResponse

pytestmark = pytest.mark.slow

ASK = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "where is order 1234?"}]
HELLO = [{"role": "user", "content": "hello"}]
TOOLS_JSON = [t.to_openai() for t in TOOLS]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model, trained once per session (shared with test_causal_lm.py)."""
    return tiny_chat_model(tmp_path_factory.getbasetemp() / "tiny-chat-model")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def chat_model(tiny_dir: Path) -> CausalLMChat:
    return load_causal_lm(tiny_dir, name="tiny")


@pytest.fixture(scope="module")
def server_log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def server(chat_model: CausalLMChat, server_log: io.StringIO) -> Iterator[ChatServer]:
    with ChatServer(chat_model, log=server_log, max_body_bytes=4096) as s:
        yield s


@pytest.fixture(scope="module")
def api(server: ChatServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url.removesuffix("/v1"), timeout=60) as client:
        yield client


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    """The OpenAI error object of a response, after checking status and shape."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert "Traceback" not in resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


# -- through dormant's own OpenAI client ----------------------------------------------------


def test_openai_client_gets_the_tool_call_and_the_text_answer(server: ChatServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/v1" and server.port > 0
    with OpenAIChat(server.url, model="tiny", retries=0) as client:
        call = client.chat(
            [ChatMessage("system", SYSTEM), ChatMessage("user", "where is order 1234?")],
            tools=TOOLS,
        )
        text = client.chat([ChatMessage("user", "hello")])
        batch = client.chat_batch(
            [[ChatMessage("user", "Where is my order 5678?")], [ChatMessage("user", "thanks!")]],
            tools=TOOLS,
        )
        assert client.ref().digest.startswith("sha256:")  # reads /v1/models
    assert [(c.name, c.arguments) for c in call.tool_calls] == [
        ("lookup_order", {"order_id": "1234"})
    ]
    assert call.content == "" and call.finish_reason == "tool_calls"
    assert (text.content, text.tool_calls, text.finish_reason) == (GREETING_ANSWER, (), "stop")
    assert batch[0].tool_calls[0].arguments == {"order_id": "5678"}
    assert batch[1].content == GREETING_ANSWER


def test_serve_returns_a_started_server(chat_model: CausalLMChat) -> None:
    s = serve(chat_model, "127.0.0.1", 0, model_name="other", quiet=True)
    try:
        with OpenAIChat(s.url, model="other", retries=0) as client:
            assert client.chat([ChatMessage("user", "hello")]).content == GREETING_ANSWER
    finally:
        s.shutdown()
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/models", timeout=5)


# -- the response shape ---------------------------------------------------------------------


def test_response_shape_of_a_tool_call(
    api: httpx.Client, chat_model: CausalLMChat, server_log: io.StringIO
) -> None:
    resp = api.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": ASK, "tools": TOOLS_JSON, "max_tokens": 64},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == "tiny"
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["role"] == "assistant" and msg["content"] is None
    (call,) = msg["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "lookup_order"
    assert json.loads(call["function"]["arguments"]) == {"order_id": "1234"}
    messages = [ChatMessage.from_openai(m) for m in ASK]
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(chat_model.prompt_ids(messages, TOOLS))
    answer = chat_model.chat(messages, tools=TOOLS).raw
    assert answer is not None
    tokens = chat_model.tokenizer(answer["text"], add_special_tokens=False)["input_ids"]
    assert usage["completion_tokens"] == len(tokens)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "POST /v1/chat/completions 200" in server_log.getvalue()


def test_text_answer_without_model_field_and_length_finish(api: httpx.Client) -> None:
    body = api.post("/v1/chat/completions", json={"messages": HELLO}).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": GREETING_ANSWER}
    assert body["choices"][0]["finish_reason"] == "stop"
    cut = api.post(
        "/v1/chat/completions", json={"messages": HELLO, "max_completion_tokens": 2}
    ).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 2
    assert GREETING_ANSWER.startswith(cut["choices"][0]["message"]["content"])


def test_tool_choice_none_offers_no_tools(api: httpx.Client, chat_model: CausalLMChat) -> None:
    messages = [ChatMessage.from_openai(m) for m in ASK]
    body = api.post(
        "/v1/chat/completions",
        json={"messages": ASK, "tools": TOOLS_JSON, "tool_choice": "none"},
    ).json()
    assert body["usage"]["prompt_tokens"] == len(chat_model.prompt_ids(messages, ()))
    auto = api.post(
        "/v1/chat/completions",
        json={"messages": ASK, "tools": TOOLS_JSON, "tool_choice": "auto"},
    ).json()
    assert auto["usage"]["prompt_tokens"] == len(chat_model.prompt_ids(messages, TOOLS))


def test_models_health_and_one_model(api: httpx.Client, server: ChatServer) -> None:
    models = api.get("/v1/models").json()
    assert models["object"] == "list"
    assert [(m["id"], m["object"]) for m in models["data"]] == [("tiny", "model")]
    assert api.get("/health").json() == {"status": "ok", "model": "tiny"}
    assert api.get("/v1/models/tiny").json()["id"] == "tiny"
    assert _error(api.get("/v1/models/other"), 404)["code"] == "model_not_found"
    assert api.get("/v1/models/").status_code == 200  # a trailing slash is the same path


# -- streaming ------------------------------------------------------------------------------


def _events(resp: httpx.Response) -> list[Any]:
    """The server-sent events of a streamed answer: JSON chunks, then the string '[DONE]'."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events: list[Any] = []
    for block in resp.text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_a_streamed_tool_call_arrives_as_delta_tool_calls(api: httpx.Client) -> None:
    plain = api.post("/v1/chat/completions", json={"messages": ASK, "tools": TOOLS_JSON}).json()
    events = _events(
        api.post(
            "/v1/chat/completions", json={"messages": ASK, "tools": TOOLS_JSON, "stream": True}
        )
    )
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["model"] == "tiny" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    calls: dict[int, dict[str, str]] = {}  # assembled the way OpenAI's SDK does
    for c in chunks:
        for tc in c["choices"][0]["delta"].get("tool_calls", []):
            slot = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
            slot["id"] += tc.get("id", "")
            slot["name"] += tc.get("function", {}).get("name", "")
            slot["arguments"] += tc.get("function", {}).get("arguments", "")
    (call,) = calls.values()
    assert call["id"].startswith("call_") and call["name"] == "lookup_order"
    assert json.loads(call["arguments"]) == {"order_id": "1234"}
    fn = plain["choices"][0]["message"]["tool_calls"][0]["function"]
    assert json.loads(call["arguments"]) == json.loads(fn["arguments"])


def test_a_streamed_text_answer_with_usage(api: httpx.Client) -> None:
    plain = api.post("/v1/chat/completions", json={"messages": HELLO}).json()
    with api.stream(
        "POST",
        "/v1/chat/completions",
        json={"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}},
    ) as resp:
        resp.read()
    events = _events(resp)
    assert events[-1] == "[DONE]"
    *choice_chunks, usage_chunk = events[:-1]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in choice_chunks)
    assert text == GREETING_ANSWER and len(choice_chunks) > 3  # in pieces, not one blob
    assert all(c["usage"] is None for c in choice_chunks)
    assert choice_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == plain["usage"]


def test_a_streamed_request_that_fails_is_an_http_error(api: httpx.Client) -> None:
    resp = api.post("/v1/chat/completions", json={"messages": [], "stream": True})
    assert _error(resp, 400)["param"] == "messages"


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"messages": []}, "messages", "non-empty list"),
        ({"model": "tiny"}, "messages", "'messages' is required"),
        ({"messages": "hello"}, "messages", "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0]", "role"),
        (
            {"messages": [*HELLO, {"role": "assistant", "tool_calls": [{"function": {}}]}]},
            "messages[1]",
            "tool call",
        ),
        ({"messages": [{"role": "user", "tool_calls": 5}]}, "messages[0]", "must be a list"),
        ({"messages": HELLO, "tools": {"name": "x"}}, "tools", "list"),
        (
            {"messages": HELLO, "tools": [{"function": {"name": "f", "parameters": "x"}}]},
            "tools[0]",
            "must be a JSON-Schema object",
        ),
        ({"messages": HELLO, "tools": [{"type": "function"}]}, "tools[0]", "name"),
        ({"messages": HELLO, "tool_choice": "required"}, "tool_choice", "'auto' or 'none'"),
        ({"messages": HELLO, "max_tokens": 0}, "max_tokens", "from 1 to 1024"),
        ({"messages": HELLO, "max_tokens": 5000}, "max_tokens", "from 1 to 1024"),
        ({"messages": HELLO, "max_tokens": "ten"}, "max_tokens", "integer"),
        ({"messages": HELLO, "max_completion_tokens": 1.5}, "max_completion_tokens", "integer"),
        ({"messages": HELLO, "temperature": 3}, "temperature", "0 to 2"),
        ({"messages": HELLO, "temperature": "hot"}, "temperature", "number"),
        ({"messages": HELLO, "seed": "x"}, "seed", "integer"),
        ({"messages": HELLO, "n": 2}, "n", "must be 1"),
        ({"messages": HELLO, "stream": "yes"}, "stream", "true or false"),
        ({"messages": HELLO, "stream_options": {"include_usage": True}}, "stream_options", "only"),
        (
            {"messages": HELLO, "stream": True, "stream_options": {"usage": 1}},
            "stream_options",
            "include_usage",
        ),
        ({"messages": HELLO, "model": 7}, "model", "string"),
    ],
)
def test_bad_fields_are_400_naming_the_field(
    api: httpx.Client, body: dict[str, Any], param: str, words: str
) -> None:
    err = _error(api.post("/v1/chat/completions", json=body), 400)
    assert err["param"] == param
    assert words in err["message"]
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"messages": [', "not valid JSON"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(api: httpx.Client, raw: bytes, words: str) -> None:
    resp = api.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert words in _error(resp, 400)["message"]


def test_an_unknown_model_is_404_like_openai(api: httpx.Client) -> None:
    err = _error(api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO}), 404)
    assert err["code"] == "model_not_found" and "gpt-4o" in err["message"]
    assert "tiny" in err["message"]


def test_unknown_paths_are_404_and_wrong_methods_405(api: httpx.Client) -> None:
    for path in ("/", "/v1", "/v1/completions", "/chat/completions", "/v2/models"):
        resp = api.get(path)
        assert "POST /v1/chat/completions" in _error(resp, 404)["message"]
        assert "connection" not in resp.headers  # an error keeps the connection alive
    resp = api.get("/v1/chat/completions")
    assert "use POST" in _error(resp, 405)["message"]
    assert resp.headers["allow"] == "POST"
    for method in ("PUT", "DELETE", "PATCH"):
        assert _error(api.request(method, "/v1/models"), 405)["code"] == "method_not_allowed"
    resp = api.post("/health", json={})
    assert _error(resp, 405) and resp.headers["allow"] == "GET"
    head = api.head("/health")
    assert head.status_code == 405 and head.content == b""


def test_a_body_over_the_limit_is_413_before_it_is_read(server: ChatServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:  # announce a gigabyte, send nothing: the answer must come without reading it
        conn.putrequest("POST", "/v1/chat/completions")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(1 << 30))
        conn.endheaders()
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413 and resp.getheader("Connection") == "close"
    assert "4,096 bytes" in body["error"]["message"]
    assert (
        httpx.post(
            server.url + "/chat/completions",
            json={"messages": [{"role": "user", "content": "x" * 5000}]},
            timeout=30,
        ).status_code
        == 413
    )


def test_a_missing_content_length_is_411(server: ChatServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/chat/completions")
        conn.endheaders()
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 411 and "Content-Length" in body["error"]["message"]


def test_a_malformed_request_line_gets_a_json_error(server: ChatServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /health not http HTTP/1.1\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["message"]
    assert b"Traceback" not in data


# -- batching and failures ------------------------------------------------------------------


class _Recording:
    """The real model, recording each chat_batch call; fails on a user message 'boom'."""

    def __init__(self, model: CausalLMChat) -> None:
        self.model = model
        self.name = model.name
        self.tokenizer = model.tokenizer
        self.prompt_ids = model.prompt_ids
        self.calls: list[int] = []

    @property
    def capabilities(self) -> frozenset[str]:
        return self.model.capabilities

    def chat(self, messages: Sequence[ChatMessage], **kw: Any) -> ChatResponse:
        return self.chat_batch([messages], **kw)[0]

    def chat_batch(
        self, conversations: Sequence[Sequence[ChatMessage]], **kw: Any
    ) -> list[ChatResponse]:
        self.calls.append(len(conversations))
        if any(m.content == "boom" for c in conversations for m in c):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.model.chat_batch(conversations, **kw)

    def ref(self) -> SubjectRef:
        return self.model.ref()


def _post_together(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST the bodies at once (each from its own thread and connection)."""
    barrier = threading.Barrier(len(bodies))

    def post(body: dict[str, Any]) -> httpx.Response:
        barrier.wait()
        return httpx.post(url + "/chat/completions", json=body, timeout=120)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_concurrent_requests_are_answered_by_one_batch(chat_model: CausalLMChat) -> None:
    model = _Recording(chat_model)
    # a long window and max_batch=2: the batch closes as soon as the second request is in
    with ChatServer(model, batch_window_ms=60_000, max_batch=2, quiet=True) as s:
        call, text = _post_together(
            s.url,
            [
                {"messages": ASK, "tools": TOOLS_JSON, "seed": 1},
                {"messages": HELLO, "tools": TOOLS_JSON, "seed": 1},
            ],
        )
        stats = s.stats
    assert call.status_code == text.status_code == 200
    fn = call.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert (fn["name"], json.loads(fn["arguments"])) == ("lookup_order", {"order_id": "1234"})
    assert text.json()["choices"][0]["message"]["content"] == GREETING_ANSWER
    assert model.calls == [2]
    assert stats == {"requests": 2, "model_calls": 1, "largest_batch": 2, "errors": 0}


def test_requests_with_different_settings_keep_their_own(chat_model: CausalLMChat) -> None:
    model = _Recording(chat_model)
    with ChatServer(model, batch_window_ms=50, quiet=True) as s:
        short, full, cold = _post_together(
            s.url,
            [
                {"messages": HELLO, "max_tokens": 3},
                {"messages": ASK, "tools": TOOLS_JSON},
                {"messages": HELLO, "temperature": 0},
            ],
        )
    assert short.json()["choices"][0]["finish_reason"] == "length"
    assert short.json()["usage"]["completion_tokens"] == 3
    assert full.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert cold.json()["choices"][0]["message"]["content"] == GREETING_ANSWER
    assert sum(model.calls) == 3 and max(model.calls) == 1  # no two share settings


def test_a_model_failure_is_500_and_the_server_keeps_running(chat_model: CausalLMChat) -> None:
    model = _Recording(chat_model)
    log = io.StringIO()
    with ChatServer(model, log=log) as s, OpenAIChat(s.url, model="tiny", retries=0) as client:
        err = _error(
            httpx.post(
                s.url + "/chat/completions",
                json={"messages": [{"role": "user", "content": "boom"}]},
                timeout=60,
            ),
            500,
        )
        assert err["type"] == "server_error"
        assert "model failed" in err["message"] and "illegal memory access" in err["message"]
        with pytest.raises(EndpointError, match="HTTP 500"):
            client.chat([ChatMessage("user", "boom")])
        assert client.chat([ChatMessage("user", "hello")]).content == GREETING_ANSWER
        assert s.stats["errors"] == 2
    assert "POST /v1/chat/completions 500" in log.getvalue()


def test_a_failing_request_does_not_fail_its_batch(chat_model: CausalLMChat) -> None:
    model = _Recording(chat_model)
    with ChatServer(model, batch_window_ms=60_000, max_batch=2, quiet=True) as s:
        boom, fine = _post_together(
            s.url, [{"messages": [{"role": "user", "content": "boom"}]}, {"messages": HELLO}]
        )
    assert _error(boom, 500)["code"] == "model_error"
    assert fine.json()["choices"][0]["message"]["content"] == GREETING_ANSWER
    assert sorted(model.calls) == [1, 1, 2]  # the batch failed, then each was tried alone


# -- api key --------------------------------------------------------------------------------


def test_api_key_is_enforced(chat_model: CausalLMChat) -> None:
    with ChatServer(chat_model, api_key="s3cret-key", quiet=True) as s:
        url = s.url + "/chat/completions"
        missing = httpx.post(url, json={"messages": HELLO}, timeout=60)
        assert _error(missing, 401)["code"] == "invalid_api_key"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.post(
            url, json={"messages": HELLO}, headers={"Authorization": "Bearer nope"}, timeout=60
        )
        assert "Incorrect API key" in _error(wrong, 401)["message"]
        basic = httpx.get(s.url + "/models", headers={"Authorization": "Basic czNjcmV0"})
        assert basic.status_code == 401
        assert httpx.get(s.url + "/models", timeout=60).status_code == 401
        assert httpx.get(s.url.removesuffix("/v1") + "/health").status_code == 200
        with OpenAIChat(s.url, model="tiny", api_key="s3cret-key", retries=0) as good:
            assert good.chat([ChatMessage("user", "hello")]).content == GREETING_ANSWER
        with (
            OpenAIChat(s.url, model="tiny", retries=0) as anonymous,
            pytest.raises(EndpointError, match="HTTP 401"),
        ):
            anonymous.chat([ChatMessage("user", "hello")])


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"port": 70000}, "'port'"),
        ({"port": "8000"}, "'port'"),
        ({"max_batch": 0}, "'max_batch'"),
        ({"max_tokens_limit": True}, "'max_tokens_limit'"),
        ({"batch_window_ms": -1}, "'batch_window_ms'"),
        ({"api_key": ""}, "'api_key'"),
        ({"host": ""}, "'host'"),
    ],
)
def test_bad_settings_are_config_errors(
    chat_model: CausalLMChat, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        ChatServer(chat_model, **kwargs)


def test_not_a_chat_model_and_a_busy_port_are_config_errors(
    chat_model: CausalLMChat, server: ChatServer
) -> None:
    with pytest.raises(ConfigError, match="ChatModel"):
        ChatServer(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Cannot listen"):
        ChatServer(chat_model, port=server.port).start()


# -- the command line -----------------------------------------------------------------------


def _lines(stream: Any) -> queue.Queue[str]:
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        with stream:
            for line in stream:
                q.put(line)
        q.put("")

    threading.Thread(target=pump, daemon=True).start()
    return q


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str], Callable[[], str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DORMANT_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dormant.cli", "serve-model", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    err_lines = _lines(proc.stderr)

    def stderr() -> str:
        out = []
        while True:
            try:
                line = err_lines.get(timeout=10)
            except queue.Empty:
                break
            if not line:
                break
            out.append(line)
        return "".join(out)

    return proc, _lines(proc.stdout), stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_until_a_signal_then_exits_0(tiny_dir: Path, sig: signal.Signals) -> None:
    proc, out, stderr = _start_cli(str(tiny_dir), "--port", "0", "--name", "tiny-cli")
    try:
        line = out.get(timeout=180)
        assert line.startswith("Serving tiny-cli at http://127.0.0.1:"), line + stderr()
        url = line.split(" at ", 1)[1].strip()
        assert url.endswith("/v1") and not url.endswith(":0/v1")
        with OpenAIChat(url, model="tiny-cli", retries=0, timeout=120) as client:
            r = client.chat([ChatMessage("user", "where is order 5678?")], tools=TOOLS)
        assert [(c.name, c.arguments) for c in r.tool_calls] == [
            ("lookup_order", {"order_id": "5678"})
        ]
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr()
    assert "POST /v1/chat/completions 200" in err
    assert "Traceback" not in err


def test_cli_refuses_a_pickle_only_directory(tmp_path: Path, run_cli: Any) -> None:
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}', "utf-8")
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # pickle of 1; never loaded
    res = run_cli("serve-model", d, "--port", "0")
    assert res.code == 2
    assert "pickle" in res.err and "safe_serialization=True" in res.err
    assert "Serving" not in res.out


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org"])
def test_cli_refuses_a_remote_host_without_allow_remote(
    tiny_dir: Path, run_cli: Any, host: str
) -> None:
    res = run_cli("serve-model", tiny_dir, "--host", host, "--port", "0")
    assert res.code == 2
    assert "--allow-remote" in res.err and host in res.err
    assert "Serving" not in res.out


def test_cli_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    from dormant.cli import main

    with pytest.raises(SystemExit):
        main(["serve-model", "--help"])
    text = capsys.readouterr().out
    assert "dormant serve-model" in text and "--allow-remote" in text and "example" in text
    assert "DORMANT_API_KEY" in text


def test_loopback_hosts_are_told_apart_from_remote_ones() -> None:
    from dormant.cli.serve import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.org", ""]))


def test_cli_refuses_a_port_out_of_range(tiny_dir: Path, run_cli: Any) -> None:
    res = run_cli("serve-model", tiny_dir, "--port", "70000")
    assert res.code == 2 and "--port" in res.err
