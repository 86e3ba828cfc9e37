"""Guard crash safety: ``kill -9`` the guard under load, then hold the audit log to account.

Run (loopback only; about two minutes for 20 rounds)::

    python benchmarks/bench_guard_crash.py --rounds 20 \\
        --out benchmarks/results/guard_crash.json

A stub upstream (tests/_scripted_upstream.py) stays up; each round starts the real
``dormant guard serve`` (SQLite audit log, ``synchronous=FULL``), drives it with concurrent
clients — non-streaming and streaming requests whose answers propose an allowed call, or an
allowed and a denied one — and sends it ``SIGKILL`` at a random moment (uniform in
``[--min-s, --max-s]`` after the load starts; the guard has answered one request first, so
every kill lands while requests are in flight). After each kill the audit chain is verified
(:meth:`dormant.guard.audit.AuditLog.verify`) before the next round starts.

Counted over all rounds, from what the clients actually received:

- decisions the client saw (a released tool call, or a notice naming a denied call) that are
  missing from the audit log — target 0;
- tool calls released to a client without an ``allow`` entry in the audit log — target 0;
- rounds after which the chain does not verify — target 0.

Every call id the stub upstream makes is unique over the run, so a call the client saw is
matched to its audit entry by ``call_id``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _guard_procs import ROOT, start_guard, start_upstream

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
from _guard_env import SUPPORT_KEY, make_registry, write_policy

from dormant.guard.audit import AuditLog

NOTICE = re.compile(r"Tool call `[^`]*` \((call_[0-9_]+)\) (was denied|is held)")


def parse_completion(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(call id, "allow"/"deny") for what a non-streaming answer showed the client."""
    out: list[tuple[str, str]] = []
    for choice in body.get("choices", []):
        msg = choice.get("message") or {}
        for call in msg.get("tool_calls") or []:
            out.append((call["id"], "allow"))
        for cid, what in NOTICE.findall(msg.get("content") or ""):
            out.append((cid, "deny" if what == "was denied" else "hold"))
    return out


def parse_stream(text: str) -> list[tuple[str, str]]:
    """The same for whatever part of an SSE stream arrived before the guard died."""
    out: list[tuple[str, str]] = []
    content = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block.startswith("data: ") or block == "data: [DONE]":
            continue
        try:
            ev = json.loads(block[6:])
        except ValueError:
            continue  # a half-written last event: its payload never reached the client whole
        for ch in ev.get("choices") or []:
            d = ch.get("delta") or {}
            for tc in d.get("tool_calls") or []:
                if tc.get("id"):
                    out.append((tc["id"], "allow"))
            if d.get("content"):
                content.append(d["content"])
    for cid, what in NOTICE.findall("".join(content)):
        out.append((cid, "deny" if what == "was denied" else "hold"))
    return out


async def load(url: str, stop: asyncio.Event, seen: list[tuple[str, str]], workers: int) -> int:
    import httpx

    done = 0
    prompts = ("read", "mix")

    async def worker(k: int) -> None:
        nonlocal done
        headers = {"authorization": f"Bearer {SUPPORT_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                body = {
                    "model": "stub",
                    "messages": [{"role": "user", "content": prompts[(i + k) % 2]}],
                }
                stream = (i + k) % 3 == 0
                try:
                    if stream:
                        body["stream"] = True
                        parts: list[str] = []
                        try:
                            async with c.stream("POST", "/chat/completions", json=body) as r:
                                async for piece in r.aiter_text():
                                    parts.append(piece)
                        finally:
                            seen.extend(parse_stream("".join(parts)))
                    else:
                        r = await c.post("/chat/completions", json=body)
                        if r.status_code == 200:
                            seen.extend(parse_completion(r.json()))
                    done += 1
                except (httpx.HTTPError, ValueError):
                    await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(worker(k)) for k in range(workers)]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    return done


async def one_round(url: str, pid: int, kill_at: float, workers: int) -> tuple[list[Any], int]:
    import httpx

    seen: list[tuple[str, str]] = []
    # the guard answers one request before the clock starts: a kill lands under load
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            url + "/chat/completions",
            json={"model": "stub", "messages": [{"role": "user", "content": "read"}]},
            headers={"authorization": f"Bearer {SUPPORT_KEY}"},
        )
        seen.extend(parse_completion(r.json()))
    stop = asyncio.Event()
    task = asyncio.create_task(load(url, stop, seen, workers))
    await asyncio.sleep(kill_at)
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.3)  # let clients read whatever the dead socket still delivers
    stop.set()
    done = await task
    return seen, done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--min-s", type=float, default=0.3)
    ap.add_argument("--max-s", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    tmp = Path(tempfile.mkdtemp(prefix="guard-crash-"))
    policy = write_policy(tmp / "policy")
    registry = make_registry(tmp / "registry.sqlite3")
    audit_url = f"sqlite:///{tmp / 'audit.sqlite3'}"
    up_proc, up_url = start_upstream()
    seen_all: list[tuple[str, str, int]] = []
    rounds: list[dict[str, Any]] = []
    t_start = time.time()
    try:
        for r in range(args.rounds):
            g_proc, g_url = start_guard(up_url, policy, audit_url, registry=registry)
            kill_at = rng.uniform(args.min_s, args.max_s)
            seen, done = asyncio.run(one_round(g_url, g_proc.pid, kill_at, args.workers))
            g_proc.wait(timeout=30)
            with AuditLog.open(audit_url) as log:
                v = log.verify()
            rounds.append(
                {
                    "round": r,
                    "kill_after_s": round(kill_at, 3),
                    "exit": g_proc.returncode,
                    "requests_completed": done,
                    "decisions_seen": len(seen),
                    "chain_ok": v.ok,
                    "entries": v.entries,
                    "verify_reason": v.reason,
                }
            )
            seen_all.extend((cid, outcome, r) for cid, outcome in seen)
            print(json.dumps(rounds[-1]), flush=True)
    finally:
        up_proc.terminate()
        up_proc.wait(timeout=30)

    with AuditLog.open(audit_url) as log:
        logged: dict[str, str] = {}
        for e in log.entries(kind="decision"):
            if e.call and e.call.get("call_id"):
                logged[e.call["call_id"]] = e.outcome
        final = log.verify()
    missing = [(c, o, r) for c, o, r in seen_all if c not in logged]
    unlogged_release = [(c, r) for c, o, r in seen_all if o == "allow" and logged.get(c) != "allow"]
    mismatched = [(c, o, logged[c]) for c, o, _ in seen_all if c in logged and logged[c] != o]
    summary = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (shared)",
        "rounds": args.rounds,
        "workers": args.workers,
        "seed": args.seed,
        "kills_with_sigkill": sum(1 for x in rounds if x["exit"] == -signal.SIGKILL),
        "requests_completed": sum(x["requests_completed"] for x in rounds),
        "decisions_seen_by_clients": len(seen_all),
        "released_calls_seen": sum(1 for _, o, _ in seen_all if o == "allow"),
        "decisions_seen_missing_from_audit": len(missing),
        "calls_released_without_logged_allow": len(unlogged_release),
        "outcome_mismatches": len(mismatched),
        "rounds_chain_ok": sum(1 for x in rounds if x["chain_ok"]),
        "final_chain_ok": final.ok,
        "audit_entries": final.entries,
        "seconds": round(time.time() - t_start, 1),
        "examples_missing": missing[:5],
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2), "utf-8")
    return 0 if not missing and not unlogged_release and final.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
