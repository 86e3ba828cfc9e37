"""``dormant guard serve``: refusals at start, and the real command serving on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _guard_env import SUPPORT_KEY, user, write_policy
from _paths import ROOT
from _scripted_upstream import Reply, ScriptedUpstream, tool

SRC = ROOT / "src"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    up = ScriptedUpstream(script={"read": Reply(calls=(tool("lookup_order", order_id="1"),))})
    server = up.serve()
    up.url = server.url  # type: ignore[attr-defined]
    yield up
    server.shutdown()


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy")


def serve_args(policy: Path, tmp_path: Path, *extra: Any) -> list[Any]:
    return [
        "guard",
        "serve",
        "--upstream",
        "http://127.0.0.1:9/v1",
        "--policy",
        policy,
        "--audit",
        tmp_path / "audit.sqlite3",
        *extra,
    ]


def test_invalid_policy_stops_the_start_naming_the_line(
    run_cli: Callable[..., Any], policy: Path, tmp_path: Path
) -> None:
    text = policy.read_text("utf-8").replace('privilege = "egress"', 'privilege = "egres"')
    policy.write_text(text, "utf-8")
    line = text.splitlines().index('privilege = "egres"') + 1
    r = run_cli(*serve_args(policy, tmp_path))
    assert r.code == 2 and r.out == ""
    assert f"guard.toml:{line}:" in r.err and "'egres'" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "audit.sqlite3").exists()


def test_invalid_cedar_stops_the_start(
    run_cli: Callable[..., Any], policy: Path, tmp_path: Path
) -> None:
    cedar = policy.parent / "guard.cedar"
    cedar.write_text(
        cedar.read_text("utf-8") + "\npermit (principal, action, resource) when {", "utf-8"
    )
    r = run_cli(*serve_args(policy, tmp_path))
    assert r.code == 2 and "guard.cedar" in r.err


def test_missing_policy_file(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli(*serve_args(tmp_path / "nope.toml", tmp_path))
    assert r.code == 2 and "does not exist" in r.err


def test_busy_port(run_cli: Callable[..., Any], policy: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(*serve_args(policy, tmp_path, "--port", port))
    assert r.code == 2 and f"port {port} on 127.0.0.1 is already in use" in r.err


def test_remote_host_needs_allow_remote(
    run_cli: Callable[..., Any], policy: Path, tmp_path: Path
) -> None:
    r = run_cli(*serve_args(policy, tmp_path, "--host", "0.0.0.0"))
    assert r.code == 2 and "--allow-remote" in r.err


def test_upstream_key_variable_must_be_set(
    run_cli: Callable[..., Any], policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GUARD_TEST_UPSTREAM_KEY", raising=False)
    r = run_cli(*serve_args(policy, tmp_path, "--upstream-key", "GUARD_TEST_UPSTREAM_KEY"))
    assert r.code == 2 and "GUARD_TEST_UPSTREAM_KEY" in r.err


def test_bad_upstream_url(run_cli: Callable[..., Any], policy: Path, tmp_path: Path) -> None:
    args = serve_args(policy, tmp_path)
    args[3] = "127.0.0.1:8000"
    r = run_cli(*args)
    assert r.code == 2 and "--upstream must be an http" in r.err


def test_audit_log_unwritable_at_start(
    run_cli: Callable[..., Any], policy: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", "utf-8")
    args = serve_args(policy, tmp_path)
    args[7] = blocker / "audit.sqlite3"
    r = run_cli(*args)
    assert r.code == 2 and "--audit: the audit log cannot be opened" in r.err


def test_the_command_serves_logs_json_and_stops_on_sigterm(
    upstream: Any, policy: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "GUARD_UP_KEY": "sk-up"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dormant",
            "guard",
            "serve",
            "--upstream",
            upstream.url,
            "--policy",
            str(policy),
            "--audit",
            str(tmp_path / "audit.sqlite3"),
            "--port",
            "0",
            "--upstream-key",
            "GUARD_UP_KEY",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"Guarding {upstream.url} at http://127.0.0.1:"), first
        url = first.split(" at ")[1].strip()
        resp = httpx.post(
            url + "/chat/completions",
            json=user("read"),
            headers={"authorization": f"Bearer {SUPPORT_KEY}"},
            timeout=30,
        )
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["tool_calls"]
        assert upstream.seen[-1]["auth"] == "Bearer sk-up"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert messages[0] == "guard listening" and messages[-1] == "guard stopped"
    assert "request guarded" in messages
    guarded = next(line for line in lines if line["message"] == "request guarded")
    assert guarded["identity"] == "support-bot" and guarded["level"] == "info"
    assert "Traceback" not in err
