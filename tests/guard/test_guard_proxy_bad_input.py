"""The guard proxy on bad input: each case a clear error AND a logged, fail-closed decision.

Every case runs against the real guard on loopback (real core, real audit log) with a real
scripted upstream. "Fail closed" is checked where a user would notice it: no tool call
reaches the client, the answer is an OpenAI error object naming the problem, the audit log
has a ``deny`` entry for it, and the guard logged it.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _guard_env import SUPPORT_KEY, assemble, make_registry, sse_events, start_guard, user
from _guard_env import write_policy as _write_policy
from _scripted_upstream import Reply, ScriptedUpstream, tool

from dormant.guard.audit import AuditLog

SCRIPT = {
    "read": Reply(calls=(tool("lookup_order", order_id="1"),)),
    "write": Reply(calls=(tool("update_ticket", ticket="7", status="closed"),)),
    "slow": Reply(content="late", delay=3.0),
    "boom": Reply(status=500, raw=b'{"error": {"message": "CUDA out of memory"}}'),
    "html": Reply(raw=b"<html>gateway</html>"),
    "no-choices": Reply(raw=b'{"id": "x", "object": "chat.completion"}'),
    "bad-args": Reply(calls=(("lookup_order", '{"order_id": "1"'),)),
    "list-args": Reply(calls=(("lookup_order", "[1, 2]"),)),
    "no-name": Reply(calls=(("", '{"order_id": "1"}'),)),
    "cut": Reply(calls=(tool("lookup_order", order_id="123456789"),), fragment=2, cut_after=3),
    "stall": Reply(calls=(tool("lookup_order", order_id="1"),), chunk_delay=3.0),
    "deny-auth": Reply(status=401, raw=b'{"error": {"message": "bad key"}}'),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    up = ScriptedUpstream(script=dict(SCRIPT))
    server = up.serve()
    up.url = server.url  # type: ignore[attr-defined]
    yield up
    server.shutdown()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("guard-bad")
    return {
        "root": root,
        "policy": _write_policy(root / "policy"),
        "registry": make_registry(root / "registry.sqlite3"),
        "audit": f"sqlite:///{root / 'audit.sqlite3'}",
    }


@pytest.fixture(scope="module")
def guard(upstream: Any, env: dict[str, Any]) -> Iterator[Any]:
    server = start_guard(
        upstream.url,
        policy=env["policy"],
        registry=env["registry"],
        audit=env["audit"],
        timeout=1.0,
        max_body_bytes=4096,
    )
    yield server
    server.shutdown()


@pytest.fixture
def api(guard: Any) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {SUPPORT_KEY}"}
    with httpx.Client(base_url=guard.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def seen(env: dict[str, Any], caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """``seen.refused(resp, status, code)`` checks the answer, the audit entry and the log."""
    caplog.set_level(logging.INFO, logger="dormant.guard")
    log = AuditLog.open(env["audit"])
    start = len(log.entries())

    class Seen:
        def entries(self) -> list[Any]:
            return log.entries(since=start)

        def refused(self, resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
            assert resp.status_code == status, resp.text
            assert resp.headers["content-type"] == "application/json"
            err = resp.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["code"] == code
            assert "Traceback" not in resp.text and len(err["message"]) > 20
            (entry,) = self.entries()
            assert entry.kind == "event" and entry.outcome == "deny"
            assert entry.detail["code"] == code and entry.reasons == (err["message"],)
            logged = [r for r in caplog.records if getattr(r, "code", None) == code]
            assert logged and logged[-1].levelno == logging.WARNING
            return dict(err)

        def denied_call(self, resp: httpx.Response, why: str) -> str:
            msg = resp.json()["choices"][0]
            assert resp.status_code == 200 and msg["finish_reason"] == "stop"
            assert "tool_calls" not in msg["message"]
            (entry,) = [e for e in self.entries() if e.kind == "decision"]
            assert entry.outcome == "deny" and why in " ".join(entry.reasons)
            assert why in msg["message"]["content"]
            return str(msg["message"]["content"])

    yield Seen()
    log.close()


def post(api: httpx.Client, body: Any = None, **kwargs: Any) -> httpx.Response:
    if body is not None:
        kwargs["json"] = body
    return api.post("/chat/completions", **kwargs)


# -- the request ----------------------------------------------------------------------------


def test_malformed_json(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, content=b'{"model": "stub",'), 400, "invalid_json")
    assert "not valid JSON" in err["message"]


def test_empty_body(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, content=b""), 400, "invalid_json")
    assert "empty" in err["message"]


def test_oversize_body(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, user("x" * 5000)), 413, "request_too_large")
    assert "at most 4096 bytes" in err["message"]


def test_body_not_an_object(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, [1, 2]), 400, "invalid_body")
    assert "JSON object. Got list" in err["message"]


def test_missing_model(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(
        post(api, {"messages": [{"role": "user", "content": "x"}]}), 400, "invalid_request"
    )
    assert err["param"] == "model"


def test_messages_not_a_list(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, {"model": "stub", "messages": "hi"}), 400, "invalid_request")
    assert err["param"] == "messages" and "Got str" in err["message"]


def test_message_without_role(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(
        post(api, {"model": "stub", "messages": [{"content": "x"}]}), 400, "invalid_request"
    )
    assert err["param"] == "messages[0]"


def test_stream_not_a_boolean(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, user("read", stream="yes")), 400, "invalid_request")
    assert err["param"] == "stream"


# -- who asks -------------------------------------------------------------------------------


def test_missing_api_key(guard: Any, seen: Any) -> None:
    resp = httpx.post(guard.url + "/chat/completions", json=user("read"))
    err = seen.refused(resp, 401, "missing_api_key")
    assert err["type"] == "authentication_error"


def test_unknown_api_key(guard: Any, seen: Any) -> None:
    resp = httpx.post(
        guard.url + "/chat/completions",
        json=user("read"),
        headers={"authorization": "Bearer sk-stolen"},
    )
    err = seen.refused(resp, 401, "invalid_api_key")
    assert "sk-stolen" not in err["message"] and "sha256:" in err["message"]


def test_wrong_auth_scheme(guard: Any, seen: Any) -> None:
    resp = httpx.post(
        guard.url + "/chat/completions",
        json=user("read"),
        headers={"authorization": f"Basic {SUPPORT_KEY}"},
    )
    seen.refused(resp, 401, "missing_api_key")


def test_unknown_identity_on_models(guard: Any, seen: Any) -> None:
    resp = httpx.get(guard.url + "/models", headers={"authorization": "Bearer nobody"})
    seen.refused(resp, 401, "invalid_api_key")


# -- the upstream ---------------------------------------------------------------------------


def test_unknown_model(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, {**user("read"), "model": "gpt-99"}), 404, "model_not_found")
    assert "gpt-99" in err["message"]


def test_upstream_timeout(api: httpx.Client, seen: Any) -> None:
    seen.refused(post(api, user("slow")), 504, "upstream_timeout")


def test_upstream_500(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, user("boom")), 502, "upstream_error")
    assert "HTTP 500" in err["message"] and "CUDA out of memory" in err["message"]


def test_upstream_not_json(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, user("html")), 502, "upstream_bad_response")
    assert "<html>" in err["message"]


def test_upstream_answer_without_choices(api: httpx.Client, seen: Any) -> None:
    seen.refused(post(api, user("no-choices")), 502, "upstream_bad_response")


def test_upstream_refuses_the_guards_key(api: httpx.Client, seen: Any) -> None:
    err = seen.refused(post(api, user("deny-auth")), 502, "upstream_auth")
    assert "--upstream-key" in err["message"]


def test_upstream_unreachable(env: dict[str, Any], seen: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_guard(
        f"http://127.0.0.1:{port}/v1",
        policy=env["policy"],
        registry=env["registry"],
        audit=env["audit"],
    )
    try:
        resp = httpx.post(
            server.url + "/chat/completions",
            json=user("read"),
            headers={"authorization": f"Bearer {SUPPORT_KEY}"},
        )
        seen.refused(resp, 502, "upstream_unreachable")
        models = httpx.get(
            server.url + "/models", headers={"authorization": f"Bearer {SUPPORT_KEY}"}
        )
    finally:
        server.shutdown()
    assert models.status_code == 502
    assert models.json()["error"]["code"] == "upstream_unreachable"
    assert [e.detail["route"] for e in seen.entries()] == ["chat", "models"]


# -- the upstream's tool calls --------------------------------------------------------------


def test_tool_call_arguments_not_json(api: httpx.Client, seen: Any) -> None:
    seen.denied_call(post(api, user("bad-args")), "malformed")


def test_tool_call_arguments_not_an_object(api: httpx.Client, seen: Any) -> None:
    seen.denied_call(post(api, user("list-args")), "arguments")


def test_tool_call_without_a_name(api: httpx.Client, seen: Any) -> None:
    content = seen.denied_call(post(api, user("no-name")), "malformed")
    assert "<unnamed>" in content


def test_stream_cut_in_the_middle_of_a_tool_call(api: httpx.Client, seen: Any) -> None:
    with api.stream("POST", "/chat/completions", json=user("cut", stream=True)) as resp:
        events = sse_events("".join(resp.iter_text()))
    assert events[-1] == "[DONE]"
    got = assemble(events)
    assert got["calls"] == [] and got["finish"] == "stop"
    assert got["errors"][0]["code"] == "upstream_stream_broken"
    assert "incomplete tool call" in got["text"]
    (entry,) = [e for e in seen.entries() if e.kind == "decision"]
    assert entry.outcome == "deny" and "incomplete tool call" in entry.reasons[0]
    # the half-sent call was never released, not even in part
    deltas = [ch["delta"] for ev in events[:-1] if "choices" in ev for ch in ev["choices"]]
    assert deltas and not any("tool_calls" in d for d in deltas)


def test_stream_that_stalls_mid_call(api: httpx.Client, seen: Any) -> None:
    with api.stream("POST", "/chat/completions", json=user("stall", stream=True)) as resp:
        events = sse_events("".join(resp.iter_text()))
    got = assemble(events)
    assert events[-1] == "[DONE]" and got["calls"] == []
    assert "timeout" in got["errors"][0]["message"]
    (entry,) = [e for e in seen.entries() if e.kind == "decision"]
    assert entry.outcome == "deny"


def test_wrong_method(guard: Any) -> None:
    resp = httpx.get(guard.url + "/chat/completions")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


# -- the guard's own stores -----------------------------------------------------------------


def test_registry_down_gives_unknown_provenance(
    upstream: Any, env: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dormant.guard")
    audit = f"sqlite:///{env['root'] / 'audit-registry-down.sqlite3'}"
    broken = env["root"] / "broken-registry.sqlite3"
    broken.write_bytes(b"this is not a database " * 200)
    server = start_guard(
        upstream.url, policy=env["policy"], registry=f"sqlite:///{broken}", audit=audit
    )
    try:
        with httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {SUPPORT_KEY}"}
        ) as api:
            read = post(api, user("read"))
            write = post(api, user("write"))
    finally:
        server.shutdown()
    # read-only tools still work; a write tool is denied, and the decision says why
    assert read.json()["choices"][0]["message"]["tool_calls"]
    msg = write.json()["choices"][0]
    assert write.status_code == 200 and msg["finish_reason"] == "stop"
    assert "tool_calls" not in msg["message"]
    with AuditLog.open(audit) as log:
        entries = log.entries(kind="decision")
    assert [e.outcome for e in entries] == ["allow", "deny"]
    assert all(e.provenance == "unknown" for e in entries)
    assert "registry failed" in entries[1].detail["provenance_detail"]
    assert entries[1].triggers[0]["kind"] == "matcher-unavailable"
    assert any("trigger matching failed" in r.getMessage() for r in caplog.records)


def test_audit_log_unwritable_denies_everything(
    upstream: Any, env: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dormant.guard")
    path = env["root"] / "audit-locked.sqlite3"
    server = start_guard(
        upstream.url,
        policy=env["policy"],
        registry=env["registry"],
        audit=f"sqlite:///{path}",
        audit_timeout=0.3,
    )
    lock = sqlite3.connect(path, timeout=0.1)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # another process holds the database: writes fail
        with httpx.Client(
            base_url=server.url,
            headers={"authorization": f"Bearer {SUPPORT_KEY}"},
            timeout=30,
        ) as api:
            resp = post(api, user("read"))
            with api.stream("POST", "/chat/completions", json=user("read", stream=True)) as s:
                events = sse_events("".join(s.iter_text()))
            health = httpx.get(server.url.removesuffix("/v1") + "/healthz")
    finally:
        lock.rollback()
        lock.close()
        server.shutdown()
    assert resp.status_code == 503
    err = resp.json()["error"]
    assert err["code"] == "audit_unavailable" and "nothing was released" in err["message"]
    assert "tool_calls" not in resp.text
    got = assemble(events)
    assert got["calls"] == [] and got["errors"][0]["code"] == "audit_unavailable"
    assert events[-1] == "[DONE]"
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert any(
        r.levelno == logging.ERROR and "audit write failed" in r.getMessage()
        for r in caplog.records
    )
