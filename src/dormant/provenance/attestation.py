"""Signed attestations of scan reports: an in-toto Statement v1 in a DSSE envelope.

The statement's **subject** is the scanned artifact (its name and SHA-256, the report's
subject digest) and its **predicate** carries the report's digest and summary, so a consumer
holding the artifact can check which scan vouches for it and fetch or compare the report:

.. code-block:: json

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "model/", "digest": {"sha256": "..."}}],
     "predicateType": "https://dormant/scan-report/v1",
     "predicate": {"report": {"digest": {"sha256": "..."}, "mediaType": "application/json"},
                   "summary": {...}, "findings": [...], "tool": {...}}}

The envelope follows DSSE v1 (signature over ``PAE(payloadType, payload)``) with ECDSA keys
in PEM, the same keys ``dormant provenance sign`` uses. The report digest is
:func:`report_digest`: SHA-256 of the report's canonical JSON (keys sorted, no whitespace),
the value the registry stores, so it does not depend on how the file was indented.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._canonical import canonical_json, report_digest
from ..errors import InputError, InputNotFoundError, VerificationError
from ..report import atomic_write

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://dormant/scan-report/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class Attestation:
    """A verified (or freshly signed) attestation: the statement and who signed it."""

    statement: dict[str, Any]
    keyid: str
    path: Path | None = None

    @property
    def subject_digest(self) -> str:
        return "sha256:" + str(self.statement["subject"][0]["digest"]["sha256"])

    @property
    def report_digest(self) -> str:
        return "sha256:" + str(self.statement["predicate"]["report"]["digest"]["sha256"])


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def build_statement(report: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement for a report (as ``Report.to_dict()`` or read from JSON)."""
    try:
        subject = report["subject"]
        algo, _, hexd = str(subject["digest"]).partition(":")
    except (KeyError, TypeError) as exc:
        raise InputError(f"Not a dormant report: missing {exc}.") from exc
    if algo != "sha256" or len(hexd) != 64:
        raise InputError(
            f"The report's subject digest must be sha256:<64 hex>. Got {subject['digest']!r}."
        )
    findings = [
        {k: f.get(k) for k in ("title", "severity", "category", "scanner")}
        for f in report.get("findings", [])
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": str(subject.get("name", "")), "digest": {"sha256": hexd}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "report": {
                "digest": {"sha256": report_digest(report).split(":", 1)[1]},
                "mediaType": "application/json",
            },
            "subjectKind": subject.get("kind"),
            "summary": report.get("summary", {}),
            "findings": findings,
            "tool": {k: report.get("run", {}).get(k) for k in ("tool", "version", "finished")},
            "attestedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def attest_report(
    report: str | os.PathLike[str] | dict[str, Any],
    *,
    key: str | os.PathLike[str],
    password: str | None = None,
    output: str | os.PathLike[str] | None = None,
) -> Attestation:
    """Sign an in-toto statement about a scan report with an EC private key (PEM).

    Parameters
    ----------
    report:
        Path of a ``report.json`` or the report dict.
    key:
        EC private key, as for ``dormant provenance sign``.
    output:
        Where to write the DSSE envelope (JSON); not written when ``None``.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _load_report(report)
    statement = build_statement(data)
    private = _private_key(key, password)
    body = canonical_json(statement)
    sig = private.sign(pae(PAYLOAD_TYPE, body), ec.ECDSA(_hash_for(private.curve.key_size)))
    keyid = _keyid(private.public_key())
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
    }
    out = Path(output) if output else None
    if out is not None:
        with atomic_write(out) as fh:
            json.dump(envelope, fh, indent=2)
            fh.write("\n")
    return Attestation(statement=statement, keyid=keyid, path=out)


def verify_attestation(
    envelope: str | os.PathLike[str],
    *,
    key: str | os.PathLike[str],
    report: str | os.PathLike[str] | None = None,
) -> Attestation:
    """Verify a DSSE attestation with the public key; optionally check the report it names.

    Raises
    ------
    VerificationError
        Corrupt envelope, wrong key, bad signature, or a report whose digest differs.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(envelope)
    if not path.is_file():
        raise VerificationError(f"No attestation at {path}.")
    pub = _public_key(key, serialization)
    try:
        env = json.loads(path.read_text("utf-8"))
        if env["payloadType"] != PAYLOAD_TYPE:
            raise ValueError(f"payloadType {env['payloadType']!r}")
        body = base64.b64decode(env["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in env["signatures"]]
        statement = json.loads(body)
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"Attestation {path} is corrupt: {exc}") from exc
    ok = False
    for sig in sigs:
        try:
            pub.verify(sig, pae(PAYLOAD_TYPE, body), ec.ECDSA(_hash_for(pub.curve.key_size)))
            ok = True
            break
        except InvalidSignature:
            continue
    if not ok:
        raise VerificationError(
            f"Attestation {path} does not verify with this key (wrong key or altered payload)."
        )
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != (
        PREDICATE_TYPE
    ):
        raise VerificationError(f"Attestation {path} is not a dormant scan-report statement.")
    att = Attestation(statement=statement, keyid=_keyid(pub), path=path)
    if report is not None:
        actual = report_digest(_load_report(report))
        if actual != att.report_digest:
            raise VerificationError(
                f"Report {report} has digest {actual} but the attestation vouches for "
                f"{att.report_digest}."
            )
    return att


def _load_report(report: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(report, dict):
        return report
    from ..report import load_report_json

    return load_report_json(report)


def _private_key(key: str | os.PathLike[str], password: str | None) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p = Path(key)
    if not p.is_file():
        raise InputNotFoundError(f"The private key {p} does not exist.")
    try:
        k = serialization.load_pem_private_key(
            p.read_bytes(), password.encode() if password else None
        )
    except (ValueError, TypeError) as exc:
        raise InputError(f"Cannot read the private key {p} (expected PEM): {exc}") from exc
    if not isinstance(k, ec.EllipticCurvePrivateKey):
        raise InputError(f"The key {p} must be an elliptic-curve key; got {type(k).__name__}.")
    return k


def _public_key(key: str | os.PathLike[str], serialization: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    p = Path(key)
    if not p.is_file():
        raise InputNotFoundError(f"The public key {p} does not exist.")
    try:
        k = serialization.load_pem_public_key(p.read_bytes())
    except ValueError as exc:
        raise InputError(f"Cannot read the public key {p} (expected PEM): {exc}") from exc
    if not isinstance(k, ec.EllipticCurvePublicKey):
        raise InputError(f"The key {p} must be an elliptic-curve key; got {type(k).__name__}.")
    return k


def _hash_for(key_size: int) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(key_size, hashes.SHA512())


def _keyid(pub: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(raw).hexdigest()
