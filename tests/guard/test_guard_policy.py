"""Guard policy loading: TOML + Cedar, deny by default, invalid files named by file and line."""

from __future__ import annotations

import pytest

pytest.importorskip("cedarpy", reason="needs the 'guard' extra")

from _guard_policy import BILLING_KEY, CANARY, CEDAR, SUPPORT_KEY, TOML, write_policy
from _paths import ROOT

from dormant.cli import EXIT_OK, EXIT_USAGE
from dormant.errors import ConfigError, InputNotFoundError
from dormant.guard import GuardPolicy, Privilege, ProvenanceState


def test_loads_the_example_and_the_test_policy(tmp_path):

    example = ROOT / "examples" / "guard" / "guard.toml"
    ex = GuardPolicy.load(example)
    assert ex.tool_privilege("send_email") is Privilege.EGRESS
    pol = GuardPolicy.load(write_policy(tmp_path))
    assert pol.tool_privilege("rotate_credentials") is Privilege.ADMIN
    assert pol.tool_privilege("format_disk") is None  # not in the catalogue: never guessed
    assert pol.ceiling_for(ProvenanceState.UNKNOWN) is Privilege.READ
    assert pol.ceiling_for(ProvenanceState.TAMPERED) is None
    assert pol.version.startswith("sha256:") and len(pol.version) == 71
    assert pol.canaries_for("support-bot") == (CANARY,)
    assert pol.summary()["cedar_statements"] == 3


def test_version_changes_with_either_file(tmp_path):
    a = GuardPolicy.load(write_policy(tmp_path / "a"))
    b = GuardPolicy.load(write_policy(tmp_path / "b", cedar=CEDAR + "\n// a comment\n"))
    c = GuardPolicy.load(write_policy(tmp_path / "c", toml=TOML + "\n# note\n"))
    assert len({a.version, b.version, c.version}) == 3


def test_api_keys_are_matched_by_their_hash(tmp_path):
    pol = GuardPolicy.load(write_policy(tmp_path))
    assert pol.identity_for_key(SUPPORT_KEY) == "support-bot"
    assert pol.identity_for_key(BILLING_KEY) == "billing-bot"
    assert pol.identity_for_key(SUPPORT_KEY[:-1]) is None
    assert pol.identity_for_key("") is None
    assert "dg-support" not in (tmp_path / "guard.toml").read_text()  # only the hash is stored


def test_ceilings_default_to_strict_when_left_out(tmp_path):
    toml = TOML.replace('verified = "admin"\nsigned = "write"\n', "")
    pol = GuardPolicy.load(write_policy(tmp_path, toml=toml))
    assert pol.ceiling_for(ProvenanceState.VERIFIED) is Privilege.ADMIN
    assert pol.ceiling_for(ProvenanceState.SIGNED) is Privilege.WRITE


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle", "words"),
    [
        ('privilege = "egress"', 'privilege = "egres"', 'privilege = "egres"', "privilege"),
        ("max_amount = 500", "max_amount = 500\nmax_amout = 9", "max_amout", "unknown key"),
        ('tampered = "none"', 'tampered = "root"', 'tampered = "root"', "tampered"),
        ('unknown = "read"', 'unknwn = "read"', "unknwn", "unknown provenance state"),
        ("key_sha256 = ", "key_sha256 = 'abc' #", "key_sha256 = 'abc'", "64 lower-case hex"),
        ('suspect_ceiling = "read"', "suspect_ceiling = 3", "suspect_ceiling = 3", "suspect"),
        (
            'secret_patterns = ["(?i)internal-only"]',
            'secret_patterns = ["(unclosed"]',
            "(unclosed",
            "invalid regex",
        ),
        (
            'canaries = ["',
            'place_canaries = "yes"\ncanaries = ["',
            'place_canaries = "yes"',
            "expected true or false",
        ),
        (
            "[tools.lookup_order]",
            "place_canaries = true\n\n[tools.lookup_order]",
            "place_canaries = true",
            "has no canaries",
        ),
    ],
)
def test_an_invalid_toml_key_is_named_with_its_line(tmp_path, old, new, needle, words):
    toml = TOML.replace(old, new, 1)
    assert toml != TOML
    path = write_policy(tmp_path, toml=toml)
    with pytest.raises(ConfigError) as err:
        GuardPolicy.load(path)
    msg = str(err.value)
    assert f"{path}:{_line(toml, needle)}:" in msg, msg
    assert words in msg


def test_broken_toml_syntax_names_the_line(tmp_path):
    toml = TOML.replace("[tools.refund]", "[tools.refund")
    path = write_policy(tmp_path, toml=toml)
    with pytest.raises(ConfigError, match=rf"guard\.toml:{_line(toml, '[tools.refund')}: invalid"):
        GuardPolicy.load(path)


def test_a_cedar_syntax_error_names_the_statement_line(tmp_path):
    cedar = CEDAR.replace("context.amount > 200", "context.amount >")
    path = write_policy(tmp_path, cedar=cedar)
    with pytest.raises(ConfigError) as err:
        GuardPolicy.load(path)
    assert f"guard.cedar:{_line(cedar, 'forbid')}:" in str(err.value)


def test_a_cedar_statement_that_fails_the_schema_names_its_line(tmp_path):
    cedar = CEDAR.replace("context.provenance", "context.provenanse")
    path = write_policy(tmp_path, cedar=cedar)
    with pytest.raises(ConfigError) as err:
        GuardPolicy.load(path)
    msg = str(err.value)
    assert f"guard.cedar:{_line(cedar, 'forbid')}:" in msg and "provenanse" in msg


def test_missing_and_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        GuardPolicy.load(tmp_path / "nope.toml")
    path = write_policy(tmp_path)
    (tmp_path / "guard.cedar").unlink()
    with pytest.raises(InputNotFoundError, match=r"guard\.cedar"):
        GuardPolicy.load(path)
    write_policy(tmp_path, cedar="// nothing permitted\n")
    with pytest.raises(ConfigError, match="empty"):
        GuardPolicy.load(path)


def test_cli_policy_check_exit_codes(tmp_path, run_cli):
    good = write_policy(tmp_path / "good")
    r = run_cli("guard", "policy", "check", good)
    assert r.code == EXIT_OK and "policy ok" in r.out and "support-bot" in r.out
    cedar = CEDAR.replace("context.provenance", "context.provenanse")
    bad = write_policy(tmp_path / "bad", cedar=cedar)
    r = run_cli("guard", "policy", "check", bad)
    assert r.code == EXIT_USAGE
    assert f"guard.cedar:{_line(cedar, 'forbid')}" in r.err and "Traceback" not in r.err


def test_cli_key_new_prints_a_key_and_its_hash(run_cli):
    import hashlib
    import re

    r = run_cli("guard", "key", "new")
    assert r.code == EXIT_OK
    key = re.search(r"(dg-\S+)", r.out).group(1)
    digest = re.search(r'key_sha256 = "([0-9a-f]{64})"', r.out).group(1)
    assert hashlib.sha256(key.encode()).hexdigest() == digest


def test_check_warns_about_names_the_toml_lacks(tmp_path, run_cli):
    cedar = CEDAR.replace('Tool::"lookup_order", Tool::"refund"', 'Tool::"lookup_ordr"')
    path = write_policy(tmp_path, cedar=cedar.replace('"billing-bot"', '"biling-bot"'))
    pol = GuardPolicy.load(path)
    text = " | ".join(pol.warnings())
    assert "Tool::'lookup_ordr'" in text and "Agent::'biling-bot'" in text
    r = run_cli("guard", "policy", "check", path)
    assert r.code == EXIT_OK and "warning: Cedar names Tool::'lookup_ordr'" in r.err


def test_cli_decide_dry_run(tmp_path, run_cli):
    import json

    path = write_policy(tmp_path)
    base = ("guard", "decide", path, "--identity", "support-bot", "--model", "support-model")
    r = run_cli(*base, "--tool", "send_email", "--args", '{"to": "a@evil.io"}',
                "--provenance", "verified")  # fmt: skip
    assert r.code == 1 and r.out.startswith("deny") and "evil.io" in r.out
    r = run_cli(*base, "--tool", "lookup_order", "--args", '{"id": 1}', "--json")
    assert r.code == EXIT_OK and json.loads(r.out)["ceiling"] == "read"  # no registry: unknown
    r = run_cli(*base, "--tool", "update_ticket", "--provenance", "verified",
                "--text", "ｃｆ please", "--args", '{"note": "x"}')  # fmt: skip
    assert r.code == EXIT_OK  # no known triggers without a registry
    r = run_cli(*base, "--tool", "lookup_order", "--args", "[1")
    assert r.code == EXIT_USAGE and "--args must be a JSON object" in r.err


def test_a_key_being_rotated_has_two_hashes(tmp_path):
    import hashlib

    new = "dg-rotated-key-0003"
    old_line = next(x for x in TOML.splitlines() if x.startswith("key_sha256"))
    old_hash = old_line.split("=", 1)[1].strip()
    both = f'key_sha256 = [{old_hash}, "{hashlib.sha256(new.encode()).hexdigest()}"]'
    pol = GuardPolicy.load(write_policy(tmp_path, toml=TOML.replace(old_line, both, 1)))
    assert pol.identity_for_key(SUPPORT_KEY) == pol.identity_for_key(new) == "support-bot"
    with pytest.raises(ConfigError, match="list of them"):
        GuardPolicy.load(write_policy(tmp_path, toml=TOML.replace(old_line, "key_sha256 = []", 1)))


def test_files_saved_with_a_byte_order_mark_load(tmp_path):
    path = write_policy(tmp_path, toml="\ufeff" + TOML, cedar="\ufeff" + CEDAR)
    assert GuardPolicy.load(path).tool_privilege("lookup_order") is Privilege.READ


def test_the_example_policy_decides_as_the_readme_says():
    """Copied as it is, the example policy gives the decisions the README describes."""

    from dormant.guard import DecisionContext, ModelInfo, Outcome, ProposedCall, decide

    pol = GuardPolicy.load(ROOT / "examples" / "guard" / "guard.toml")

    def run(identity, state, tool, **args):
        ctx = DecisionContext(identity, ModelInfo("support-model", None, state))
        return decide(ctx, ProposedCall(tool, args), policy=pol)

    s = ProvenanceState
    assert run("support-bot", s.UNKNOWN, "lookup_order", order_id="1234").allowed
    unknown_mail = run("support-bot", s.UNKNOWN, "send_email", to="bob@example.com")
    assert not unknown_mail.allowed and "ceiling is read" in "; ".join(unknown_mail.reasons)
    assert run("support-bot", s.VERIFIED, "send_email", to="bob@example.com").allowed
    assert not run("support-bot", s.VERIFIED, "send_email", to="a@evil.io").allowed
    assert run("billing-bot", s.SIGNED, "refund", amount=120).outcome is Outcome.HOLD
    assert run("billing-bot", s.SIGNED, "refund", amount=300).outcome is Outcome.DENY
    assert run("billing-bot", s.VERIFIED, "refund", amount=300).outcome is Outcome.HOLD
    assert not run("support-bot", s.VERIFIED, "refund", amount=5).allowed
    canary = run("support-bot", s.VERIFIED, "lookup_order", order_id="AKIAQCANARY7EXAMPLE0")
    assert not canary.allowed and "canary" in canary.alerts
