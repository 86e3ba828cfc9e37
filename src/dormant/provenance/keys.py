"""Keys and signer identities for :mod:`dormant.provenance.signing`.

model-signing keys are elliptic-curve (P-256, P-384, P-521) in PEM. A signer is named by
``key:sha256:<hex>`` — the SHA-256 of the public key's PEM, the hint model-signing records in
its bundles — or by the subject of its signing certificate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, InputError, InputNotFoundError


def generate_key_pair(
    private_key: str | os.PathLike[str],
    *,
    public_key: str | os.PathLike[str] | None = None,
    password: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write a new P-256 signing key (PKCS#8 PEM, mode 0600) and its public key.

    ``public_key`` defaults to the private key path with the suffix ``.pub``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    priv = Path(private_key)
    pub = Path(public_key) if public_key else priv.with_suffix(".pub")
    for p in (priv, pub):
        if p.exists() and not overwrite:
            raise ConfigError(f"Refusing to overwrite existing key file {p}.")
    key = ec.generate_private_key(ec.SECP256R1())
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    priv.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def read_file(path: str | os.PathLike[str], what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"The {what} {p} does not exist.")
    return p.read_bytes()


def signer_identity(
    key: str | os.PathLike[str] | None,
    password: str | None,
    certificate: str | os.PathLike[str] | None,
    chain: Sequence[str | os.PathLike[str]],
    sigstore: bool,
) -> tuple[str, str]:
    if sigstore:
        if key is not None or certificate is not None:
            raise ConfigError("Sigstore signing is keyless: do not pass key or certificate.")
        return "sigstore", "sigstore"
    if key is None:
        raise ConfigError(
            "Signing needs a private key (key=..., --key) or sigstore=True (--sigstore)."
        )
    pem = read_file(key, "private key")
    fingerprint = key_fingerprint(pem, public=False, password=password)
    if certificate is not None:
        from cryptography import x509

        if not chain:
            raise ConfigError(
                "Certificate signing needs the issuing chain (chain=..., --chain): at least "
                "the certificate of the CA that issued the signing certificate."
            )

        cert = x509.load_pem_x509_certificate(read_file(certificate, "certificate"))
        return "certificate", cert.subject.rfc4514_string()
    return "key", fingerprint


def key_fingerprint(pem: bytes, *, public: bool, password: str | None = None) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if public:
            pub = serialization.load_pem_public_key(pem)
        else:
            pub = serialization.load_pem_private_key(
                pem, password.encode() if password else None
            ).public_key()
    except (ValueError, TypeError) as exc:
        kind = "public" if public else "private"
        raise InputError(f"Cannot read the {kind} key (expected PEM): {exc}") from exc
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise InputError(
            f"model-signing keys are elliptic-curve (P-256/384/521); got {type(pub).__name__}."
        )
    raw = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "key:sha256:" + hashlib.sha256(raw).hexdigest()


def certificate_subject(sig: Path) -> str:
    from cryptography import x509

    try:
        bundle = json.loads(sig.read_text("utf-8"))
        certs = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
        der = base64.b64decode(certs[0]["rawBytes"])
        return str(x509.load_der_x509_certificate(der).subject.rfc4514_string())
    except (KeyError, IndexError, ValueError, TypeError):
        return "certificate"
