"""What the MCP gateway adds to a tool call: ``dormant guard mcp`` against the server direct.

A tiny MCP tool server (the SDK's FastMCP / MCPServer, over stdio) answers ``lookup_order``; an
agent (``MCPTools``, the SDK's client) calls it ``--calls`` times straight, then the same number
of times through ``dormant guard mcp`` over stdio (the real command: relist and pin check,
decision, durable audit entry, then the forwarded call), one call at a time, in the same run.

Usage::

    python benchmarks/bench_guard_mcp.py --calls 200

Writes ``benchmarks/results/guard_mcp.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dormant.adapters.mcp import MCPTools

SERVER = '''
try:
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:
    from mcp.server.fastmcp import FastMCP as Server

server = Server("shop-tools")


@server.tool()
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    return f"order {order_id}: shipped"


if __name__ == "__main__":
    server.run("stdio")
'''
CEDAR = (
    'permit (principal == Agent::"support", action == Action::"call_tool", '
    'resource == Tool::"lookup_order");\n'
)


def _timed(tools: MCPTools, n: int) -> list[float]:
    out = []
    tools.call("lookup_order", {"order_id": "warm"})
    for i in range(n):
        t0 = time.perf_counter()
        text = tools.call("lookup_order", {"order_id": str(i)})
        out.append((time.perf_counter() - t0) * 1000)
        assert text == f"order {i}: shipped", text
    return out


def _stats(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100)
    return {
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/guard_mcp.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dormant-mcp-bench-"))
    (work / "server.py").write_text(SERVER, "utf-8")
    (work / "guard.cedar").write_text(CEDAR, "utf-8")
    key = hashlib.sha256(b"bench-key").hexdigest()
    (work / "guard.toml").write_text(
        '[guard]\ncedar = "guard.cedar"\n'
        f'[identities.support]\nkey_sha256 = "{key}"\n'
        '[tools.lookup_order]\nprivilege = "read"\n',
        "utf-8",
    )
    upstream = [sys.executable, str(work / "server.py")]
    gateway = [
        sys.executable,
        "-m",
        "dormant.cli",
        "guard",
        "mcp",
        "--policy",
        str(work / "guard.toml"),
        "--identity",
        "support",
        "--audit",
        f"sqlite:///{work / 'audit.sqlite3'}",
        "--upstream-command",
        " ".join(upstream),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with MCPTools(command=upstream, timeout=120) as direct:
        base = _timed(direct, args.calls)
    with MCPTools(command=gateway, env=env, timeout=120) as guarded:
        through = _timed(guarded, args.calls)
    row: dict[str, Any] = {
        "calls": args.calls,
        "machine": f"{platform.machine()} {platform.processor()} {os.cpu_count()} cores (shared)",
        "direct": _stats(base),
        "through_gateway": _stats(through),
    }
    row["added_p50_ms"] = round(row["through_gateway"]["p50_ms"] - row["direct"]["p50_ms"], 2)
    row["added_p99_ms"] = round(row["through_gateway"]["p99_ms"] - row["direct"]["p99_ms"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=1) + "\n", "utf-8")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
