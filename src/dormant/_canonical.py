"""Canonical JSON and the digest of a report: one definition for provenance and the registry.

Keys sorted, no insignificant whitespace, UTF-8 — the report digest a signed attestation names
(:mod:`dormant.provenance.attestation`) is the one the registry stores a scan under
(:mod:`dormant.registry`). It sits at the bottom of the import graph so neither imports the
other for it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Keys sorted, no insignificant whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_digest(report: dict[str, Any]) -> str:
    """``sha256:<hex>`` of a report's canonical JSON (``Report.to_dict()`` or a parsed file)."""
    return "sha256:" + hashlib.sha256(canonical_json(report)).hexdigest()
