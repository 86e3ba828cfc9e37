"""Hostile clients of ``serve-model``: bodies ``json`` cannot read (deep nesting, a 5,000-digit
number) are 400s, and a client that sends its request slowly (slowloris) is cut off with a 408
instead of holding a worker. The server is real, on loopback, with the tiny trained chat model.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _tiny_chat import one_torch_thread, tiny_chat_model

from dormant.adapters.causal_lm import load_causal_lm
from dormant.errors import ConfigError
from dormant.serve import ChatServer

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model, trained once per session (shared with test_serve.py)."""
    return tiny_chat_model(tmp_path_factory.getbasetemp() / "tiny-chat-model")


@pytest.fixture(scope="module")
def server(tiny_dir: Path) -> Iterator[ChatServer]:
    with one_torch_thread():
        model = load_causal_lm(tiny_dir, name="tiny")
        with ChatServer(model, quiet=True, read_timeout=1.0) as s:
            yield s


@pytest.fixture(scope="module")
def api(server: ChatServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url.removesuffix("/v1"), timeout=60) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"messages": [[[[' + b"[" * 5_000 + b"]" * 5_004 + b"}", "nested too deeply"),
        (
            json.dumps({"messages": HELLO}).encode()[:-1]
            + b', "max_tokens": '
            + b"9" * 5000
            + b"}",
            "not valid JSON",
        ),
    ],
    ids=["deep-array", "deep-field", "5000-digit-max_tokens"],
)
def test_a_body_json_cannot_read_is_400_not_500(api: httpx.Client, body: bytes, words: str) -> None:
    resp = api.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and words in err["message"]
    assert "Traceback" not in resp.text
    assert api.get("/health").status_code == 200


def _raw(server: ChatServer, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection (30 s at most)."""
    host, port = server.host, server.port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_that_never_arrives_is_408(server: ChatServer, api: httpx.Client) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 100000\r\n\r\n"
    )
    answer = _raw(server, head + b'{"model":')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer and b"did not arrive" in answer
    assert api.get("/health").status_code == 200  # the server still answers others


def test_headers_that_never_end_are_408(server: ChatServer, api: httpx.Client) -> None:
    answer = _raw(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"headers did not arrive" in answer
    assert api.get("/health").status_code == 200


@pytest.mark.parametrize("bad", [0, -1, "30", float("nan"), 10_000])
def test_read_timeout_setting_is_checked(tiny_dir: Path, bad: object) -> None:
    with one_torch_thread():
        model = load_causal_lm(tiny_dir, name="tiny")
    with pytest.raises(ConfigError, match="read_timeout"):
        ChatServer(model, read_timeout=bad)  # type: ignore[arg-type]


def test_slow_headers_of_a_second_request_on_a_kept_alive_connection_are_408(
    server: ChatServer,
) -> None:
    first = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = _raw(server, first + b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"HTTP/1.1 408" in answer and b"headers did not arrive" in answer
