"""The guard report as SARIF 2.1.0: alerts and a broken audit chain as results.

SARIF (OASIS *Static Analysis Results Interchange Format* 2.1.0) is the format the scans
already write for code-scanning dashboards; the guard's report joins them there. Mapping:

- one ``run``; ``tool.driver`` is dormant with one rule per alert kind seen
  (``dormant/guard/<alert>``: ``canary``, ``new-tool``, ``new-destination``,
  ``tool-definition-changed`` …) and ``dormant/guard/audit-chain-broken``;
- each alert on an audit entry is a ``result``: ``level`` from the alert's severity (critical
  and high → ``error``, medium → ``warning``), the identity and model as ``logicalLocations``
  (a runtime decision has no file or line), the entry's sequence number, tool and request id in
  ``properties``; ``partialFingerprints["dormantGuardEntry/v1"]`` is the entry's chain hash,
  so the same alert keeps its identity from one report to the next;
- a chain that does not verify is one ``error`` result naming the first broken entry.

Written here rather than through :mod:`dormant.writers.sarif`, whose results are scan
findings about a scanned subject (an artifact location), which a runtime alert does not have.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..findings import Severity
from ..writers._common import SARIF_LEVEL, SECURITY_SEVERITY
from ..writers.sarif import INFORMATION_URI, SARIF_SCHEMA_URI
from .audit import AuditEntry

_BROKEN = "audit-chain-broken"


def to_sarif(
    chain_ok: bool,
    chain_reason: str,
    alerts: list[tuple[str, AuditEntry]],
    severity: dict[str, str],
) -> dict[str, Any]:
    """The SARIF log for a guard report (see the module docstring for the mapping)."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []

    def rule(name: str, sev: Severity, text: str) -> int:
        rid = f"dormant/guard/{name}"
        if rid not in rules:
            rules[rid] = {
                "id": rid,
                "name": name,
                "shortDescription": {"text": text},
                "properties": {"security-severity": SECURITY_SEVERITY[sev], "tags": ["guard"]},
            }
        return list(rules).index(rid)

    for name, e in alerts:
        sev = Severity(severity.get(name, "medium"))
        tool = (e.call or {}).get("tool")
        idx = rule(name, sev, f"guard alert '{name}'")
        where = [
            {"name": e.identity or "-", "fullyQualifiedName": f"identity/{e.identity}"},
            {"name": e.model or "-", "fullyQualifiedName": f"model/{e.model}"},
        ]
        results.append(
            {
                "ruleId": f"dormant/guard/{name}",
                "ruleIndex": idx,
                "level": SARIF_LEVEL[sev],
                "message": {
                    "text": f"{severity.get(name, 'medium')} alert '{name}' on audit entry "
                    f"{e.seq} ({e.kind} {e.outcome}"
                    + (f", tool {tool!r}" if tool else "")
                    + f", identity {e.identity!r}): "
                    + ("; ".join(e.reasons) or "no reason recorded")
                },
                "locations": [{"logicalLocations": where}],
                "partialFingerprints": {"dormantGuardEntry/v1": f"{e.hash}:{name}"},
                "properties": {"seq": e.seq, "tool": tool, "requestId": e.request_id},
            }
        )
    if not chain_ok:
        idx = rule(_BROKEN, Severity.CRITICAL, "the audit log's hash chain does not verify")
        results.append(
            {
                "ruleId": f"dormant/guard/{_BROKEN}",
                "ruleIndex": idx,
                "level": "error",
                "message": {"text": f"audit chain broken: {chain_reason}"},
            }
        )
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dormant",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
