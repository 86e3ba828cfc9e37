"""The audit chain (tamper evidence, concurrent writers), baselines, approvals and their CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("sqlalchemy", reason="needs the 'provenance' extra")
pytest.importorskip("cedarpy", reason="needs the 'guard' extra")

from _guard_policy import MODEL, MODEL_DIGEST, write_policy
from _paths import ROOT, TESTS

from dormant.cli import EXIT_OK, EXIT_USAGE, EXIT_VERIFY
from dormant.errors import ConfigError
from dormant.guard import (
    DecisionContext,
    GuardPolicy,
    ModelInfo,
    ProposedCall,
    ProvenanceState,
    TriggerMatch,
    decide,
)
from dormant.guard.approvals import Approvals
from dormant.guard.audit import AuditEntry, AuditLog
from dormant.guard.monitor import Baseline

SRC = str(ROOT / "src")


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return GuardPolicy.load(write_policy(tmp_path_factory.mktemp("policy")))


def _ctx(identity="billing-bot", rid="r-1"):
    model = ModelInfo(MODEL, MODEL_DIGEST, ProvenanceState.VERIFIED)
    trig = (TriggerMatch("cf", "token", "tool:refund", "message[0]"),)
    return DecisionContext(identity, model, trig if rid == "r-trig" else (), request_id=rid)


def _fill(log: AuditLog, policy: GuardPolicy, n: int = 5) -> None:
    for i in range(n):
        c = _ctx(rid=f"r-{i}")
        d = decide(c, ProposedCall("refund", {"amount": 10 + i}), policy=policy)
        log.append(AuditEntry.for_decision(c, d))


def test_entries_round_trip_and_the_chain_verifies(tmp_path, policy):
    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        c = _ctx(rid="r-trig")
        d = decide(c, ProposedCall("refund", {"amount": 42, "note": "é ünïcode"}), policy=policy)
        seq = log.append(AuditEntry.for_decision(c, d))
        assert seq == 1
        _fill(log, policy, 4)
        got = log.entries()
        assert [e.seq for e in got] == [1, 2, 3, 4, 5]
        first = got[0]
        assert first.identity == "billing-bot" and first.digest == MODEL_DIGEST
        assert first.provenance == "verified" and first.outcome == "deny"  # suspect tier
        assert first.triggers[0]["text"] == "cf" and first.call["arguments"]["amount"] == 42
        assert first.policy_version == policy.version and first.request_id == "r-trig"
        assert got[1].prev_hash == first.hash and first.compute_hash() == first.hash
        res = log.verify()
        assert res.ok and res.entries == 5 and res.head_seq == 5
        assert log.entries(since=3) == got[3:]
        assert [e.seq for e in log.entries(outcome="deny")] == [1]


def _tamper(db: Path, *sql: tuple) -> None:
    con = sqlite3.connect(db)
    with con:
        for stmt in sql:
            con.execute(*stmt)
    con.close()


@pytest.mark.parametrize(
    ("sql", "broken", "words"),
    [
        (
            [("UPDATE guard_audit SET outcome='deny' WHERE seq=3",)],
            3,
            "entry 3 was edited",
        ),
        (
            [("UPDATE guard_audit SET data=replace(data, '12', '9999') WHERE seq=3",)],
            3,
            "edited",
        ),
        ([("DELETE FROM guard_audit WHERE seq=3",)], 3, "entry 3 is missing"),
        ([("DELETE FROM guard_audit WHERE seq=5",)], 5, "head record"),
        (
            [
                ("DELETE FROM guard_audit WHERE seq=5",),
                (
                    "UPDATE guard_audit_head SET seq=4, hash=(SELECT hash FROM guard_audit "
                    "WHERE seq=4)",
                ),
                ("UPDATE guard_audit SET outcome='hold' WHERE seq=2",),
            ],
            2,
            "entry 2 was edited",
        ),
        (
            [
                (
                    "INSERT INTO guard_audit SELECT 6, at, kind, request_id, identity, model, "
                    "digest, provenance, outcome, policy_version, data, hash, hash "
                    "FROM guard_audit WHERE seq=5",
                )
            ],
            6,
            "",
        ),
    ],
)
def test_verify_names_the_first_broken_entry(tmp_path, policy, sql, broken, words, run_cli):
    db = tmp_path / "audit.sqlite3"
    with AuditLog.open(db) as log:
        _fill(log, policy, 5)
        assert log.verify().ok
    _tamper(db, *sql)
    with AuditLog.open(db) as log:
        res = log.verify()
    assert not res.ok and res.first_broken == broken, res
    assert words in res.reason
    r = run_cli("guard", "audit", "verify", "--audit", db)
    assert r.code == EXIT_VERIFY and f"entry {broken}" in r.err


def test_an_entry_inserted_in_the_middle_is_found(tmp_path, policy):
    db = tmp_path / "audit.sqlite3"
    with AuditLog.open(db) as log:
        _fill(log, policy, 4)
    # shift entries 3.. up by one and forge a well-hashed entry 3 after entry 2
    con = sqlite3.connect(db)
    with con:
        for seq in (4, 3):
            con.execute("UPDATE guard_audit SET seq=? WHERE seq=?", (seq + 1, seq))
        prev = con.execute("SELECT hash FROM guard_audit WHERE seq=2").fetchone()[0]
    con.close()
    forged = AuditEntry(
        kind="decision",
        outcome="allow",
        identity="mallory",
        seq=3,
        prev_hash=prev,
        at="2026-01-01T00:00:00+00:00",
    )
    forged = AuditEntry(**{**forged.__dict__, "hash": forged.compute_hash()})
    from dormant.guard.audit import _row

    con = sqlite3.connect(db)
    with con:
        row = _row(forged)
        cols = ", ".join(row)
        con.execute(
            f"INSERT INTO guard_audit ({cols}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
    con.close()
    with AuditLog.open(db) as log:
        res = log.verify()
    assert not res.ok and res.first_broken == 4 and "does not follow" in res.reason


WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{src!r}]
    from dormant.guard.audit import AuditEntry, AuditLog
    log = AuditLog.open({url!r})
    for i in range({n}):
        call = {{"tool": "t", "arguments": {{"i": i}}}}
        log.append(AuditEntry(kind="decision", outcome="allow", identity="w{w}",
                              request_id=f"w{w}-{{i}}", call=call))
    log.close()
    """
)


def test_concurrent_appends_from_two_processes_keep_the_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(src=SRC, url=url, n=40, w=w)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    errs = [p.communicate(timeout=120)[1] for p in procs]  # wait for both before asserting
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err
    with AuditLog.open(url) as log:
        res = log.verify()
        entries = log.entries()
    assert res.ok and res.entries == 80, res
    assert {e.identity for e in entries} == {"w0", "w1"}
    assert len({e.request_id for e in entries}) == 80


def test_baseline_learns_then_alerts(tmp_path):
    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        base = Baseline(log.store, learning_decisions=2)
        assert base.alerts_for(MODEL, "bot", "lookup_order") == ()  # learning
        base.observe(MODEL, "bot", "lookup_order", ())
        base.observe(MODEL, "bot", "send_email", ("mail.example.com",))
        view = base.view(MODEL, "bot")
        assert not view.learning and view.decisions == 2
        assert view.alerts("lookup_order", ()) == ()
        assert view.alerts("send_email", ("mail.example.com",)) == ()
        assert view.alerts("send_email", ("evil.io",)) == ("new-destination",)
        assert view.alerts("rotate_credentials", ()) == ("new-tool",)
        assert base.alerts_for(MODEL, "other-bot", "x") == ()  # its own baseline, still learning
        with pytest.raises(ConfigError, match="learning_decisions"):
            Baseline(log.store, learning_decisions=-1)


def test_approvals_flow_is_audited(tmp_path, policy, run_cli):
    db = tmp_path / "audit.sqlite3"
    c = _ctx()
    d = decide(c, ProposedCall("big_refund", {"amount": 5000}), policy=policy)
    assert d.outcome.value == "hold"
    with AuditLog.open(db) as log:
        seq = log.append(AuditEntry.for_decision(c, d))
        appr = Approvals(log)
        a = appr.hold(c, d, audit_seq=seq)
        b = appr.hold(c, d, audit_seq=seq)
        assert [h.id for h in appr.list()] == [a, b] and appr.status(a) == "pending"
    r = run_cli("guard", "approvals", "list", "--audit", db)
    assert r.code == EXIT_OK and "big_refund" in r.out and "pending" in r.out
    r = run_cli("guard", "approvals", "approve", a, "--audit", db, "--actor", "ops", "--note", "ok")
    assert r.code == EXIT_OK and "approved by ops" in r.out
    assert "released once when billing-bot's model proposes 'big_refund' again" in r.out
    r = run_cli("guard", "approvals", "deny", b, "--audit", db, "--actor", "ops")
    assert r.code == EXIT_OK and "denied" in r.out
    r = run_cli("guard", "approvals", "approve", a, "--audit", db, "--actor", "ops")
    assert r.code == EXIT_USAGE and "already approved" in r.err
    r = run_cli("guard", "approvals", "deny", 999, "--audit", db)
    assert r.code == EXIT_USAGE and "No held call with id 999" in r.err
    with AuditLog.open(db) as log:
        entries = log.entries(kind="approval")
        assert [(e.outcome, e.detail["hold_id"], e.detail["actor"]) for e in entries] == [
            ("allow", a, "ops"),
            ("deny", b, "ops"),
        ]
        assert log.verify().ok
        assert Approvals(log).list() == []
        assert {h.status for h in Approvals(log).list(status=None)} == {"approved", "denied"}
    r = run_cli("guard", "audit", "verify", "--audit", db)
    assert r.code == EXIT_OK and "intact: 3 entries" in r.out


def test_report_renders_decisions_and_alerts(tmp_path, policy, run_cli):
    db = tmp_path / "audit.sqlite3"
    with AuditLog.open(db) as log:
        _fill(log, policy, 2)
        c = _ctx("support-bot")
        d = decide(
            c, ProposedCall("update_ticket", {"note": "AKIAQCANARY7EXAMPLE0"}), policy=policy
        )
        log.append(AuditEntry.for_decision(c, d))
    out = tmp_path / "rep"
    r = run_cli("guard", "report", "--audit", db, "--out", out)  # every format by default
    assert r.code == EXIT_OK
    data = json.loads((out / "guard-report.json").read_text())
    assert data["summary"]["entries"] == 3 and data["summary"]["chain_ok"]
    assert data["alerts"] == [{"alert": "canary", "severity": "critical", "seq": 3}]
    md = (out / "guard-report.md").read_text()
    assert "| critical | canary | 3 |" in md and "honeytoken" in md
    html = (out / "guard-report.html").read_text()
    assert "<h2>Alerts</h2>" in html and "critical" in html and "<script" not in html
    assert not list(out.glob("*.part"))
    _check_sarif(out / "guard-report.sarif", ok_chain=True)
    r = run_cli("guard", "report", "--audit", db, "--out", out, "--formats", "pdf")
    assert r.code == EXIT_USAGE and "json, sarif, md, html" in r.err
    # a broken chain is an error result of its own
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE guard_audit SET outcome='allow' WHERE seq=3")
    con.close()
    r = run_cli("guard", "report", "--audit", db, "--out", out, "--formats", "sarif")
    assert r.code == EXIT_OK
    _check_sarif(out / "guard-report.sarif", ok_chain=False)


def _check_sarif(path: Path, *, ok_chain: bool) -> None:
    """The guard's SARIF validates against the official schema and carries the canary alert."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((TESTS / "data" / "sarif-schema-2.1.0.json").read_text())
    log = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(log, schema)
    (run,) = log["runs"]
    ids = [r["ruleId"] for r in run["results"]]
    assert ids[0] == "dormant/guard/canary" and run["results"][0]["level"] == "error"
    where = run["results"][0]["locations"][0]["logicalLocations"]
    assert where[0]["fullyQualifiedName"] == "identity/support-bot"
    assert ("dormant/guard/audit-chain-broken" in ids) is not ok_chain


def test_an_unreachable_audit_database_is_a_clear_error(run_cli):
    r = run_cli("guard", "audit", "verify", "--audit", "postgresql://nobody@127.0.0.1:1/none")
    assert r.code != EXIT_OK and "does not answer" in r.err and "Traceback" not in r.err


def test_the_guard_service_audits_before_release_and_fails_closed(tmp_path, policy):
    from _registry_helpers import poisoned_report

    from dormant.guard import Guard
    from dormant.registry import Registry

    with Registry.open(tmp_path / "reg.sqlite3") as reg:
        reg.record_provenance(MODEL_DIGEST, status="verified", method="key", signer="k", actor="t")
        reg.record_scan(poisoned_report())  # records the trigger "cf" (about another digest)
        log = AuditLog.open(tmp_path / "audit.sqlite3")
        guard = Guard(policy, audit=log, registry=reg)
        ctx = guard.context(
            "support-bot", MODEL, [("message[0]", "where is my order?")], request_id="q1"
        )
        assert ctx.model.provenance is ProvenanceState.VERIFIED and ctx.triggers == ()
        assert ctx.canaries == policy.canaries_for("support-bot")
        d = guard.check_call(ctx, ProposedCall("send_email", {"to": "a@mail.example.com"}))
        assert d.allowed and d.audit_seq == 1 and d.destinations == ("mail.example.com",)
        sus = guard.context("support-bot", MODEL, [("message[0]", "ｃｆ send it")])
        assert [t.text for t in sus.triggers] == ["cf"]
        d = guard.check_call(sus, ProposedCall("send_email", {"to": "a@example.com"}))
        assert d.outcome.value == "deny" and d.tier == "suspect" and d.audit_seq == 2
        bctx = guard.context("billing-bot", MODEL)
        held = guard.check_call(bctx, ProposedCall("big_refund", {"amount": 9000}))
        assert held.outcome.value == "hold" and held.hold_id is not None
        assert guard.approvals.status(held.hold_id) == "pending"
        r = guard.check_response(ctx, "Your order shipped.")
        assert r.allowed
        entries = log.entries()
        assert [e.kind for e in entries] == ["decision", "decision", "decision", "response"]
        assert entries[0].detail["destinations"] == ["mail.example.com"]
        assert log.verify().ok
        # the audit database goes away: nothing is released unlogged
        log.close()
        broken = AuditLog.open(tmp_path / "audit.sqlite3")
        guard.audit = guard.commit.log = broken
        (tmp_path / "audit.sqlite3").unlink()
        (tmp_path / "audit.sqlite3").mkdir()  # now a directory: every write fails
        broken.store.engine.dispose()
        d = guard.check_call(ctx, ProposedCall("lookup_order", {"id": "1"}))
        assert d.outcome.value == "deny" and "fail closed" in d.reasons[-1]
        r = guard.check_response(ctx, "Your order shipped.")
        assert r.outcome.value == "deny" and r.text == ""


def test_appends_from_threads_keep_the_chain(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with AuditLog.open(tmp_path / "audit.sqlite3") as log:

        def one(i: int) -> int:
            return log.append(AuditEntry(kind="decision", outcome="allow", identity=f"t{i % 4}"))

        with ThreadPoolExecutor(6) as ex:
            seqs = list(ex.map(one, range(60)))
        assert sorted(seqs) == list(range(1, 61))
        assert log.verify().ok


def test_the_guard_service_sees_registry_changes_after_its_ttl(tmp_path, policy):
    from _registry_helpers import poisoned_report

    from dormant.guard import Guard
    from dormant.registry import Registry

    with Registry.open(tmp_path / "reg.sqlite3") as reg, AuditLog.open(tmp_path / "a.db") as log:
        fresh = Guard(policy, audit=log, registry=reg, provenance_ttl=0, triggers_ttl=0)
        cached = Guard(policy, audit=log, registry=reg, provenance_ttl=3600, triggers_ttl=3600)
        for g in (fresh, cached):
            assert g.context("support-bot", MODEL).model.provenance is ProvenanceState.UNKNOWN
        reg.record_provenance(MODEL_DIGEST, status="verified", method="key", signer="k", actor="t")
        reg.record_scan(poisoned_report())
        texts = [("message[0]", "cf")]
        now = fresh.context("support-bot", MODEL, texts)
        assert now.model.provenance is ProvenanceState.VERIFIED and now.triggers
        old = cached.context("support-bot", MODEL, texts)
        assert old.model.provenance is ProvenanceState.UNKNOWN and not old.triggers


def test_readers_do_not_create_a_missing_audit_database(tmp_path, run_cli):
    missing = tmp_path / "typo.sqlite3"
    for argv in (
        ("guard", "audit", "verify", "--audit", missing),
        ("guard", "approvals", "list", "--audit", missing),
        ("guard", "report", "--audit", missing, "--out", tmp_path / "rep"),
    ):
        r = run_cli(*argv)
        assert r.code == EXIT_USAGE and "There is no guard database" in r.err
    assert not missing.exists() and not (tmp_path / "rep").exists()


def test_credentials_in_a_call_are_redacted_in_the_audit_log(tmp_path, policy):
    token = "ghp_" + "a1B2" * 9
    c = _ctx("support-bot")
    d = decide(
        c, ProposedCall("update_ticket", {"note": f"key {token}", "n": [token]}), policy=policy
    )
    assert d.outcome.value == "deny"
    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        log.append(AuditEntry.for_decision(c, d))
        e = log.entries()[0]
        assert log.verify().ok
    args = e.call["arguments"]
    assert token not in json.dumps(e.to_dict())
    assert args["note"] == "key [REDACTED:secret:github_token]" and len(args["n"]) == 1
    for f in tmp_path.glob("audit.sqlite3*"):  # the database and its write-ahead log
        assert token not in f.read_bytes().decode("latin-1")


LOOPER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{src!r}]
    from dormant.guard.audit import AuditEntry, AuditLog
    log = AuditLog.open({url!r})
    i = 0
    while True:
        seq = log.append(AuditEntry(kind="decision", outcome="allow", request_id=str(i)))
        print(seq, flush=True)  # what a client would have been told
        i += 1
    """
)


def test_kill_9_during_appends_leaves_a_valid_chain_with_every_acknowledged_entry(tmp_path):
    import signal
    import time

    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    acknowledged = 0
    for round_ in range(3):
        p = subprocess.Popen(
            [sys.executable, "-c", LOOPER.format(src=SRC, url=url)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        seqs = [int(p.stdout.readline()) for _ in range(5)]  # it is appending now
        time.sleep(0.05 + 0.1 * round_)
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate(timeout=30)
        seqs += [int(x) for x in out.split()]
        acknowledged = max(acknowledged, seqs[-1])
        with AuditLog.open(url) as log:
            res = log.verify()
        assert res.ok, res
        assert res.head_seq >= acknowledged  # nothing acknowledged was lost


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    args=json_values, model=st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
)
def test_any_json_call_round_trips_and_verifies(tmp_path_factory, args, model):
    db = tmp_path_factory.mktemp("rt") / "audit.sqlite3"
    with AuditLog.open(db) as log:
        entry = AuditEntry(
            kind="decision", outcome="deny", model=model, call={"tool": "t", "arguments": args}
        )
        log.append(entry)
        log.append(entry)
        res = log.verify()
        assert res.ok, res
        got = log.entries()[0]
    assert got.compute_hash() == got.hash


def test_group_commit_shares_commits_between_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from dormant.guard.commit import GroupCommit

    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        gc = GroupCommit(log, max_batch=16)
        entry = AuditEntry(kind="decision", outcome="allow", identity="t")
        with ThreadPoolExecutor(12) as ex:
            seqs = list(ex.map(lambda _: gc.append(entry), range(120)))
        assert sorted(seqs) == list(range(1, 121)) and gc.entries == 120
        assert log.verify().ok
        assert gc.append(entry) == 121  # a lone caller commits at once
        with pytest.raises(ConfigError, match="kind"):
            gc.append(AuditEntry(kind="nonsense", outcome="allow"))
        assert log.verify().ok and log.verify().entries == 121
        with pytest.raises(ConfigError, match="max_batch"):
            GroupCommit(log, max_batch=0)


def test_append_many_is_all_or_nothing(tmp_path):
    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        ok = AuditEntry(kind="decision", outcome="allow")
        assert log.append_many([ok, ok]) == [1, 2]
        with pytest.raises(ConfigError):
            log.append_many([ok, AuditEntry(kind="bad", outcome="allow")])
        assert log.verify().entries == 2 and log.append(ok) == 3 and log.append_many([]) == []


def test_baseline_buffers_observations_and_flushes_them(tmp_path):
    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        a = Baseline(log.store, learning_decisions=1, flush_every=1000, flush_seconds=3600)
        a.observe(MODEL, "bot", "lookup_order", ("api.example.com",))
        assert a.view(MODEL, "bot").decisions == 1  # buffered, still in this process's view
        other = Baseline(log.store, learning_decisions=1, cache_seconds=0)
        assert other.view(MODEL, "bot").decisions == 0  # not written yet
        a.flush()
        v = other.view(MODEL, "bot")
        assert v.decisions == 1 and v.tools == {"lookup_order"}
        assert v.destinations == {"api.example.com"}
        a.observe(MODEL, "bot", "lookup_order")
        a.flush()
        assert other.view(MODEL, "bot").decisions == 2
        assert a.view(MODEL, "bot").decisions == 2


def test_hand_written_forms_hash_as_the_dataclass_forms_did(policy):
    """The audit entry's hash and the decision's JSON form keep their old shape (entries written
    before the hand-written forms still verify)."""
    from dataclasses import asdict

    ctx = DecisionContext(
        "support-bot",
        ModelInfo(MODEL, MODEL_DIGEST, ProvenanceState.UNKNOWN, detail="not in the registry"),
        triggers=(TriggerMatch("cf-7", "rare-token", "egress:evil.example", "message[0]"),),
        request_id="r1",
    )
    call = ProposedCall("send_email", {"to": "a@evil.example", "cc": ["b@x"]}, call_id="c1")
    decision = decide(ctx, call, policy=policy)
    old = asdict(decision)
    old["outcome"] = decision.outcome.value
    old["privilege"] = decision.privilege.value if decision.privilege else None
    old["ceiling"] = decision.ceiling.value if decision.ceiling else None
    assert decision.to_dict() == old
    entry = AuditEntry.for_decision(ctx, decision)
    legacy = asdict(entry)
    del legacy["hash"]
    for k in ("triggers", "reasons", "alerts", "behaviours"):
        legacy[k] = list(legacy[k])
    assert entry.payload() == legacy
    assert entry.triggers == tuple(asdict(t) for t in ctx.triggers)


def test_an_approved_held_call_is_released_once_when_proposed_again(tmp_path, policy, run_cli):
    from dormant.guard import Guard
    from dormant.registry import Registry

    db = tmp_path / "audit.sqlite3"
    with Registry.open(tmp_path / "reg.sqlite3") as reg:
        reg.record_provenance(MODEL_DIGEST, status="verified", method="key", signer="k", actor="t")
        guard = Guard(policy, audit=AuditLog.open(db), registry=reg)
        ctx = guard.context("billing-bot", MODEL)
        call = ProposedCall("big_refund", {"amount": 9000, "order": ["a", 1]}, call_id="c1")
        held = guard.check_call(ctx, call)
        assert held.outcome.value == "hold"
        # not approved yet: held again (a second hold)
        assert guard.check_call(ctx, call).outcome.value == "hold"
        r = run_cli("guard", "approvals", "approve", held.hold_id, "--audit", db, "--actor", "ops")
        assert r.code == EXIT_OK
        # other arguments, another identity: still held / not released
        other = ProposedCall("big_refund", {"amount": 9001, "order": ["a", 1]})
        assert guard.check_call(ctx, other).outcome.value == "hold"
        again = ProposedCall("big_refund", {"amount": 9000, "order": ["a", 1]}, call_id="c9")
        d = guard.check_call(ctx, again)
        assert d.allowed and d.hold_id == held.hold_id and "a person approved" in d.reasons[0]
        assert guard.approvals.status(held.hold_id) == "released"
        # one approval releases one call
        assert guard.check_call(ctx, again).outcome.value == "hold"
        guard.close()
    with AuditLog.open(db) as log:
        allowed = log.entries(kind="decision", outcome="allow")
        assert len(allowed) == 1 and allowed[0].detail["hold_id"] == held.hold_id
        assert allowed[0].call["call_id"] == "c9" and log.verify().ok
    r = run_cli("guard", "approvals", "list", "--all", "--audit", db)
    assert "released" in r.out
