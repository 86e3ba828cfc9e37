"""Helpers the scenarios share: trigger matching, data-scan stage, signing the clean twin."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..report import Report
from .runner import Outcome, Workspace

#: target false-discovery rate of the data scan's quarantine in the scenarios
QUARANTINE_FDR = 0.1


def trigger_matches(planted: str, found: str | None) -> bool:
    """Whether a recovered trigger names the planted one: the same text, or a contiguous part
    of it of at least half its word tokens (miners and inversion recover pieces), compared
    after the guard's folding (:func:`dormant.guard.match.tokens`: NFKC, invisibles removed,
    confusables folded)."""
    if not found:
        return False
    from ..guard.match import tokens

    p = [t for t in tokens(planted) if t.isalnum() or "_" in t]
    f = [t for t in tokens(found) if t.isalnum() or "_" in t]
    if not p or not f:
        return planted.strip() == found.strip()
    need = max(1, (len(p) + 1) // 2)
    for k in range(len(p), need - 1, -1):
        for i in range(len(p) - k + 1):
            part = p[i : i + k]
            if any(f[j : j + k] == part for j in range(len(f) - k + 1)):
                return True
    return False


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write rows as JSONL (via a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def data_stage(
    ws: Workspace,
    dataset: Any,
    planted: str,
    poisoned_ids: set[str],
) -> tuple[Outcome, Report]:
    """Scan the poisoned training data; caught when a finding names the planted trigger and
    the scan quarantined its records (recall and precision of the quarantine are reported).

    The trigger miner quarantines at a target false-discovery rate of :data:`QUARANTINE_FDR`
    (its default is 0.05): a training set can spare a few clean records, and a planted
    comment trigger in the coding data reached p = 0.94, just short of the default.
    """
    from ..outputs import write_outputs
    from ..scanners.base import ScanContext
    from ..scanners.data.fusion import scan_dataset

    report = scan_dataset(
        dataset,
        embed=ws.embed,
        context=ScanContext(seed=ws.seed),
        mining_params={"fdr": QUARANTINE_FDR},
    )
    outputs = write_outputs(report, dataset, ws.out / "data-scan")
    flagged = {r.record_id for r in report.records if r.flagged}
    tp = len(flagged & poisoned_ids)
    recall = tp / len(poisoned_ids) if poisoned_ids else 0.0
    precision = tp / len(flagged) if flagged else 0.0
    with_trigger = [f for f in report.findings if f.trigger is not None]
    hit = next((f for f in with_trigger if trigger_matches(planted, f.trigger.text)), None)  # type: ignore[union-attr]
    rank = with_trigger.index(hit) + 1 if hit is not None else None
    caught = hit is not None and hit.evidence_value("quarantined") is True and tp >= 1
    shown = hit or (with_trigger[0] if with_trigger else None)
    summary = (
        f"found the trigger {hit.trigger.display!r} (finding #{rank}, {hit.severity.value}) "  # type: ignore[union-attr]
        f"and quarantined {tp} of {len(poisoned_ids)} poisoned records"
        if hit is not None
        else "no finding named the planted trigger"
    )
    evidence = [
        ("records scanned", str(len(report.records))),
        ("records quarantined", str(len(flagged))),
        ("poisoned records quarantined", f"{tp} of {len(poisoned_ids)} (recall {recall:.2f})"),
        ("quarantine precision", f"{precision:.2f}"),
    ]
    if shown is not None:
        evidence.append(("top trigger finding", f"{shown.title} (score {shown.score:.2f})"))
        if shown.target:
            evidence.append(("what it switches to", str(shown.target)))
    files = tuple((k, ws.rel(v)) for k, v in sorted(outputs.items()))
    data = {
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "rank": rank,
        "trigger_found": hit.trigger.text if hit is not None else None,  # type: ignore[union-attr]
    }
    return Outcome(caught, summary, tuple(evidence), files, data), report


def sign_and_verify(ws: Workspace, model_dir: Path, registry: Any) -> Any:
    """Copy the clean model under ``out/models/clean``, sign it with a fresh key, verify it
    (recording ``signed`` and ``verified`` in the registry); returns the verification's
    :class:`~dormant.provenance.signing.SignatureInfo`."""
    from ..provenance.keys import generate_key_pair
    from ..provenance.signing import sign_model, verify_model

    dest = ws.out / "models" / "clean"
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, dest)
    keys = ws.out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    priv, pub = keys / "signing.key", keys / "signing.pub"
    for p in (priv, pub):
        p.unlink(missing_ok=True)
    generate_key_pair(priv, public_key=pub)
    sign_model(dest, key=priv, registry=registry)
    return verify_model(dest, key=pub, registry=registry)
