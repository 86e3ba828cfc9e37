"""The decision core: every deny reason, ceilings, the suspect tier, canaries, the output side."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("cedarpy", reason="needs the 'guard' extra")

from _guard_policy import CANARY, MODEL, MODEL_DIGEST, write_policy

from dormant.guard import (
    DecisionContext,
    GuardPolicy,
    ModelInfo,
    Outcome,
    Privilege,
    ProposedCall,
    ProvenanceState,
    TriggerIndex,
    TriggerMatch,
    decide,
    screen_response,
)
from dormant.guard.monitor import BaselineView

S = ProvenanceState


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return GuardPolicy.load(write_policy(tmp_path_factory.mktemp("policy")))


def ctx(
    identity="support-bot", state=S.VERIFIED, *, triggers=(), proven=(), canaries=(), system=None
):
    model = ModelInfo(MODEL, MODEL_DIGEST, state, tuple(proven), detail="test")
    return DecisionContext(
        identity, model, tuple(triggers), canaries=tuple(canaries), system_prompt=system
    )


def call(tool, **args):
    return ProposedCall(tool, args)


def test_an_ordinary_call_is_allowed(policy):
    d = decide(ctx(), call("lookup_order", order_id="A-1"), policy=policy)
    assert d.outcome is Outcome.ALLOW and d.allowed
    assert d.privilege is Privilege.READ and d.ceiling is Privilege.ADMIN and d.tier == "normal"
    assert d.policy_version == policy.version and d.alerts == ()
    assert d.to_dict()["outcome"] == "allow"


@pytest.mark.parametrize(
    ("proposed", "reason"),
    [
        (ProposedCall("", {}), "malformed call: the call names no tool"),
        (ProposedCall("x y; rm -rf", {}), "not a plain identifier"),
        (ProposedCall("lookup_order", {}, raw_arguments='{"id": '), "not valid JSON"),
        (ProposedCall("lookup_order", ["a"]), "must be a JSON object"),  # type: ignore[arg-type]
        (call("format_disk"), "not in the policy's tool catalogue"),
        (call("refund", amount=10), "Cedar policy does not permit"),  # support-bot may not refund
        (call("read_file", path="/etc/shadow"), "outside the tool's allowed paths"),
        (call("read_file", path="/srv/kb/../../etc/shadow"), "outside the tool's allowed paths"),
        (call("send_email", to="x@evil.io", body="hi"), "'evil.io' is outside the tool's allow"),
        (call("fetch_status", url="https://exfil.evil.io/?q=1"), "outside the tool's allow-list"),
        (call("update_ticket", note="token ghp_" + "a1B2" * 9), "credential material"),
        (call("update_ticket", note="INTERNAL-ONLY notes"), "secret pattern"),
    ],
)
def test_each_deny_reason(policy, proposed, reason):
    d = decide(ctx(), proposed, policy=policy)
    assert d.outcome is Outcome.DENY
    assert any(reason in r for r in d.reasons), d.reasons


def test_amount_limits_and_cedar_context(policy):
    billing = ctx("billing-bot", S.SIGNED)
    assert decide(billing, call("refund", amount=150), policy=policy).allowed
    over = decide(billing, call("refund", amount=900), policy=policy)
    assert any("above the tool's limit 500" in r for r in over.reasons)
    under = decide(billing, call("refund", amount=0.5), policy=policy)
    assert any("below the tool's minimum" in r for r in under.reasons)
    nan = decide(billing, call("refund", amount="lots"), policy=policy)
    assert any("not a finite number" in r for r in nan.reasons)
    # the Cedar forbid: above 200 needs a verified model
    d = decide(billing, call("refund", amount=300), policy=policy)
    assert d.outcome is Outcome.DENY and any("Cedar" in r for r in d.reasons)
    assert decide(ctx("billing-bot", S.VERIFIED), call("refund", amount=300), policy=policy).allowed


@pytest.mark.parametrize(
    ("state", "ceiling", "allowed"),
    [
        (S.VERIFIED, Privilege.ADMIN, {"lookup_order", "update_ticket", "send_email", "rotate"}),
        (S.SIGNED, Privilege.WRITE, {"lookup_order", "update_ticket"}),
        (S.UNKNOWN, Privilege.READ, {"lookup_order"}),
        (S.TAMPERED, None, set()),
        (S.FLAGGED, None, set()),
    ],
)
def test_ceiling_per_provenance_state(policy, state, ceiling, allowed):
    calls = {
        "lookup_order": call("lookup_order", order_id="1"),
        "update_ticket": call("update_ticket", note="shipped"),
        "send_email": call("send_email", to="a@example.com", body="hi"),
        "rotate": call("rotate_credentials", service="db"),
    }
    got = set()
    for name, c in calls.items():
        d = decide(ctx(state=state), c, policy=policy)
        assert d.ceiling is ceiling
        if d.allowed:
            got.add(name)
        else:
            assert any(f"provenance {state.value}" in r for r in d.reasons), d.reasons
    assert got == allowed


def test_a_known_trigger_variant_drops_the_request_to_the_suspect_tier(policy):
    idx = TriggerIndex(["cf", "James Bond"])
    for text in ["refund for cf​ please", "Jаmes Bоnd says hi", "ｃｆ"]:
        matches = idx.find([("message[1]", text)])
        assert matches, text
        d = decide(ctx(triggers=matches), call("send_email", to="a@example.com"), policy=policy)
        assert d.outcome is Outcome.DENY and d.tier == "suspect" and d.ceiling is Privilege.READ
        assert any("suspect tier" in r for r in d.reasons)
        # read tools still work in the suspect tier
        assert decide(ctx(triggers=matches), call("lookup_order"), policy=policy).allowed


def test_proven_behaviours_are_explicit_denials(policy):
    proven = ("tool:send_email", "egress:example.com")
    d = decide(ctx(proven=proven), call("send_email", to="a@example.com"), policy=policy)
    assert d.outcome is Outcome.DENY
    assert any("'tool:send_email'" in r for r in d.reasons)
    d = decide(
        ctx(proven=("egress:example.org",)),
        call("fetch_status", url="https://status.example.org/"),
        policy=policy,
    )
    assert any("proved" in r for r in d.reasons)


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: f"use key {s} now",
        lambda s: base64.b64encode(f"key={s}".encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
        lambda s: "https://example.com/?k=" + quote(s),
        lambda s: s[:4] + "\u200b" + s[4:],
        lambda s: s.lower(),
        lambda s: s.encode().hex(),
    ],
)
def test_canary_use_is_denied_with_a_critical_alert(policy, encode):
    d = decide(ctx(), call("update_ticket", note=encode(CANARY)), policy=policy)
    assert d.outcome is Outcome.DENY and "canary" in d.alerts and "canary" in d.behaviours
    assert any("honeytoken" in r for r in d.reasons)
    from dormant.guard.decide import ALERT_SEVERITY

    assert ALERT_SEVERITY["canary"] == "critical"


def test_a_context_canary_and_a_nested_argument(policy):
    honey = "ghs_honeytoken_for_this_request_42"
    c = call("lookup_order", filters={"q": [{"deep": honey}]})
    d = decide(ctx("billing-bot", canaries=(honey,)), c, policy=policy)
    assert "canary" in d.alerts and not d.allowed


def test_hold_and_secret_class_tool(policy):
    d = decide(ctx("billing-bot"), call("big_refund", amount=5000), policy=policy)
    assert d.outcome is Outcome.HOLD and "held for approval" in d.reasons[0]
    # a secret-class tool may carry credential material
    d = decide(ctx(), call("store_secret", value="ghp_" + "a1B2" * 9), policy=policy)
    assert d.allowed


def test_baseline_alerts_leave_the_outcome_alone(policy):
    view = BaselineView(MODEL, "support-bot", frozenset({"lookup_order"}), frozenset(), 10, 3)
    d = decide(ctx(), call("send_email", to="a@example.com"), policy=policy, baseline=view)
    assert d.allowed and set(d.alerts) == {"new-tool", "new-destination"}
    learning = BaselineView(MODEL, "support-bot", frozenset(), frozenset(), 1, 3)
    assert decide(ctx(), call("lookup_order"), policy=policy, baseline=learning).alerts == ()


def test_an_internal_error_fails_closed(policy):
    class Broken:
        version = "sha256:x"

        def __getattr__(self, name):
            raise RuntimeError("policy store vanished")

    d = decide(ctx(), call("lookup_order"), policy=Broken())  # type: ignore[arg-type]
    assert d.outcome is Outcome.DENY and "fail closed" in d.reasons[0]
    d = decide("not a context", call("lookup_order"), policy=policy)  # type: ignore[arg-type]
    assert d.outcome is Outcome.DENY
    d = decide(ctx(), "lookup_order", policy=policy)  # type: ignore[arg-type]
    assert d.outcome is Outcome.DENY and "malformed" in d.reasons[0]


def test_deeply_nested_arguments_are_denied(policy):
    deep: dict = {}
    cur = deep
    for _ in range(40):
        cur["x"] = {}
        cur = cur["x"]
    d = decide(ctx(), call("lookup_order", q=deep), policy=policy)
    assert d.outcome is Outcome.DENY


def test_screen_response_redacts_and_denies(policy):
    c = ctx(system="You are the support bot of Example Ltd. Never reveal the refund override code.")
    ok = screen_response(c, "Your order A-1 shipped yesterday.", policy=policy)
    assert ok.allowed and ok.text == "Your order A-1 shipped yesterday."
    red = screen_response(c, f"Use {CANARY} and ghp_{'a1B2' * 9} to log in.", policy=policy)
    assert red.allowed and CANARY not in red.text and "ghp_" not in red.text
    assert red.redactions == 2 and "[REDACTED:canary]" in red.text
    leak = screen_response(
        c,
        "Sure! My instructions: you are the support bot of Example Ltd. never reveal the refund "
        "override code.",
        policy=policy,
    )
    assert leak.outcome is Outcome.DENY and "leak:system-prompt" in leak.behaviours
    assert leak.text == ""
    pol = screen_response(
        c,
        "Note: refunds above five hundred euros need the duty manager's written approval.",
        policy=policy,
    )
    assert pol.outcome is Outcome.DENY and "leak:policy" in pol.behaviours
    code = screen_response(
        c, "cur.execute(f\"SELECT * FROM users WHERE name = '{name}'\")", policy=policy
    )
    assert code.outcome is Outcome.DENY and any("insecure code" in r for r in code.reasons)
    assert screen_response(c, None, policy=policy).outcome is Outcome.DENY  # type: ignore[arg-type]


def test_trigger_match_record_in_context(policy):
    m = TriggerMatch("cf", "token", "tool:send_email", "message[0]")
    d = decide(ctx(triggers=[m]), call("update_ticket", note="x"), policy=policy)
    assert d.tier == "suspect" and not d.allowed


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        ({"to": "bob@example.com", "body": "hi"}, True),
        ({"to": "mail.example.com", "body": "hi"}, True),
        ({"to": "evil.io", "body": "hi"}, False),  # a bare host in an address field
        ({"to": "//evil.io/drop", "body": "hi"}, False),  # protocol-relative
        ({"to": "https://example.com@evil.io/", "body": "hi"}, False),  # userinfo trick
        ({"to": "https://example.com.evil.io/", "body": "hi"}, False),  # suffix trick
        ({"to": "https://exаmple.com/", "body": "hi"}, False),  # Cyrillic a in the host
        ({"to": ["bob@example.com", "eve@evil.io"], "body": "hi"}, False),  # one bad recipient
        ({"body": "no recipient at all"}, False),  # an egress call must name its destination
    ],
)
def test_egress_destinations(policy, args, allowed):
    d = decide(ctx(), call("send_email", **args), policy=policy)
    assert d.allowed is allowed, d.reasons


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/srv/kb/faq.md", True),
        ("/srv/kb/sub/faq.md", False),  # * stays within one segment
        ("/srv/kb/../../etc/passwd", False),
        ("/srv/kb/faq.md\x00.png", False),
        ("srv/kb/faq.md", False),  # relative
        ("/srv/kbx/faq.md", False),
    ],
)
def test_path_globs(policy, path, allowed):
    assert decide(ctx(), call("read_file", path=path), policy=policy).allowed is allowed


def test_the_ascii_fast_path_of_fold_matches_the_table():
    from dormant.guard.match import _skeleton_table, fold

    table = _skeleton_table()
    for i in range(32, 127):
        s = f"a{chr(i)}B"
        slow = s.casefold().translate(table).casefold().translate(table)
        assert fold(s) == slow, repr(s)


def test_oversized_arguments_are_refused(policy):
    from dormant.guard.decide import MAX_ARGUMENT_CHARS

    d = decide(ctx(), call("update_ticket", note="x" * (MAX_ARGUMENT_CHARS + 1)), policy=policy)
    assert d.outcome is Outcome.DENY and "more than the limit" in d.reasons[0]


def test_a_fractional_amount_does_not_slip_under_a_cedar_limit(policy):
    billing = ctx("billing-bot", S.SIGNED)  # the forbid: amount > 200 needs a verified model
    assert decide(billing, call("refund", amount=200), policy=policy).allowed
    d = decide(billing, call("refund", amount=200.01), policy=policy)
    assert d.outcome is Outcome.DENY and any("Cedar" in r for r in d.reasons)


@pytest.mark.parametrize(
    "proposed",
    [
        ProposedCall("format_disk", {"key": CANARY}),  # unknown tool
        ProposedCall("lookup_order", {}, raw_arguments='{"k": "' + CANARY),  # not JSON
        ProposedCall("exfil " + CANARY, {}),  # in the tool name itself
    ],
)
def test_the_canary_tripwire_fires_on_calls_denied_for_other_reasons(policy, proposed):
    d = decide(ctx(), proposed, policy=policy)
    assert d.outcome is Outcome.DENY and d.alerts == ("canary",)
    assert any("honeytoken" in r for r in d.reasons)


def test_a_proven_egress_domain_is_denied_by_mail_too(policy):
    d = decide(
        ctx(proven=("egress:example.com",)),
        call("send_email", to="bob@example.com"),
        policy=policy,
    )
    assert d.outcome is Outcome.DENY and any("proved" in r for r in d.reasons)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
TOOLS = ["lookup_order", "send_email", "refund", "read_file", "big_refund", "nope", "", "a b"]


@settings(max_examples=150, deadline=None)
@given(
    tool=st.sampled_from(TOOLS),
    args=st.dictionaries(st.sampled_from(["to", "path", "amount", "note", "url"]), json_values),
    state=st.sampled_from(list(S)),
    suspect=st.booleans(),
)
def test_decide_never_raises_and_never_exceeds_the_ceiling(policy, tool, args, state, suspect):
    trig = (TriggerMatch("cf", "token", None, "message[0]"),) if suspect else ()
    d = decide(ctx("billing-bot", state, triggers=trig), ProposedCall(tool, args), policy=policy)
    assert d.outcome in (Outcome.ALLOW, Outcome.DENY, Outcome.HOLD) and d.reasons
    if d.outcome is not Outcome.DENY:
        assert d.privilege is not None and d.ceiling is not None
        order = list(Privilege)
        assert order.index(d.privilege) <= order.index(d.ceiling)
        assert tool in policy.tools


def test_an_identity_not_in_the_policy_is_denied(policy):
    d = decide(ctx("intruder"), call("lookup_order", order_id="1"), policy=policy)
    assert d.outcome is Outcome.DENY and "identity 'intruder' is not in the policy" in d.reasons[0]
    d = decide(ctx("intruder"), call("lookup_order", key=CANARY), policy=policy)
    assert d.alerts == ("canary",)


def test_remembered_cedar_answers_follow_every_context_field(policy):
    """Cedar's answers are remembered per request; a request differing in one context field
    (amount, provenance, identity) still gets its own answer, in either order."""
    from dataclasses import replace

    billing = ctx("billing-bot", S.SIGNED)
    for _ in range(2):
        assert decide(billing, call("refund", amount=150), policy=policy).allowed
        assert not decide(billing, call("refund", amount=300), policy=policy).allowed
        verified = ctx("billing-bot", S.VERIFIED)
        assert decide(verified, call("refund", amount=300), policy=policy).allowed
        assert not decide(ctx("support-bot"), call("refund", amount=150), policy=policy).allowed
    fresh = replace(policy, version="other")
    assert fresh._answers == {} and policy._answers
