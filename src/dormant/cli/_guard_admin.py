"""``dormant guard policy check | audit verify | approvals … | report | key new``."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import secrets
import sys
from typing import Any

from ..guard.types import ProvenanceState
from . import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, EXIT_VERIFY, error

AUDIT_HELP = "the guard database: sqlite:///file, a path or postgresql://… "
"(default $DORMANT_GUARD_AUDIT or guard-audit.sqlite3 in the user data directory)"


def register(sub: Any) -> None:
    """Add the operator's subcommands to ``dormant guard``."""
    p = sub.add_parser("policy", help="check a guard policy (TOML + Cedar)")
    psub = p.add_subparsers(dest="policy_action", metavar="ACTION")
    p.set_defaults(func=lambda a: _help(p))
    c = psub.add_parser(
        "check",
        help="validate a policy and print its summary (exit 2 naming the line when invalid)",
    )
    c.add_argument("policy", help="the policy's TOML file (its Cedar file is named inside)")
    c.add_argument("--cedar", help="the Cedar file, overriding the TOML's [guard] cedar")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.set_defaults(func=_policy_check)

    d = sub.add_parser(
        "decide",
        help="dry run: decide one proposed tool call against a policy (exit 0 allow, 1 deny/hold)",
        description="Decide one tool call as the guard would, without writing anything. The "
        "model's provenance comes from --provenance, or from the registry with --registry.",
    )
    d.add_argument("policy", help="the policy's TOML file")
    d.add_argument("--identity", required=True, help="the agent identity")
    d.add_argument("--tool", required=True, help="the proposed tool")
    d.add_argument("--args", default="{}", help="the call's arguments as a JSON object")
    d.add_argument("--model", default="model", help="the served model name (default: model)")
    d.add_argument(
        "--provenance",
        choices=[s.value for s in ProvenanceState],
        help="the model's provenance state (default: resolved from --registry, else unknown)",
    )
    d.add_argument("--registry", metavar="URL", help="resolve the model's provenance here")
    d.add_argument(
        "--text", action="append", default=[], help="request text to match known triggers in"
    )
    d.add_argument("--json", action="store_true", help="print the decision as JSON")
    d.set_defaults(func=_decide)

    a = sub.add_parser("audit", help="the hash-chained audit log")
    asub = a.add_subparsers(dest="audit_action", metavar="ACTION")
    a.set_defaults(func=lambda a_: _help(a))
    v = asub.add_parser("verify", help="recompute the chain (exit 0 intact, 4 broken)")
    v.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_audit_verify)
    s = asub.add_parser("show", help="print audit entries as JSON lines")
    s.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    s.add_argument("--since", type=int, default=0, help="entries after this sequence number")
    s.add_argument("--limit", type=int, default=100)
    s.set_defaults(func=_audit_show)

    ap = sub.add_parser("approvals", help="calls held for approval: list, approve, deny")
    apsub = ap.add_subparsers(dest="approvals_action", metavar="ACTION")
    ap.set_defaults(func=lambda a_: _help(ap))
    lst = apsub.add_parser("list", help="held calls (pending by default)")
    lst.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    lst.add_argument("--all", action="store_true", help="every held call, decided ones too")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_approvals_list)
    for name, helptext in (("approve", "release a held call"), ("deny", "refuse a held call")):
        q = apsub.add_parser(name, help=helptext)
        q.add_argument("id", type=int, help="the held call's id (from 'approvals list')")
        q.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
        q.add_argument("--actor", help="who decides (default: the login name)")
        q.add_argument("--note", help="why, recorded in the audit log")
        q.set_defaults(func=_approvals_decide, decision=name)

    r = sub.add_parser("report", help="decisions and alerts from the audit log as a report")
    r.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    r.add_argument("--out", "-o", default="dormant-guard-report", help="output directory")
    r.add_argument(
        "--formats", default="json,sarif,md,html", help="comma list of json, sarif, md, html"
    )
    r.add_argument("--since", type=int, default=0, help="entries after this sequence number")
    r.set_defaults(func=_report)

    k = sub.add_parser("key", help="API keys for agent identities")
    ksub = k.add_subparsers(dest="key_action", metavar="ACTION")
    k.set_defaults(func=lambda a_: _help(k))
    n = ksub.add_parser("new", help="print a fresh API key and the key_sha256 line for the TOML")
    n.set_defaults(func=_key_new)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _policy_check(args: argparse.Namespace) -> int:
    from ..guard.policy import GuardPolicy

    policy = GuardPolicy.load(args.policy, cedar=args.cedar)
    summary = policy.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(f"policy ok: {summary['policy']} + {summary['cedar']}")
    print(f"  version          {summary['version']}")
    print(f"  cedar statements {summary['cedar_statements']}")
    print(f"  identities       {', '.join(summary['identities']) or '(none)'}")
    tools = ", ".join(f"{t} ({p})" for t, p in summary["tools"].items())
    print(f"  tools            {tools or '(none: every call is denied)'}")
    ceil = ", ".join(f"{s}->{c}" for s, c in summary["ceilings"].items())
    print(f"  ceilings         {ceil}; suspect tier -> {summary['suspect_ceiling']}")
    print(f"  models           {', '.join(summary['models']) or '(none: provenance unknown)'}")
    for w in summary["warnings"]:
        print(f"dormant: warning: {w}", file=sys.stderr)
    return EXIT_OK


def _decide(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..guard import DecisionContext, ModelInfo, ProposedCall, TriggerIndex, decide
    from ..guard.policy import GuardPolicy
    from ..guard.provenance import resolve_model

    policy = GuardPolicy.load(args.policy)
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--args must be a JSON object: {exc}") from None
    if not isinstance(arguments, dict):
        raise ConfigError(f"--args must be a JSON object. Got {type(arguments).__name__}.")
    registry = None
    triggers = TriggerIndex()
    if args.registry:
        from ..registry import Registry

        registry = Registry.open(args.registry)
        triggers = TriggerIndex.from_registry(registry)
    try:
        if args.provenance:
            digest = policy.model_digests.get(args.model)
            model = ModelInfo(args.model, digest, ProvenanceState(args.provenance), detail="given")
        else:
            model = resolve_model(args.model, policy=policy, registry=registry)
    finally:
        if registry is not None:
            registry.close()
    texts = [(f"text[{i}]", t) for i, t in enumerate(args.text)]
    ctx = DecisionContext(
        args.identity,
        model,
        triggers.find(texts),
        canaries=policy.canaries_for(args.identity),
    )
    d = decide(ctx, ProposedCall(args.tool, arguments), policy=policy)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2, ensure_ascii=False))
    else:
        ceiling = d.ceiling.value if d.ceiling else "none"
        print(
            f"{d.outcome.value}: {args.identity} -> {args.tool} (tier {d.tier}, ceiling {ceiling})"
        )
        for r in d.reasons:
            print(f"  - {r}")
        if d.alerts:
            print(f"  alerts: {', '.join(d.alerts)}")
    return EXIT_OK if d.allowed else EXIT_FINDINGS


def _open_log(args: argparse.Namespace) -> Any:
    from ..guard.audit import AuditLog

    return AuditLog.open(args.audit, create=False)


def _audit_verify(args: argparse.Namespace) -> int:
    with _open_log(args) as log:
        res = log.verify()
    if args.json:
        print(json.dumps(res.__dict__, indent=2))
    elif res.ok:
        print(f"audit log intact: {res.entries} entries, head {res.head_seq} {res.head_hash}")
    else:
        error(f"audit log broken at entry {res.first_broken}: {res.reason}")
    return EXIT_OK if res.ok else EXIT_VERIFY


def _audit_show(args: argparse.Namespace) -> int:
    with _open_log(args) as log:
        for e in log.entries(since=args.since, limit=args.limit):
            print(json.dumps(e.to_dict(), ensure_ascii=False))
    return EXIT_OK


def _approvals_list(args: argparse.Namespace) -> int:
    from ..guard.approvals import Approvals

    with _open_log(args) as log:
        held = Approvals(log).list(status=None if args.all else "pending")
    if args.json:
        print(json.dumps([h.__dict__ for h in held], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not held:
        print("no held call" if args.all else "no pending held call")
        return EXIT_OK
    print("   id  status    created  identity  model  tool  arguments")
    for h in held:
        call = json.dumps(h.call.get("arguments", {}), ensure_ascii=False)[:120]
        print(
            f"{h.id:>5}  {h.status:8}  {h.created}  {h.identity}  {h.model}  "
            f"{h.call.get('tool')}  {call}"
        )
    return EXIT_OK


def _approvals_decide(args: argparse.Namespace) -> int:
    from ..guard.approvals import Approvals

    actor = args.actor or _login()
    with _open_log(args) as log:
        appr = Approvals(log)
        if args.decision == "approve":
            h = appr.approve(args.id, actor=actor, note=args.note)
        else:
            h = appr.deny(args.id, actor=actor, note=args.note)
    print(f"held call {h.id} {h.status} by {h.decided_by}")
    if h.status == "approved":
        print(
            f"  released once when {h.identity}'s model proposes {h.call.get('tool')!r} again "
            "with the same arguments"
        )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from ..guard.report import write_report

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with _open_log(args) as log:
        paths = write_report(log, args.out, formats=formats, since=args.since)
    for p in paths:
        print(p)
    return EXIT_OK


def _key_new(args: argparse.Namespace) -> int:
    key = "dg-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    print(f"API key (give it to the agent; it is not stored): {key}")
    print("line for the identity's table in the policy TOML:")
    print(f'key_sha256 = "{digest}"')
    return EXIT_OK


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")
