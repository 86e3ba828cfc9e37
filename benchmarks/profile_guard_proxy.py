"""Where the guard proxy's time goes for an allowed tool call: cProfile over N requests.

Run (loopback only; a minute a tree)::

    python benchmarks/profile_guard_proxy.py --tree /tmp/pre16 --tree . --requests 2000 \\
        --out benchmarks/results/guard_proxy_profile.json

For each source tree given (``--tree``, in order; a tree is a folder holding ``src/dormant``,
``tests/`` and ``benchmarks/``), in a process that imports only that tree: the tree's stub
upstream (tests/_scripted_upstream.py) in its own process on loopback; the tree's guard app
(its test policy, SQLite audit log with ``synchronous=FULL``, real registry) in process, driven
through ASGI (no socket on the guard's side); ``--requests`` requests one at a time, each
proposing the allowed ``lookup_order`` call (one ``decide()``, one durable audit write).
Printed and written: CPU and wall ms per request under the profiler, and the functions with
the most own time (``tottime``) per request in microseconds, side by side for the trees,
largest difference first. A profile is not a timing (cProfile slows many small calls);
compare its rows between trees, and time the trees with bench_guard_overhead.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _env(tree: Path) -> dict[str, str]:
    path = f"{tree / 'src'}{os.pathsep}{tree / 'tests'}"
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = next((w for w in reversed(line.split()) if w.startswith("http://")), None)
    if url is None:
        raise RuntimeError(f"process did not start: {line!r}")
    return url.rstrip("/")


def profile_tree(tree: Path, n: int, tmp: Path, *, profile: bool) -> dict[str, Any]:
    """Profile ``n`` allowed tool calls through ``tree``'s guard (in a child process that
    imports only that tree); per-request figures."""
    env = _env(tree)
    up = subprocess.Popen(
        [sys.executable, str(tree / "benchmarks" / "_guard_procs.py"), "upstream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        up_url = _url(up)
        out = tmp / "profile.json"
        cmd = [sys.executable, __file__, "--child", str(tmp), "--upstream", up_url]
        cmd += ["--requests", str(n), "--tree", str(tree)]
        subprocess.run(cmd + (["--no-profile"] if not profile else []), env=env, check=True)
        result: dict[str, Any] = json.loads(out.read_text("utf-8"))
    finally:
        up.terminate()
        up.wait(timeout=30)
    result["tree"] = str(tree)
    return result


def _child(tmp: Path, upstream: str, n: int, *, profile: bool) -> None:
    """In the tree's own interpreter: the guard app in process, requests through ASGI.

    The proxy hands its blocking work (context, decision, audit append) to worker threads
    with ``asyncio.to_thread``; cProfile sees one thread, so here that work runs inline (the
    same calls, without the hand-off). The upstream is a real server on loopback.
    """
    import asyncio
    import cProfile

    import httpx
    from _guard_env import SUPPORT_KEY, make_registry, write_policy

    from dormant.guard._app import build
    from dormant.guard._open import open_guard
    from dormant.guard.proxy import GuardProxy, ProxySettings

    async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    asyncio.to_thread = inline  # type: ignore[assignment]
    policy = write_policy(tmp / "policy")
    registry = make_registry(tmp / "registry.sqlite3")
    audit = f"sqlite:///{tmp / 'audit.sqlite3'}"
    guard = open_guard(policy, registry_url=registry, audit_url=audit)
    proxy = GuardProxy(guard, settings=ProxySettings(upstream))
    app = build(proxy)
    body = {"model": "stub", "messages": [{"role": "user", "content": "read"}]}
    head = {"authorization": f"Bearer {SUPPORT_KEY}"}
    prof = cProfile.Profile()

    async def go() -> tuple[float, float]:
        await proxy.startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://guard") as c:
            for _ in range(50):  # warm the code paths and the upstream connection
                r = await c.post("/v1/chat/completions", json=body, headers=head)
                assert r.status_code == 200, r.text
            cpu0, t0 = time.process_time(), time.perf_counter()
            if profile:
                prof.enable()
            for _ in range(n):
                r = await c.post("/v1/chat/completions", json=body, headers=head)
                assert r.status_code == 200, r.text
            if profile:
                prof.disable()
            cpu1, t1 = time.process_time(), time.perf_counter()
        await proxy.shutdown()
        return (cpu1 - cpu0) / n * 1000, (t1 - t0) / n * 1000

    import gc

    gc_s = [0.0]
    gc_runs = [0, 0, 0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - started[0]
            gc_runs[info["generation"]] += 1

    gc.callbacks.append(on_gc)
    cpu_ms, wall_ms = asyncio.run(go())
    gc.callbacks.remove(on_gc)
    rows: dict[str, float] = {}
    stats = pstats.Stats(prof) if profile else None
    for (file, line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items() if stats else ():  # type: ignore[attr-defined]
        name = f"{_short(file)}:{line}({func})"
        rows[name] = rows.get(name, 0.0) + tt / n * 1e6
    result = {
        "requests": n,
        "profiled": profile,
        "modules_loaded": len(sys.modules),
        "gc_tracked_objects": len(gc.get_objects()),
        "gc_ms_per_request": round(gc_s[0] / n * 1000, 4),
        "gc_collections_by_generation": gc_runs,
        "cpu_ms_per_request": round(cpu_ms, 4),
        "wall_ms_per_request": round(wall_ms, 4),
        "tottime_us_per_request": rows,
    }
    (tmp / "profile.json").write_text(json.dumps(result), "utf-8")


def _short(file: str) -> str:
    for mark in ("/src/dormant/", "/site-packages/", "/lib/python3.11/"):
        if mark in file:
            return file.split(mark, 1)[1]
    return file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, action="append", required=True)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--no-profile", action="store_true", help="no cProfile: CPU, GC and module counts only"
    )
    ap.add_argument("--rounds", type=int, default=1, help="the trees in turn, this many times")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child, args.upstream, args.requests, profile=not args.no_profile)
        return 0
    results = []
    for _ in range(args.rounds):
        for tree in args.tree:
            with tempfile.TemporaryDirectory() as tmp:
                r = profile_tree(
                    tree.resolve(), args.requests, Path(tmp), profile=not args.no_profile
                )
                results.append(r)
    for r in results:
        print(
            f"{r['tree']}: {r['cpu_ms_per_request']} ms CPU, {r['wall_ms_per_request']} ms "
            f"wall, GC {r['gc_ms_per_request']} ms per request (GC runs by generation "
            f"{r['gc_collections_by_generation']}; {r['gc_tracked_objects']} objects tracked, "
            f"{r['modules_loaded']} modules; profiled: {r['profiled']})"
        )
    names = set().union(*(r["tottime_us_per_request"] for r in results))
    table = [(n, [r["tottime_us_per_request"].get(n, 0.0) for r in results]) for n in names]
    table.sort(key=lambda t: -(max(t[1]) - min(t[1])) if len(results) > 1 else -t[1][0])
    print("own time per request (us), " + " | ".join(Path(r["tree"]).name for r in results))
    for name, vals in table[: args.top]:
        print(" | ".join(f"{v:8.1f}" for v in vals) + f"  {name}")
    if args.out:
        top = {n for n, _ in table[: args.top * 4]}
        slim = [
            {
                **r,
                "tottime_us_per_request": {
                    n: round(v, 2) for n, v in r["tottime_us_per_request"].items() if n in top
                },
            }
            for r in results
        ]
        args.out.write_text(json.dumps(slim, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
