"""SARIF 2.1.0 writer, for code-scanning dashboards (GitHub code scanning and others).

The log follows the OASIS standard *Static Analysis Results Interchange Format (SARIF)
Version 2.1.0* (Errata 01, 2023) and is validated against its JSON schema in the tests.

Mapping of dormant's nouns onto SARIF:

- one ``run`` per report; ``tool.driver`` is dormant, with one ``rule`` per
  (scanner, category) seen in the report, id ``dormant/<scanner>/<category>``; the rule's
  ``properties.tags`` hold the framework mappings (``owasp-llm-2025:LLM04`` ...) and
  ``properties["security-severity"]`` the highest severity of its results on GitHub's
  CVSS-like scale;
- each finding is a ``result``: ``level`` is ``error`` for high/critical, ``warning`` for
  medium and ``note`` for low/info; the location is the scanned subject (a dataset file, a
  model directory) as an ``artifactLocation``; a dataset has no line numbers for records in
  general, so the record ids the finding points at go into ``properties.recordIds`` (at most
  100) and into a few ``logicalLocations`` rather than invented regions;
- ``partialFingerprints["dormantFinding/v1"]`` hashes scanner, category, trigger and target,
  so the same finding keeps its identity from one run to the next;
- scanners that failed or were skipped become ``toolExecutionNotifications`` of the
  invocation, and ``executionSuccessful`` is false when any scanner failed or the run was
  partial.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._version import __version__
from ..findings import Finding
from ..report import Report, atomic_write
from ._common import (
    SARIF_LEVEL,
    SECURITY_SEVERITY,
    category_text,
    evidence_dict,
    fingerprint,
    json_default,
    mapping_titles,
)

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: ``tool.driver.informationUri``: where users learn about the tool.
INFORMATION_URI = "https://pypi.org/project/dormant/"
#: Most record ids listed per result (``properties.recordIds``).
MAX_RECORD_IDS = 100
#: Most ``logicalLocations`` (one per record) per result.
MAX_LOGICAL_LOCATIONS = 10

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def rule_id(finding: Finding) -> str:
    """The SARIF rule id of a finding: ``dormant/<scanner>/<category>``."""
    return f"dormant/{finding.scanner}/{finding.category}"


def artifact_uri(name: str, *, base_dir: str | os.PathLike[str] | None = None) -> str:
    """URI of a subject for ``artifactLocation.uri``.

    A name that already is a URI (``https://...``) is kept. A path is made relative to
    ``base_dir`` (default: the working directory) when it lies below it, so that dashboards
    can match it to a file in the repository; otherwise it becomes an absolute ``file:`` URI.
    """
    if _SCHEME.match(name):
        return quote(name, safe=":/?#[]@!$&'()*+,;=%-._~")
    base = os.path.abspath(base_dir if base_dir is not None else os.getcwd())
    path = os.path.abspath(name)
    try:
        rel = Path(path).relative_to(base)
    except ValueError:
        return Path(path).as_uri()
    return quote(rel.as_posix() or ".", safe="/-._~")


def _utc(stamp: str | None) -> str | None:
    """ISO timestamp with ``+00:00`` written as ``Z`` (SARIF's recommended form)."""
    if stamp is None:
        return None
    return stamp[: -len("+00:00")] + "Z" if stamp.endswith("+00:00") else stamp


def _message_text(finding: Finding) -> str:
    parts = [finding.title.rstrip(".") + "."]
    if finding.trigger is not None:
        parts.append(f"Trigger: {finding.trigger.display!r} ({finding.trigger.kind.value}).")
    if finding.target:
        parts.append(f"Target: {finding.target}.")
    n = len(finding.locator.record_ids)
    if n:
        parts.append(f"Records: {n}.")
    parts.append(f"Score {finding.score:.3f}.")
    return " ".join(parts)


def _rule(finding: Finding, results: list[Finding]) -> dict[str, Any]:
    short, help_text = category_text(finding.category)
    titles = mapping_titles(finding)
    worst = max((f.severity for f in results), key=lambda s: s.rank)
    mapping_lines = "\n".join(f"- {ref}: {title}" for ref, title in titles)
    return {
        "id": rule_id(finding),
        "name": f"{finding.scanner}/{finding.category}",
        "shortDescription": {"text": short},
        "fullDescription": {
            "text": f"{short} Reported by the {finding.scanner!r} scanner "
            f"(category {finding.category})."
        },
        "help": {
            "text": help_text + "\n\nFramework mappings:\n" + mapping_lines,
            "markdown": help_text + "\n\n**Framework mappings**\n\n" + mapping_lines,
        },
        "defaultConfiguration": {"level": SARIF_LEVEL[worst]},
        "properties": {
            "tags": ["security", "ml-backdoor", finding.category, *finding.mappings],
            "security-severity": SECURITY_SEVERITY[worst],
            "category": finding.category,
            "scanner": finding.scanner,
            "mappings": [{"id": ref, "title": title} for ref, title in titles],
        },
    }


def _result(finding: Finding, rule_index: int, uri: str, *, max_record_ids: int) -> dict[str, Any]:
    loc = finding.locator
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": uri, "index": 0}},
    }
    logical = [
        {
            "name": rid,
            "fullyQualifiedName": f"{finding.subject.name}#record={rid}",
            "kind": "element",
        }
        for rid in loc.record_ids[:MAX_LOGICAL_LOCATIONS]
    ]
    if logical:
        location["logicalLocations"] = logical
    props: dict[str, Any] = {
        "score": round(finding.score, 6),
        "severity": finding.severity.value,
        "security-severity": SECURITY_SEVERITY[finding.severity],
        "category": finding.category,
        "scanner": finding.scanner,
        "target": finding.target,
        "trigger": finding.trigger.to_dict() if finding.trigger else None,
        "evidence": evidence_dict(finding),
        "mappings": list(finding.mappings),
        "explanation": finding.explanation,
        "recordCount": len(loc.record_ids),
        "recordIds": list(loc.record_ids[:max_record_ids]),
        "recordIdsTruncated": len(loc.record_ids) > max_record_ids,
        "tags": list(finding.mappings),
    }
    if loc.label is not None:
        props["label"] = loc.label
    if loc.behaviour is not None:
        props["behaviour"] = loc.behaviour
    if loc.tool is not None:
        props["tool"] = loc.tool
    if loc.span is not None:
        props["span"] = list(loc.span)
    return {
        "ruleId": rule_id(finding),
        "ruleIndex": rule_index,
        "kind": "fail",
        "level": SARIF_LEVEL[finding.severity],
        "message": {"text": _message_text(finding)},
        "locations": [location],
        "partialFingerprints": {"dormantFinding/v1": fingerprint(finding)},
        "properties": props,
    }


def to_sarif(
    report: Report,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    max_record_ids: int = MAX_RECORD_IDS,
) -> dict[str, Any]:
    """Build the SARIF 2.1.0 log of a report as a JSON-ready dict.

    Parameters
    ----------
    report:
        The finished :class:`~dormant.report.Report`.
    base_dir:
        Directory the subject's path is made relative to (default: the working directory),
        normally the repository root that a code-scanning upload refers to.
    max_record_ids:
        Most record ids listed per result.

    Returns
    -------
    dict
        ``{"$schema": ..., "version": "2.1.0", "runs": [run]}``.
    """
    uri = artifact_uri(report.subject.name, base_dir=base_dir)
    by_rule: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_rule.setdefault(rule_id(f), []).append(f)
    rule_ids = sorted(by_rule)
    rules = [_rule(by_rule[r][0], by_rule[r]) for r in rule_ids]
    index = {r: i for i, r in enumerate(rule_ids)}
    results = [
        _result(f, index[rule_id(f)], uri, max_record_ids=max_record_ids) for f in report.findings
    ]
    notifications = [
        {
            "level": "error" if issue.kind == "error" else "note",
            "message": {"text": f"{issue.scanner}: {issue.message}"},
            "properties": {"scanner": issue.scanner, "kind": issue.kind},
        }
        for issue in report.issues
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": not report.errors and not report.partial,
        "toolExecutionNotifications": notifications,
        "properties": {"seed": report.seed, "partial": report.partial, "config": report.config},
    }
    if start := _utc(report.started):
        invocation["startTimeUtc"] = start
    if end := _utc(report.finished):
        invocation["endTimeUtc"] = end
    artifact: dict[str, Any] = {
        "location": {"uri": uri},
        "roles": ["analysisTarget"],
        "properties": {"kind": report.subject.kind, "digest": report.subject.digest},
    }
    algo, _, hexdigest = report.subject.digest.partition(":")
    if algo == "sha256" and hexdigest:
        artifact["hashes"] = {"sha-256": hexdigest}
    sev = report.max_severity()
    run = {
        "tool": {
            "driver": {
                "name": "dormant",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "invocations": [invocation],
        "artifacts": [artifact],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "subject": report.subject.to_dict(),
            "summary": {
                "findings": len(report.findings),
                "maxSeverity": sev.value if sev else None,
                "records": len(report.records),
                "flaggedRecords": sum(1 for r in report.records if r.flagged),
                "errors": len(report.errors),
                "skips": len(report.skips),
            },
        },
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def write_sarif(
    report: Report,
    path: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report as a SARIF 2.1.0 log, atomically.

    Parameters
    ----------
    report:
        The report to write.
    path:
        Destination, conventionally ``report.sarif``.
    base_dir:
        Directory the subject's path is made relative to (see :func:`to_sarif`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        When the report's config holds a value that is not JSON-serialisable; the destination
        is then left untouched.
    """
    log = to_sarif(report, base_dir=base_dir)
    with atomic_write(path) as fh:
        json.dump(log, fh, indent=2, ensure_ascii=False, default=json_default)
        fh.write("\n")
    return Path(path)


__all__ = ["INFORMATION_URI", "SARIF_VERSION", "artifact_uri", "rule_id", "to_sarif", "write_sarif"]
