"""The decision core: one proposed tool call in, one :class:`Decision` out — a pure function.

:func:`decide` does no I/O (the policy is already loaded, the model already resolved, the
baseline already read), so any agent framework can call it in process, and the proxy and the MCP
gateway are thin shells around it. The checks, in order (every check runs once the call is
well-formed and known, so a denial lists all its reasons):

1. a malformed call (no tool name, arguments that were not a JSON object) — deny;
2. an identity or a tool not in the policy — deny (never guessed);
3. the tool's privilege class against the ceiling: the provenance ceiling of the model's state,
   lowered to the suspect tier's ceiling when a known trigger is in the request — deny;
4. Cedar: ``Agent::identity`` ``call_tool`` ``Tool::name`` with the context of
   :mod:`dormant.guard.policy` — deny unless permitted;
5. argument constraints: path globs, amount limits, secret patterns — deny;
6. the shared behaviour detectors (:mod:`dormant.behaviours`) on the arguments: a destination
   outside the allow-list (URLs, e-mail addresses and ``user@host:path`` anywhere, plus bare
   hosts and ``//host`` in address fields such as ``to``, ``url``, ``host``), an egress-class
   call that names no destination at all, credential material — deny;
7. a tool or behaviour a probe proved for this model (``proven_behaviours``) — deny;
8. canary credentials (honeytokens; Spitzner 2003, "Honeytokens: the other honeypot"): any canary
   in the call, also after NFKC, invisible-character removal, URL-, hex- or base64-decoding —
   deny and raise the critical alert ``canary`` (whatever else is wrong with the call);
9. ``hold = true`` — hold for approval; otherwise allow.

A monitoring baseline (:class:`dormant.guard.monitor.BaselineView`) adds ``new-tool`` /
``new-destination`` alerts without changing the outcome. Any exception inside denies with the
reason (fail closed). :func:`screen_response` is the output side.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, Protocol
from urllib.parse import unquote_plus, urlsplit

from ..behaviours import get_detector, registrable_domain
from ..triggers import is_invisible
from ._screen import screen_response  # the output side, re-exported here
from .policy import GuardPolicy, lower, within
from .types import (
    Decision,
    DecisionContext,
    Outcome,
    Privilege,
    ProposedCall,
)

#: Severity of each alert the core raises.
ALERT_SEVERITY: dict[str, str] = {
    "canary": "critical",
    "new-tool": "medium",
    "new-destination": "medium",
    # raised by the MCP gateway (dormant.guard.mcp_pins): a pinned tool definition changed
    "tool-definition-changed": "critical",
}

_EGRESS = get_detector("egress")
_SECRET = get_detector("secret")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
_MAX_DEPTH = 32
#: Text in one call's arguments above which the call is refused as malformed (every detector
#: must read all of it, so an unbounded argument would be a way to stall the guard).
MAX_ARGUMENT_CHARS = 262_144
_INDEX = re.compile(r"\[\d+\]")
_HOST = re.compile(
    r"^\[?([A-Za-z0-9_.:-]*\.[A-Za-z0-9_-]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*)\]?(?::\d+)?/?$"
)
#: Argument names that hold a destination (when a tool names no ``destination_args``).
_DEST_WORDS = (
    "url uri href link host hostname domain server endpoint webhook callback callback_url "
    "to cc bcc recipient recipients email address destination target repo remote"
)
_DEST_KEYS = frozenset(_DEST_WORDS.split())


class BaselineLike(Protocol):
    """What :func:`decide` needs of a baseline: alerts for a tool and its destinations."""

    def alerts(self, tool: str, destinations: tuple[str, ...]) -> tuple[str, ...]: ...


def decide(
    context: DecisionContext,
    call: ProposedCall,
    *,
    policy: GuardPolicy,
    baseline: BaselineLike | None = None,
) -> Decision:
    """Decide one proposed tool call (pure; never raises: an internal error denies).

    Parameters
    ----------
    context:
        Who asks (identity), the resolved model, the known triggers found in the request, the
        canaries placed in the agent's context.
    call:
        The proposed tool call.
    policy:
        The loaded :class:`GuardPolicy`.
    baseline:
        The (model, identity) monitoring baseline, read beforehand; adds alerts only.

    Returns
    -------
    Decision
        ``allow``, ``deny`` or ``hold`` with every reason, the privilege class, the effective
        ceiling, the tier, the behaviour tags found and the alerts raised.
    """
    version = getattr(policy, "version", None)
    safe_call = call if isinstance(call, ProposedCall) else ProposedCall(tool="<malformed>")
    try:
        return _decide(context, call, policy, baseline)
    except Exception as exc:  # fail closed: a broken check denies and says why
        return Decision(
            Outcome.DENY,
            (f"guard error, denied (fail closed): {type(exc).__name__}: {str(exc)[:200]}",),
            safe_call,
            policy_version=version,
        )


def _decide(
    context: DecisionContext,
    call: ProposedCall,
    policy: GuardPolicy,
    baseline: BaselineLike | None,
) -> Decision:
    version = policy.version
    if not isinstance(call, ProposedCall):
        return Decision(
            Outcome.DENY,
            (f"malformed call: expected a ProposedCall, got {type(call).__name__}",),
            ProposedCall(tool="<malformed>"),
            policy_version=version,
        )
    if not isinstance(context, DecisionContext):
        raise TypeError(f"context must be a DecisionContext, got {type(context).__name__}")
    # the tripwire fires whatever else is wrong with the call
    canaries = tuple(dict.fromkeys(context.canaries + policy.all_canaries()))
    tripped = bool(canaries) and _uses_canary(_call_strings(call), canaries)
    trip = ("canary",) if tripped else ()
    trip_reason = (CANARY_REASON,) if tripped else ()
    problem = _malformed(call)
    if problem:
        return Decision(
            Outcome.DENY,
            (f"malformed call: {problem}", *trip_reason),
            call,
            behaviours=trip,
            alerts=trip,
            policy_version=version,
        )
    if context.identity not in policy.identities:
        return Decision(
            Outcome.DENY,
            (f"identity {context.identity!r} is not in the policy (deny by default)", *trip_reason),
            call,
            behaviours=trip,
            alerts=trip,
            policy_version=version,
        )
    spec = policy.tools.get(call.tool)
    suspect = bool(context.triggers)
    tier = "suspect" if suspect else "normal"
    prov = context.model.provenance
    ceiling = policy.ceiling_for(prov)
    if suspect:
        ceiling = lower(ceiling, policy.suspect_ceiling)
    if spec is None:
        return Decision(
            Outcome.DENY,
            (
                f"tool {call.tool!r} is not in the policy's tool catalogue (deny by default)",
                *trip_reason,
            ),
            call,
            ceiling=ceiling,
            tier=tier,
            behaviours=trip,
            alerts=trip,
            policy_version=version,
        )
    reasons: list[str] = []
    alerts: list[str] = []
    priv = spec.privilege
    if not within(priv, ceiling):
        why = f"model provenance {prov.value}"
        if context.model.detail:
            why += f" ({context.model.detail})"
        if suspect:
            names = ", ".join(sorted({repr(t.text) for t in context.triggers})[:3])
            why += f"; known trigger {names} in the request (suspect tier)"
        reasons.append(
            f"tool {call.tool!r} is {priv.value}-class; the ceiling is "
            f"{ceiling.value if ceiling else 'none (no tools)'}: {why}"
        )

    strings = list(_strings(call.arguments))
    dest_strings = (
        [s for k, s in strings if k.split(".", 1)[0] in spec.destination_args]
        if spec.destination_args
        else [s for _, s in strings]
    )
    egress_hits = [h for s in dest_strings for h in _EGRESS.detect(s)]
    found = [_norm_host(h.detail) for h in egress_hits]
    egress_tags = {h.tag for h in egress_hits}
    # destinations the detector cannot see in prose: bare hosts and //host/ in address fields
    for key, s in strings:
        name = _leaf(key)
        if name in spec.destination_args or (not spec.destination_args and name in _DEST_KEYS):
            host = _bare_host(s)
            if host:
                found.append(host)
                egress_tags.add(f"egress:{registrable_domain(host)}")
    hosts = tuple(dict.fromkeys(h for h in found if h))
    if priv is Privilege.EGRESS and not hosts:
        reasons.append(
            f"no destination host found in the arguments of egress tool {call.tool!r} "
            "(an egress call must name where it sends)"
        )
    path = _first_path(call.arguments, spec.path_args)
    amount_raw = call.arguments.get(spec.amount_arg)
    amount: float | None = None
    if amount_raw is not None:
        amount = _number(amount_raw)
        if amount is None:
            reasons.append(f"argument {spec.amount_arg!r} is not a finite number: {amount_raw!r}")

    cedar_ctx = {
        "privilege": priv.value,
        "provenance": prov.value,
        "tier": tier,
        "host": hosts[0] if hosts else "",
        "hosts": list(hosts),
        "path": path or "",
        "amount": _long(math.ceil(amount)) if amount is not None else 0,
        "amount_cents": _long(round(amount * 100)) if amount is not None else 0,
        "has_amount": amount is not None,
    }
    if not policy.is_authorized(context.identity, call.tool, cedar_ctx):
        reasons.append(
            f"the Cedar policy does not permit Agent::{context.identity!r} to call "
            f"Tool::{call.tool!r} (tier {tier}, provenance {prov.value})"
        )

    if path is not None and not spec.path_allowed(path):
        reasons.append(
            f"path {path!r} is outside the tool's allowed paths {list(spec.paths or ())}"
        )
    if amount is not None:
        if spec.max_amount is not None and amount > spec.max_amount:
            reasons.append(f"amount {amount:g} is above the tool's limit {spec.max_amount:g}")
        if spec.min_amount is not None and amount < spec.min_amount:
            reasons.append(f"amount {amount:g} is below the tool's minimum {spec.min_amount:g}")
    for pat in spec.secret_patterns:
        rx = re.compile(pat)
        if any(rx.search(s) for _, s in strings):
            reasons.append(f"an argument matches the tool's secret pattern {pat!r}")

    for host in hosts:
        if not spec.host_allowed(host, policy.destinations):
            reasons.append(f"destination {host!r} is outside the tool's allow-list")
    secret_tags = sorted({h.tag for _, s in strings for h in _SECRET.detect(s)})
    if secret_tags and not spec.allow_secrets:
        reasons.append(f"credential material in the arguments ({', '.join(secret_tags)})")

    behaviours = sorted({f"tool:{call.tool}"} | egress_tags | set(secret_tags))
    proven = {_same_egress(t) for t in context.model.proven_behaviours}
    for tag in behaviours:
        if _same_egress(tag) in proven:
            reasons.append(f"a probe proved this model's trigger-driven behaviour {tag!r}")

    if tripped:
        reasons.append(CANARY_REASON)
        alerts.append("canary")
        behaviours.append("canary")

    if baseline is not None:
        for a in baseline.alerts(call.tool, hosts):
            if a not in alerts:
                alerts.append(a)

    if reasons:
        outcome = Outcome.DENY
    elif spec.hold:
        outcome = Outcome.HOLD
        reasons.append(f"tool {call.tool!r} is held for approval by the policy")
    else:
        outcome = Outcome.ALLOW
        reasons.append(f"permitted: {priv.value}-class tool within the ceiling, Cedar permits")
    return Decision(
        outcome,
        tuple(reasons),
        call,
        privilege=priv,
        ceiling=ceiling,
        tier=tier,
        behaviours=tuple(behaviours),
        alerts=tuple(alerts),
        policy_version=version,
        destinations=hosts,
    )


CANARY_REASON = "a canary credential is used in the call (honeytoken tripwire)"


def _same_egress(tag: str) -> str:
    """``egress:mailto:x.com`` and ``egress:x.com`` name the same destination."""
    return "egress:" + tag[len("egress:mailto:") :] if tag.startswith("egress:mailto:") else tag


def _call_strings(call: ProposedCall) -> list[str]:
    """The strings of a call (tool, arguments, raw argument text), at most
    :data:`MAX_ARGUMENT_CHARS` characters in all (a larger call is denied as malformed)."""
    out = [call.tool[:256]] if isinstance(call.tool, str) else []
    budget = MAX_ARGUMENT_CHARS
    if isinstance(call.raw_arguments, str):
        out.append(call.raw_arguments[:budget])
        budget -= len(out[-1])
    if isinstance(call.arguments, dict):
        with suppress(ValueError):  # too deep: denied as malformed anyway
            for _, s in _strings(call.arguments):
                if budget <= 0:
                    break
                out.append(s[:budget])
                budget -= len(out[-1])
    return out


def _malformed(call: ProposedCall) -> str | None:
    if not isinstance(call.tool, str) or not call.tool:
        return "the call names no tool"
    if not _TOOL_NAME.match(call.tool):
        return f"tool name {call.tool[:80]!r} is not a plain identifier"
    if call.raw_arguments is not None:
        return f"arguments are not valid JSON: {call.raw_arguments[:80]!r}"
    if not isinstance(call.arguments, dict):
        return f"arguments must be a JSON object, got {type(call.arguments).__name__}"
    try:
        size = sum(len(s) for _, s in _strings(call.arguments))
    except ValueError as exc:
        return str(exc)
    if size > MAX_ARGUMENT_CHARS:
        return (
            f"arguments hold {size:,} characters of text, more than the limit "
            f"{MAX_ARGUMENT_CHARS:,}"
        )
    return None


def _strings(value: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (keys too), with its dotted key path."""
    if depth > _MAX_DEPTH:
        raise ValueError("arguments nest deeper than 32 levels")
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            yield sub, str(k)
            yield from _strings(v, sub, depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]" if key else f"[{i}]", depth + 1)


def _leaf(key: str) -> str:
    """``"a.b[2]"`` -> ``"b"``: the argument's own name."""
    return _INDEX.sub("", key).rsplit(".", 1)[-1].lower()


def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _bare_host(value: str) -> str | None:
    """The host of an address field: a URL, ``//host/…``, ``user@host`` or a bare host name."""
    v = value.strip()
    if not v:
        return None
    if "://" in v or v.startswith("//"):
        try:
            host = urlsplit(v if "://" in v else "http:" + v).hostname
        except ValueError:
            return None
        return _norm_host(host) if host else None
    if "@" in v:
        v = v.rsplit("@", 1)[1]
    m = _HOST.match(v)
    return _norm_host(m.group(1)) if m else None


def _first_path(args: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for n in names:
        v = args.get(n)
        if isinstance(v, str):
            return v
    return None


def _long(n: int) -> int:
    """Clamped into Cedar's 64-bit ``Long``."""
    return max(-(2**62), min(2**62, n))


def _number(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def _variants(s: str) -> Iterator[str]:
    """``s`` as it is, NFKC without invisibles, URL-decoded, and each hex or base64 run
    decoded."""
    yield s
    if s.isascii():
        clean = s
    else:
        clean = "".join(c for c in unicodedata.normalize("NFKC", s) if not is_invisible(c))
        yield clean
    unq = unquote_plus(clean) if "%" in clean or "+" in clean else clean
    if unq is not clean:
        yield unq
    for m in _HEX.finditer(unq):
        with suppress(ValueError):
            yield bytes.fromhex(m.group(0)).decode("utf-8", "ignore")
    for m in _B64.finditer(unq):
        chunk = m.group(0)
        for dec in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = dec(chunk + "=" * (-len(chunk) % 4))
            except (binascii.Error, ValueError):
                continue
            yield raw.decode("utf-8", "ignore")


def _uses_canary(strings: list[str], canaries: tuple[str, ...]) -> bool:
    folded = [c.casefold() for c in canaries]
    for s in strings:
        for v in _variants(s):
            low = v.casefold()
            if any(c in low for c in folded):
                return True
    return False


__all__ = ["ALERT_SEVERITY", "MAX_ARGUMENT_CHARS", "BaselineLike", "decide", "screen_response"]
