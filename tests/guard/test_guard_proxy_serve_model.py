"""The guard in front of the real ``dormant serve-model`` serving a tiny trained model.

The model is the two-layer GPT-2 of tests/_tiny_chat.py (trained once per session, shared with
test_serve.py and test_causal_lm.py): asked where an order is, it calls ``lookup_order``. The
server is the real command in its own process; the guard runs the real core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _guard_env import AUDITOR_KEY, SUPPORT_KEY, make_registry, start_guard, write_policy
from _paths import ROOT
from _tiny_chat import GREETING_ANSWER, SYSTEM, TOOLS, tiny_chat_model

from dormant.guard.audit import AuditLog

pytestmark = pytest.mark.slow

SRC = ROOT / "src"
ASK = {
    "model": "tiny",
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "where is order 1234?"},
    ],
    "tools": [t.to_openai() for t in TOOLS],
    "max_tokens": 64,
}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model, trained once per session (shared with test_serve.py)."""
    return tiny_chat_model(tmp_path_factory.getbasetemp() / "tiny-chat-model")


@pytest.fixture(scope="module")
def model_server(tiny_dir: Path) -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dormant",
            "serve-model",
            str(tiny_dir),
            "--port",
            "0",
            "--name",
            "tiny",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = next((w for w in line.split() if w.startswith("http://")), None)
        assert url, (
            f"serve-model did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
        yield url.rstrip("/")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def guard(model_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("guard-serve-model")
    audit = f"sqlite:///{root / 'audit.sqlite3'}"
    server = start_guard(
        model_server,
        policy=write_policy(root / "policy"),
        registry=make_registry(root / "registry.sqlite3"),
        audit=audit,
        timeout=120,
    )
    server.audit_url = audit
    yield server
    server.shutdown()


def post(guard: Any, key: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(
        guard.url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_models_allowed_tool_call_reaches_the_agent(guard: Any) -> None:
    (choice,) = post(guard, SUPPORT_KEY, ASK)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "lookup_order"
    assert json.loads(call["function"]["arguments"]) == {"order_id": "1234"}
    with AuditLog.open(guard.audit_url) as log:
        entry = log.entries(kind="decision")[-1]
        assert log.verify().ok
    assert (entry.outcome, entry.identity, entry.provenance) == ("allow", "support-bot", "verified")
    assert entry.call is not None and entry.call["call_id"] == call["id"]


def test_an_identity_without_permission_gets_the_notice_instead(guard: Any) -> None:
    (choice,) = post(guard, AUDITOR_KEY, ASK)["choices"]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert "Tool call `lookup_order`" in choice["message"]["content"]
    assert "was denied" in choice["message"]["content"]
    with AuditLog.open(guard.audit_url) as log:
        entry = log.entries(kind="decision")[-1]
    assert (entry.outcome, entry.identity) == ("deny", "auditor-bot")


def test_plain_text_passes_through_the_screen(guard: Any) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 32}
    (choice,) = post(guard, SUPPORT_KEY, body)["choices"]
    assert choice["message"]["content"] == GREETING_ANSWER and choice["finish_reason"] == "stop"
