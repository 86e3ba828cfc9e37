"""Helpers shared by the report writers: category texts, severity scales, safe JSON."""

from __future__ import annotations

import hashlib
from typing import Any

from ..findings import Finding, Severity, describe_mapping

#: SARIF ``level`` for each severity (SARIF 2.1.0 §3.27.10).
SARIF_LEVEL: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}

#: ``security-severity`` on GitHub code scanning's CVSS-like scale: over 9.0 is critical,
#: 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}

#: What a finding of each category means and what to do about it (SARIF rule help text).
CATEGORY_TEXT: dict[str, tuple[str, str]] = {
    "data-poisoning": (
        "Training records carry a pattern that switches their label or behaviour.",
        "Inspect the flagged records and the candidate trigger; quarantine them and trace where "
        "they came from before training on this data. Re-scan the model trained on it.",
    ),
    "spurious-correlation": (
        "A pattern predicts the outcome far more than chance, without signs of planting.",
        "Check whether the pattern is a legitimate signal or a shortcut the model will learn; "
        "rebalance or drop it if it is a shortcut. Accidental triggers are a risk too.",
    ),
    "model-backdoor": (
        "The model switches its output when a trigger pattern is present.",
        "Do not deploy this model until the trigger is explained. Replay the trigger on clean "
        "inputs, check the model's provenance, and retrain from audited data.",
    ),
    "agent-trigger": (
        "An agent or LLM changes its behaviour or tool calls when a trigger is present.",
        "Restrict the agent's tools and credentials, block the trigger at run time, and "
        "red-team the model again after remediation.",
    ),
    "supply-chain": (
        "An artifact's origin or integrity cannot be established.",
        "Verify the artifact's signature and digest against its publisher before use; run it "
        "with reduced privileges until provenance is verified.",
    ),
    "unsafe-serialization": (
        "An artifact uses a serialization format that can execute code when loaded.",
        "Do not load the artifact; convert it to a safe format (e.g. safetensors) in an "
        "isolated environment, or obtain a safe copy from the publisher.",
    ),
    "secret-exposure": (
        "Outputs or data expose secrets or credentials.",
        "Rotate the exposed credentials, remove them from the data, and limit what the model "
        "can reach.",
    ),
    "prompt-leakage": (
        "A trigger makes the model reveal its system prompt or internal policy text.",
        "Treat the leaked text as public; move secrets out of prompts and block the trigger.",
    ),
}


def category_text(category: str) -> tuple[str, str]:
    """(short description, help text) of a category, with a generic fallback."""
    return CATEGORY_TEXT.get(
        category,
        (
            f"Findings of category {category!r}.",
            "Review the evidence of each finding and the records or inputs it points at.",
        ),
    )


def mapping_titles(finding: Finding) -> list[tuple[str, str]]:
    """(framework id, title) for each mapping of a finding."""
    return [(ref, describe_mapping(ref)) for ref in finding.mappings]


def fingerprint(finding: Finding) -> str:
    """Stable identity of a finding across runs: scanner, category, trigger text and target.

    The title and score are left out on purpose (they may carry run-dependent numbers), except
    as a last resort when there is neither trigger nor target, label, behaviour or tool.
    """
    loc = finding.locator
    what = finding.trigger.text if finding.trigger else ""
    target = finding.target or loc.behaviour or loc.label or ""
    parts = [finding.scanner, finding.category, what, target, loc.tool or ""]
    if not any(parts[2:]):
        parts.append(finding.title)
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def json_default(obj: object) -> object:
    """``json`` fallback for numpy scalars and arrays; anything else is an error."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def evidence_dict(finding: Finding) -> dict[str, Any]:
    """Evidence as ``{name: value}`` in the order the scanner gave it."""
    return {ev.name: ev.value for ev in finding.evidence}


def fmt_value(value: object) -> str:
    """Short human form of an evidence value (floats to 4 significant digits)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
