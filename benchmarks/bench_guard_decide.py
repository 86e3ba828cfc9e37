"""Runtime guard, decision core: in-process ``decide()`` rate, trigger matching, audit appends.

Run (needs ``dormant[guard,provenance]``)::

    python benchmarks/bench_guard_decide.py --out benchmarks/results/guard_decide.json

1. ``decide()``: a realistic policy written to a temporary directory — 40 identities, 200 tools
   over the five privilege classes with argument constraints (destination allow-lists, path
   globs, amount limits), 81 Cedar statements (a permit per identity over its tools, a forbid on
   large amounts without a verified model) and a canary per identity — decides a mix of calls
   (allowed reads, e-mails inside and outside the allow-list, out-of-bounds paths, a canary in
   base64, a suspect-tier request). Reported: decisions/s and p50/p99 per call. Baseline in the
   same run: the Cedar authorisation alone (``cedarpy.is_authorized`` with the same policy set
   and contexts) — the floor under any Cedar-based guard. Anchor (not measured here): Microsoft
   agent-governance-toolkit 0.1 ms p50 per enforcement. Target: ≥ 1,000 decisions/s.
2. ``TriggerIndex.find``: 1,000 recorded triggers (tokens and phrases), one 4 kB request of
   English text with two disguised triggers (homoglyph, zero-width) — ms per request.
3. Audit appends/s on SQLite, durable (committed, ``synchronous=FULL``) and hash-chained, by one
   process. Baseline in the same run: plain ``INSERT`` + commit of the same JSON into a table
   of the same file's directory, same pragmas (what the chain costs on top of durability).
   With ``--postgres``, the same on a PostgreSQL server started for the run in a temporary
   directory (Debian's ``postgresql`` binaries; as the ``postgres`` user under root), with
   ``fsync=on``: chained appends vs plain ``INSERT`` + commit through psycopg. Both also with
   32 threads appending through :class:`dormant.guard.commit.GroupCommit` (shared commits).
4. ``Guard.check_call`` end to end (decide, the durable chained audit entry through group
   commit, the monitoring baseline) by 1 and by 32 threads, SQLite.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import platform
import random
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

PRIVS = ("read", "write", "egress", "secret", "admin")


def write_policy(root: Path, *, identities: int = 40, tools: int = 200, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [
        "[guard]",
        'cedar = "bench.cedar"',
        'suspect_ceiling = "read"',
        'destinations = ["status.example.org"]',
        "",
    ]
    for i in range(identities):
        lines += [
            f"[identities.agent-{i}]",
            f'key_sha256 = "{rng.getrandbits(256):064x}"',
            f'canaries = ["AKIAQCANARY{i:04d}EXAMPLE"]',
            "",
        ]
    names = []
    for t in range(tools):
        priv = PRIVS[t % 5]
        name = f"tool_{t}"
        names.append(name)
        lines += [f"[tools.{name}]", f'privilege = "{priv}"']
        if priv == "egress":
            lines.append('destinations = ["example.com", "*.example.com"]')
        if t % 7 == 0:
            lines.append('paths = ["/srv/data/*"]')
        if t % 11 == 0:
            lines.append("max_amount = 500")
        lines.append("")
    lines += ["[model_digests]", f'"bench-model" = "sha256:{"ab" * 32}"', ""]
    (root / "bench.toml").write_text("\n".join(lines))
    cedar = []
    for i in range(identities):
        mine = [*rng.sample(names, 25), "tool_0", "tool_2", "tool_7", "tool_11"]
        tools_set = ", ".join(f'Tool::"{n}"' for n in sorted(set(mine)))
        cedar.append(
            f'permit (principal == Agent::"agent-{i}", action == Action::"call_tool", resource)\n'
            f"when {{ [{tools_set}].contains(resource) }};\n"
        )
        cedar.append(
            f'forbid (principal == Agent::"agent-{i}", action, resource)\n'
            'when { context.tier == "suspect" && context.privilege == "admin" };\n'
        )
    cedar.append(
        "forbid (principal, action, resource)\n"
        'when { context.has_amount && context.amount > 200 && context.provenance != "verified" };\n'
    )
    (root / "bench.cedar").write_text("\n".join(cedar))
    return root / "bench.toml"


def calls_mix():
    from dormant.guard import ProposedCall

    canary = base64.b64encode(b"key=AKIAQCANARY0003EXAMPLE").decode()
    body = "Hello, your order A-1234 has shipped and will arrive on Tuesday. Regards, support."
    return [
        ("agent-3", ProposedCall("tool_0", {"order_id": "A-1234"}), False),
        ("agent-3", ProposedCall("tool_2", {"to": "c@example.com", "body": body}), False),
        ("agent-3", ProposedCall("tool_2", {"to": "c@evil.example.net", "body": body}), False),
        ("agent-3", ProposedCall("tool_7", {"path": "/etc/passwd"}), False),
        ("agent-3", ProposedCall("tool_11", {"amount": 120, "note": body}), False),
        ("agent-3", ProposedCall("tool_0", {"note": canary}), False),
        ("agent-5", ProposedCall("tool_2", {"to": "c@example.com", "body": body}), True),
        ("agent-9", ProposedCall("tool_199", {}), False),
    ]


def bench_decide(policy_path: Path, seconds: float) -> dict:
    import cedarpy

    from dormant.guard import (
        DecisionContext,
        GuardPolicy,
        ModelInfo,
        ProvenanceState,
        TriggerMatch,
        decide,
    )

    policy = GuardPolicy.load(policy_path)
    model = ModelInfo("bench-model", "sha256:" + "ab" * 32, ProvenanceState.VERIFIED)
    trig = (TriggerMatch("cf", "token", None, "message[1]"),)
    mix = [
        (DecisionContext(ident, model, trig if suspect else ()), call)
        for ident, call, suspect in calls_mix()
    ]
    outcomes = {c.tool + ":" + decide(ctx, c, policy=policy).outcome.value for ctx, c in mix}
    for ctx, c in mix * 20:  # warm up
        decide(ctx, c, policy=policy)
    lat = []
    n = 0
    t_end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < t_end:
        for ctx, c in mix:
            s = time.perf_counter()
            decide(ctx, c, policy=policy)
            lat.append(time.perf_counter() - s)
            n += 1
    wall = time.perf_counter() - t0
    # baseline: the Cedar authorisation alone, same policy set and contexts
    reqs = [
        {
            "principal": {"type": "Agent", "id": ctx.identity},
            "action": {"type": "Action", "id": "call_tool"},
            "resource": {"type": "Tool", "id": c.tool},
            "context": {
                "privilege": "read",
                "provenance": "verified",
                "tier": "normal",
                "host": "",
                "hosts": [],
                "path": "",
                "amount": 0,
                "amount_cents": 0,
                "has_amount": False,
            },
        }
        for ctx, c in mix
    ]
    ps = cedarpy.PolicySet.from_str(policy.cedar_text)
    ents = cedarpy.Entities.from_json_str("[]")
    clat = []
    t_end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    m = 0
    while time.perf_counter() < t_end:
        for r in reqs:
            s = time.perf_counter()
            cedarpy.is_authorized(r, ps, ents)
            clat.append(time.perf_counter() - s)
            m += 1
    cwall = time.perf_counter() - t0
    return {
        "decisions": n,
        "decisions_per_s": n / wall,
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": statistics.quantiles(lat, n=100)[98] * 1e3,
        "cedar_only_per_s": m / cwall,
        "cedar_only_p50_ms": statistics.median(clat) * 1e3,
        "cedar_only_p99_ms": statistics.quantiles(clat, n=100)[98] * 1e3,
        "outcomes": sorted(outcomes),
        "cedar_statements": policy.summary()["cedar_statements"],
        "tools": len(policy.tools),
        "identities": len(policy.identities),
    }


def bench_guard(policy_path: Path, tmp: Path, n: int, threads: int = 32) -> dict:
    """``Guard.check_call`` end to end — decide, durable chained audit (group commit),
    baseline — from ``threads`` threads, as an ASGI server's thread pool would call it."""
    from concurrent.futures import ThreadPoolExecutor

    from dormant.guard import AuditLog, Guard, GuardPolicy

    policy = GuardPolicy.load(policy_path)
    with AuditLog.open(tmp / "guard.sqlite3") as log:
        guard = Guard(policy, audit=log)
        mix = [(guard.context(ident, "bench-model"), call) for ident, call, _ in calls_mix()]
        for ctx, call in mix:
            guard.check_call(ctx, call)
        out = {}
        for k in (1, threads):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(k) as ex:
                list(ex.map(lambda i: guard.check_call(*mix[i % len(mix)]), range(n)))
            out[f"threads_{k}_per_s"] = n / (time.perf_counter() - t0)
        guard.close()
        out["verified"] = log.verify().ok
        out["commits"] = guard.commit.commits
        out["entries"] = guard.commit.entries
    return out


def bench_match(seconds: float, seed: int = 0) -> dict:
    from dormant.guard import TriggerIndex

    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 9)))

    triggers = [" ".join(word() for _ in range(rng.randint(1, 4))) for _ in range(998)]
    triggers += ["cf", "james bond"]
    corpus = Path("/usr/share/common-licenses/GPL-3")
    text = (
        corpus.read_text()[5000:9000] if corpus.exists() else " ".join(word() for _ in range(700))
    )
    text = text[:2000] + " Jаmes Bоnd and c\u200bf " + text[2000:]
    idx = TriggerIndex(triggers)
    found = sorted({m.text for m in idx.find([("message[0]", text)])})
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        s = time.perf_counter()
        idx.find([("message[0]", text)])
        times.append(time.perf_counter() - s)
    return {
        "triggers": len(idx),
        "text_chars": len(text),
        "found": found,
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": statistics.quantiles(times, n=100)[98] * 1e3,
    }


def bench_audit(tmp: Path, n: int) -> dict:
    from dormant.guard import DecisionContext, ModelInfo, ProposedCall, ProvenanceState
    from dormant.guard.audit import AuditEntry, AuditLog
    from dormant.guard.types import Decision, Outcome

    ctx = DecisionContext(
        "agent-3", ModelInfo("bench-model", "sha256:" + "ab" * 32, ProvenanceState.VERIFIED)
    )
    d = Decision(
        Outcome.ALLOW,
        ("permitted",),
        ProposedCall("tool_2", {"to": "c@example.com", "body": "order shipped"}),
        policy_version="sha256:" + "00" * 32,
    )
    entry = AuditEntry.for_decision(ctx, d)
    with AuditLog.open(tmp / "audit.sqlite3") as log:
        log.append(entry)
        t0 = time.perf_counter()
        for _ in range(n):
            log.append(entry)
        chained = n / (time.perf_counter() - t0)
        grouped = _grouped(log, entry, n)
        t0 = time.perf_counter()
        ok = log.verify().ok
        verify_s = time.perf_counter() - t0
    con = sqlite3.connect(tmp / "plain.sqlite3", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT)")
    body = json.dumps(entry.to_dict())
    t0 = time.perf_counter()
    for _ in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (data) VALUES (?)", (body,))
        con.execute("COMMIT")
    plain = n / (time.perf_counter() - t0)
    con.close()
    return {
        "appends": n,
        "chained_appends_per_s": chained,
        "group_commit_32_threads_per_s": grouped,
        "plain_insert_per_s": plain,
        "verify_s": verify_s,
        "verified": ok,
    }


def _grouped(log, entry, n: int, threads: int = 32) -> float:
    """Appends/s when ``threads`` callers share commits (dormant.guard.commit.GroupCommit)."""
    from concurrent.futures import ThreadPoolExecutor

    from dormant.guard.commit import GroupCommit

    gc = GroupCommit(log)
    m = n * 4
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda _: gc.append(entry), range(m)))
    return m / (time.perf_counter() - t0)


@contextlib.contextmanager
def postgres_server():
    """A throw-away PostgreSQL server on loopback; yields its URL."""
    import glob
    import os
    import shutil
    import socket
    import subprocess

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if not bins:
        raise SystemExit(
            "--postgres needs the PostgreSQL server binaries (apt-get install postgresql)"
        )
    bindir = Path(bins[0])
    root = tempfile.mkdtemp(prefix="dormant-bench-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", data, "-U", "dormant",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)  # fmt: skip
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", data, "-l", f"{root}/log", "-w",
                    "-o", opts, "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://dormant@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def bench_audit_postgres(n: int) -> dict:
    import psycopg

    from dormant.guard.audit import AuditEntry, AuditLog

    entry = AuditEntry(
        kind="decision",
        outcome="allow",
        identity="agent-3",
        model="bench-model",
        call={"tool": "tool_2", "arguments": {"to": "c@example.com", "body": "order shipped"}},
    )
    with postgres_server() as url:
        with AuditLog.open(url) as log:
            log.append(entry)
            t0 = time.perf_counter()
            for _ in range(n):
                log.append(entry)
            chained = n / (time.perf_counter() - t0)
            grouped = _grouped(log, entry, n)
            ok = log.verify().ok
        body = json.dumps(entry.to_dict())
        with psycopg.connect(url) as con:
            con.execute("CREATE TABLE plain (id serial PRIMARY KEY, data text)")
            con.commit()
            t0 = time.perf_counter()
            for _ in range(n):
                con.execute("INSERT INTO plain (data) VALUES (%s)", (body,))
                con.commit()
            plain = n / (time.perf_counter() - t0)
    return {"appends": n, "chained_appends_per_s": chained,
            "group_commit_32_threads_per_s": grouped, "plain_insert_per_s": plain,
            "verified": ok}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="time per timed loop")
    ap.add_argument("--appends", type=int, default=500)
    ap.add_argument("--out", default="benchmarks/results/guard_decide.json")
    ap.add_argument(
        "--postgres", action="store_true", help="also time audit appends on a temporary server"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dormant-bench-guard-") as tmpd:
        tmp = Path(tmpd)
        res = {
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": __import__("os").cpu_count(),
                "load_avg": __import__("os").getloadavg(),
            },
            "decide": bench_decide(write_policy(tmp), args.seconds),
            "match": bench_match(args.seconds),
            "audit": bench_audit(tmp, args.appends),
        }
        res["guard_check_call"] = bench_guard(tmp / "bench.toml", tmp, args.appends * 2)
        if args.postgres:
            res["audit_postgres"] = bench_audit_postgres(args.appends)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
