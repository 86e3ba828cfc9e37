"""Guard proxy overhead: the same requests direct to a stub upstream and through the guard.

Run (loopback only; about two minutes)::

    python benchmarks/bench_guard_overhead.py --seconds 8 \\
        --out benchmarks/results/guard_overhead.json

The stub upstream (tests/_scripted_upstream.py, Starlette on uvicorn) and the real
``dormant guard serve`` (real policy, SQLite audit log with ``synchronous=FULL``, real
registry) each run in their own process; the load generator (asyncio + httpx, keep-alive) sends
an **open-loop** schedule — request *i* at ``t0 + i / rate`` — and measures each latency from
its scheduled time, so a server that falls behind shows it (no coordinated omission, Tene's
"How NOT to measure latency"). Each request proposes one tool call (``lookup_order``, allowed:
one ``decide()`` and one durable audit write) or, in the ``text`` scenario, answers text (one
response screen and one durable audit write).

1. Added latency at 100 and 500 requests/s: the guard's p50 / p99 minus the direct p50 / p99
   in the same run, alternating direct and guard runs (end to end, at the client: this
   includes the extra loopback hop). Also the time spent inside the guard per request — its
   handler's time minus the upstream's, from the guard's own JSON log lines — which does not
   move with the client's or the upstream's noise.
2. The highest sustained rate: rising rates (bounded list) through the guard; a rate holds
   when ≥ 95 % of its requests complete in the window, none fails, and p99 < 250 ms.
3. CPU per request of the guard and of the upstream process (``/proc``), one request at a
   time: the figure that hardly moves with what else the machine runs.
4. The floor: one durable audit commit (1 and 10 entries) on the same disk, alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
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

RATES = (25, 100, 500)
MAX_RATES = (10, 25, 50, 75, 100, 150, 200, 300, 500, 700, 1000, 1400, 2000)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


class Client:
    """A lean HTTP/1.1 keep-alive client on asyncio streams (one request per connection at a
    time). httpx costs a few milliseconds of CPU per request, which on a shared 2-core machine
    drowned the difference being measured; this sends prebuilt bytes and reads
    ``Content-Length`` bodies only (what both servers answer here)."""

    def __init__(self, url: str, body: dict[str, Any], *, max_conns: int = 256) -> None:
        rest = url.removeprefix("http://")
        hostport, _, path = rest.partition("/")
        self.host, _, port = hostport.partition(":")
        self.port = int(port)
        payload = json.dumps(body).encode()
        self.raw = (
            f"POST /{path}/chat/completions HTTP/1.1\r\nHost: {hostport}\r\n"
            f"Authorization: Bearer {SUPPORT_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.max_conns = max_conns
        self.available = asyncio.Event()

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            if self.free:
                return self.free.pop()
            if self.opened < self.max_conns:
                self.opened += 1
                try:
                    return await asyncio.open_connection(self.host, self.port)
                except OSError:
                    self.opened -= 1
                    raise
            self.available.clear()
            await self.available.wait()  # beyond max_conns in flight: wait for a free one

    async def post(self) -> int:
        reader, writer = await self._conn()
        try:
            writer.write(self.raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except Exception:
            writer.close()
            self.opened -= 1
            self.available.set()
            raise
        self.free.append((reader, writer))
        self.available.set()
        return status

    async def close(self) -> None:
        for _, w in self.free:
            w.close()


async def run_load(url: str, rate: float, seconds: float, prompt: str) -> dict[str, Any]:
    """Open-loop load; latencies in ms from each request's scheduled time."""
    body = {"model": "stub", "messages": [{"role": "user", "content": prompt}]}
    client = Client(url, body)
    n = int(rate * seconds)
    lat: list[float] = []
    fails = 0
    for _ in range(20):  # warm both servers' code paths and a few connections
        await client.post()

    async def one(at: float) -> None:
        nonlocal fails
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            ok = await client.post() == 200
        except Exception:
            ok = False
        if ok:
            lat.append((time.perf_counter() - at) * 1000)
        else:
            fails += 1

    t0 = time.perf_counter() + 0.05
    tasks = [asyncio.create_task(one(t0 + i / rate)) for i in range(n)]
    _, pending = await asyncio.wait(tasks, timeout=seconds + 10)
    for t in pending:
        t.cancel()
    await client.close()
    return {
        "rate": rate,
        "sent": n,
        "ok": len(lat),
        "failed": fails + len(pending),
        "p50_ms": round(pct(lat, 50), 3),
        "p99_ms": round(pct(lat, 99), 3),
        "mean_ms": round(statistics.fmean(lat), 3) if lat else None,
    }


def handler_added_ms(log: Path, offset: int) -> list[float]:
    """Per request, the guard's own time: its handler's time minus the upstream's (from the
    guard's JSON log lines written after ``offset``)."""
    out = []
    with open(log, encoding="utf-8") as f:
        f.seek(offset)
        for line in f:
            if '"request guarded"' not in line:
                continue
            rec = json.loads(line)
            out.append(rec["ms"] - rec["upstream_ms"])
    return out


def scrape(url: str) -> dict[str, float]:
    """Mean audit-write and upstream times from the guard's own ``/metrics``."""
    import httpx

    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
    vals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        vals[name] = float(value)
    out = {}
    for key, metric in (
        ("audit_write", "dormant_guard_audit_write_seconds"),
        ("upstream", "dormant_guard_upstream_latency_seconds"),
    ):
        n = vals.get(f"{metric}_count", 0.0)
        out[f"{key}_count"] = n
        out[f"{key}_mean_ms"] = round(1000 * vals.get(f"{metric}_sum", 0.0) / n, 3) if n else 0.0
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_per_request(url: str, pids: dict[str, int], prompt: str, n: int) -> dict[str, Any]:
    """CPU milliseconds each process spends per request, one request at a time.

    Unlike latency under load, this hardly moves with what else runs on the machine."""
    client = Client(url, {"model": "stub", "messages": [{"role": "user", "content": prompt}]})
    for _ in range(20):
        await client.post()
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.perf_counter()
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        await client.post()
        lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    await client.close()
    out: dict[str, Any] = {
        f"{k}_cpu_ms": round((cpu_seconds(p) - before[k]) / n * 1000, 3) for k, p in pids.items()
    }
    out["sequential_p50_ms"] = round(pct(lat, 50), 3)
    out["sequential_p99_ms"] = round(pct(lat, 99), 3)
    out["wall_ms"] = round(wall / n * 1000, 3)
    return out


def commit_floor(audit_url: str, n: int = 60) -> dict[str, Any]:
    """What one durable audit commit costs on this disk, alone (no HTTP, no decision): the
    floor under any durable-before-release latency."""
    from dormant.guard.audit import AuditEntry, AuditLog

    out: dict[str, Any] = {}
    with AuditLog.open(audit_url) as log:
        for size in (1, 10):
            times = []
            for _ in range(n // size if size > 1 else n):
                t = time.perf_counter()
                with log.store.tx() as conn:
                    for _ in range(size):
                        log.append(AuditEntry(kind="event", outcome="deny"), conn=conn)
                times.append((time.perf_counter() - t) * 1000)
            out[f"commit_{size}_entries_p50_ms"] = round(pct(times, 50), 3)
            out[f"commit_{size}_entries_p99_ms"] = round(pct(times, 99), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per measured run")
    ap.add_argument("--repeats", type=int, default=2, help="direct/guard pairs per rate")
    ap.add_argument("--scenarios", default="tool,text")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    prompts = {"tool": "read", "text": "hello"}

    tmp = Path(tempfile.mkdtemp(prefix="guard-bench-"))
    policy = write_policy(tmp / "policy")
    registry = make_registry(tmp / "registry.sqlite3")
    up_proc, up_url = start_upstream()
    guard_log = tmp / "guard.log"
    g_proc, g_url = start_guard(
        up_url, policy, f"sqlite:///{tmp / 'audit.sqlite3'}", registry=registry, log=guard_log
    )
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (shared)",
        "load_avg_start": list(os.getloadavg()),
        "seconds": args.seconds,
        "repeats": args.repeats,
        "added": [],
        "max_rate": [],
    }
    try:
        results["commit_floor"] = commit_floor(f"sqlite:///{tmp / 'floor.sqlite3'}")
        print(json.dumps(results["commit_floor"]), flush=True)
        pids = {"guard": g_proc.pid, "upstream": up_proc.pid}
        results["cpu"] = []
        for scenario in args.scenarios.split(","):
            for target, url in (("direct", up_url), ("guard", g_url)):
                row = asyncio.run(cpu_per_request(url, pids, prompts[scenario], 300))
                row.update(scenario=scenario, target=target)
                results["cpu"].append(row)
                print(json.dumps(row), flush=True)
        for scenario in args.scenarios.split(","):
            prompt = prompts[scenario]
            for rate in RATES:
                direct, guard = [], []
                inside: list[float] = []
                for _ in range(args.repeats):
                    direct.append(asyncio.run(run_load(up_url, rate, args.seconds, prompt)))
                    offset = guard_log.stat().st_size
                    guard.append(asyncio.run(run_load(g_url, rate, args.seconds, prompt)))
                    inside += handler_added_ms(guard_log, offset)
                d50 = statistics.median(r["p50_ms"] for r in direct)
                d99 = statistics.median(r["p99_ms"] for r in direct)
                g50 = statistics.median(r["p50_ms"] for r in guard)
                g99 = statistics.median(r["p99_ms"] for r in guard)
                row = {
                    "scenario": scenario,
                    "rate": rate,
                    "direct_p50_ms": d50,
                    "direct_p99_ms": d99,
                    "guard_p50_ms": g50,
                    "guard_p99_ms": g99,
                    "added_p50_ms": round(g50 - d50, 3),
                    "added_p99_ms": round(g99 - d99, 3),
                    "in_guard_p50_ms": round(pct(inside, 50), 3),
                    "in_guard_p99_ms": round(pct(inside, 99), 3),
                    "in_guard_n": len(inside),
                    "runs": {"direct": direct, "guard": guard},
                }
                results["added"].append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
        for target, url in (("guard", g_url), ("direct", up_url)):
            best = None
            for rate in MAX_RATES:
                r = asyncio.run(run_load(url, rate, min(args.seconds, 5.0), "read"))
                held = r["failed"] == 0 and r["ok"] >= 0.95 * r["sent"] and r["p99_ms"] < 250
                r["target"] = target
                r["held"] = held
                results["max_rate"].append(r)
                print(json.dumps(r), flush=True)
                if not held:
                    break
                best = rate
            results[f"max_sustained_rps_{target}"] = best
        results["guard_metrics"] = scrape(g_url)
        print(json.dumps(results["guard_metrics"]), flush=True)
    finally:
        for p in (g_proc, up_proc):
            p.terminate()
            p.wait(timeout=30)
    results["load_avg_end"] = list(os.getloadavg())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2), "utf-8")
    print(json.dumps({k: results[k] for k in results if k.startswith("max_sustained")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
