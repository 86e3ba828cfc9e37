"""Sign and verify models with OpenSSF model-signing (``pip install 'dormant[provenance]'``).

A signature is a Sigstore bundle holding a DSSE envelope over an in-toto statement whose
predicate lists every file of the model with its SHA-256 (the OpenSSF Model Signing
specification, ``https://model_signing/signature/v1.0``). Three ways to sign, as model-signing
offers them:

- **key**: an elliptic-curve private key in PEM (P-256, P-384 or P-521); verified with its
  public key. Fully offline.
- **certificate**: the same key plus its X.509 signing certificate and chain; verified
  against a trusted root certificate chain. Fully offline.
- **sigstore**: keyless signing with an OIDC identity, recorded in the Rekor transparency
  log; needs the network at signing and verification time.

Verification fails closed: a missing, corrupt or foreign signature, a wrong key, or any file
changed, added or removed raises :class:`~dormant.errors.VerificationError`, whose message
(and, for a content mismatch, :attr:`ModelTamperedError.diff`) names the files. dormant
computes that file list itself from the signed manifest, so it does not depend on the wording
of model-signing's own error.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConfigError,
    InputError,
    InputNotFoundError,
    ProvenanceError,
    VerificationError,
    require,
)
from ..registry.records import current_actor
from .hashing import DEFAULT_IGNORED, FileDigest, ManifestDiff, diff_digests, directory_digest
from .keys import (
    certificate_subject,
    key_fingerprint,
    read_file,
    signer_identity,
)

if TYPE_CHECKING:
    from ..registry import Registry

EXTRA = "provenance"


class ModelTamperedError(VerificationError):
    """The model's files differ from the signed manifest; :attr:`diff` says how."""

    def __init__(self, message: str, diff: ManifestDiff, signed_digest: str, digest: str) -> None:
        super().__init__(message)
        self.diff = diff
        self.signed_digest = signed_digest
        self.digest = digest


@dataclass(frozen=True)
class SignatureInfo:
    """What was signed (or verified): the model, its signature, how, by whom and when.

    ``digest`` is dormant's subject digest of the model (see :mod:`.hashing`), derived from
    the signed manifest; ``signer`` is ``key:sha256:<hex>`` (the SHA-256 of the public key's
    PEM, as model-signing records it), the certificate's subject, or the Sigstore identity.
    """

    model: Path
    signature: Path
    method: str
    signer: str
    digest: str
    files: int
    at: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "signature": str(self.signature),
            "method": self.method,
            "signer": self.signer,
            "digest": self.digest,
            "files": self.files,
            "at": self.at,
            "actor": self.actor,
        }


def default_signature_path(model: str | os.PathLike[str]) -> Path:
    """``<dir>/model.sig`` for a directory, ``<file>.sig`` beside a single file."""
    p = Path(model)
    return p / "model.sig" if p.is_dir() else p.with_name(p.name + ".sig")


def sign_model(
    path: str | os.PathLike[str],
    *,
    key: str | os.PathLike[str] | None = None,
    password: str | None = None,
    certificate: str | os.PathLike[str] | None = None,
    chain: Sequence[str | os.PathLike[str]] = (),
    sigstore: bool = False,
    identity_token: str | None = None,
    signature: str | os.PathLike[str] | None = None,
    allow_symlinks: bool = False,
    registry: Registry | None = None,
) -> SignatureInfo:
    """Sign a model directory or file with model-signing.

    Parameters
    ----------
    path:
        The model directory (or a single model file).
    key:
        EC private key (PEM). Required unless ``sigstore``.
    password:
        Password of an encrypted private key.
    certificate, chain:
        Signing certificate (PEM) for ``key`` and the intermediate certificates; selects
        certificate-based signing.
    sigstore:
        Keyless Sigstore signing (network; ``identity_token`` or an interactive OIDC flow).
    signature:
        Where to write the signature; default :func:`default_signature_path`.
    allow_symlinks:
        Follow symbolic links inside the model.
    registry:
        Record the artifact and its ``signed`` status there.

    Returns
    -------
    SignatureInfo
    """
    ms = require("model_signing", EXTRA)
    model = _model_path(path)
    sig = Path(signature) if signature else default_signature_path(model)
    method, signer = signer_identity(key, password, certificate, chain, sigstore)
    hashing_config = _hashing_config(ms, model, sig, allow_symlinks)
    cfg = ms.signing.Config().set_hashing_config(hashing_config)  # type: ignore[attr-defined]
    try:
        if method == "sigstore":
            cfg.use_sigstore_signer(identity_token=identity_token)
        elif method == "certificate":
            cfg.use_certificate_signer(
                private_key=Path(str(key)),
                signing_certificate=Path(str(certificate)),
                certificate_chain=[Path(c) for c in chain],
            )
        else:
            cfg.use_elliptic_key_signer(private_key=Path(str(key)), password=password)
        sig.parent.mkdir(parents=True, exist_ok=True)
        cfg.sign(model, sig)
    except (ValueError, TypeError) as exc:
        raise InputError(f"Cannot sign {model} with the {method} given: {exc}") from exc
    except OSError as exc:
        raise ProvenanceError(f"Cannot sign {model}: {exc}") from exc
    return _recorded(model, sig, read_statement(sig), method, signer, registry, "signed")


def verify_model(
    path: str | os.PathLike[str],
    *,
    key: str | os.PathLike[str] | None = None,
    certificate_chain: Sequence[str | os.PathLike[str]] = (),
    identity: str | None = None,
    issuer: str | None = None,
    signature: str | os.PathLike[str] | None = None,
    allow_symlinks: bool = False,
    registry: Registry | None = None,
) -> SignatureInfo:
    """Verify a model against its signature; raise unless every file matches.

    Give exactly one of ``key`` (public key PEM), ``certificate_chain`` (trusted root and
    intermediate certificates, PEM) or ``identity`` with ``issuer`` (Sigstore).

    Raises
    ------
    VerificationError
        Missing, corrupt or foreign signature, wrong key, untrusted certificate.
    ModelTamperedError
        A file was changed, added or removed (a :class:`VerificationError`).
    InputNotFoundError
        The model or the key does not exist.
    """
    ms = require("model_signing", EXTRA)
    model = _model_path(path)
    sig = Path(signature) if signature else default_signature_path(model)
    modes = [key is not None, bool(certificate_chain), identity is not None or issuer is not None]
    if sum(modes) != 1:
        raise ConfigError(
            "Give exactly one of key (a public key), certificate_chain (trusted certificates) "
            f"or identity with issuer (Sigstore). Got key={key!r}, "
            f"certificate_chain={list(certificate_chain)!r}, identity={identity!r}."
        )
    if not sig.is_file():
        raise VerificationError(
            f"Verification of {model} failed: no signature at {sig} (the model is unsigned, "
            "or pass --signature)."
        )
    cfg = ms.verifying.Config()  # type: ignore[attr-defined]
    if key is not None:
        method, signer = "key", key_fingerprint(read_file(key, "public key"), public=True)
        make = lambda: cfg.use_elliptic_key_verifier(public_key=Path(key))  # noqa: E731
    elif certificate_chain:
        for c in certificate_chain:
            read_file(c, "certificate")
        method, signer = "certificate", ""
        make = lambda: cfg.use_certificate_verifier(  # noqa: E731
            certificate_chain=[Path(c) for c in certificate_chain]
        )
    else:
        if not identity or not issuer:
            raise ConfigError("Sigstore verification needs both identity and issuer.")
        method, signer = "sigstore", f"{identity} ({issuer})"
        make = lambda: cfg.use_sigstore_verifier(identity=identity, oidc_issuer=issuer)  # noqa: E731
    try:
        make()
    except (ValueError, TypeError) as exc:
        raise InputError(f"Cannot use the {method} given to verify {model}: {exc}") from exc
    try:
        statement = read_statement(sig)
    except VerificationError:
        _record_failure(registry, model, None, method, signer, sig, "corrupt signature")
        raise
    if method == "certificate":
        signer = certificate_subject(sig)
    try:
        cfg.verify(model, sig)
    except Exception as exc:  # model-signing raises ValueError, InvalidSignature, OpenSSL errors
        text = str(exc)
        if text.startswith("Signature mismatch"):
            raise _tampered(
                model, sig, statement, allow_symlinks, registry, method, signer
            ) from exc
        reason = text or type(exc).__name__
        if type(exc).__name__ == "InvalidSignature":
            reason = "the signature does not match its payload (corrupt or forged signature)"
        elif "Key mismatch" in text:
            reason = "the signature was not made with this key"
        _record_failure(registry, model, statement, method, signer, sig, reason)
        raise VerificationError(f"Verification of {model} failed: {reason}.") from exc
    return _recorded(model, sig, statement, method, signer, registry, "verified")


def _recorded(
    model: Path,
    sig: Path,
    statement: dict[str, Any],
    method: str,
    signer: str,
    registry: Registry | None,
    status: str,
) -> SignatureInfo:
    """The :class:`SignatureInfo` of a signed or verified model, recorded in ``registry``
    (when given) with ``status``."""
    info = SignatureInfo(
        model=model,
        signature=sig,
        method=method,
        signer=signer,
        digest=signed_digest(statement, model),
        files=len(statement["predicate"]["resources"]),
        at=_now(),
        actor=current_actor(),
    )
    if registry is not None:
        registry.record_artifact(info.digest, str(model), "model" if model.is_dir() else "file")
        registry.record_provenance(
            info.digest, status=status, method=method, signer=signer, signature=str(sig)
        )
    return info


def read_statement(signature: str | os.PathLike[str]) -> dict[str, Any]:
    """The in-toto statement inside a model-signing bundle (not verified: parse only)."""
    try:
        bundle = json.loads(Path(signature).read_text("utf-8"))
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
        statement: dict[str, Any] = json.loads(payload)
        resources = statement["predicate"]["resources"]
        if not isinstance(resources, list):
            raise TypeError("predicate.resources is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(
            f"Signature {signature} is corrupt or not a model-signing bundle: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return statement


def _tampered(
    model: Path,
    sig: Path,
    statement: dict[str, Any],
    allow_symlinks: bool,
    registry: Registry | None,
    method: str,
    signer: str,
) -> ModelTamperedError:
    from .hashing import hash_path

    expected = _resource_map(statement, model)
    ignore = tuple(DEFAULT_IGNORED) + tuple(
        statement["predicate"]["serialization"].get("ignore_paths", ())
    )
    actual_manifest = hash_path(model, ignore=ignore, allow_symlinks=allow_symlinks)
    actual = {f.path: f.sha256 for f in actual_manifest.files}
    diff = diff_digests(expected, actual)
    signed = signed_digest(statement, model)
    err = ModelTamperedError(
        f"Verification of {model} failed: the model does not match its signature "
        f"({diff.describe()}).",
        diff,
        signed,
        actual_manifest.digest,
    )
    if registry is not None:
        kind = "model" if model.is_dir() else "file"
        registry.record_artifact(actual_manifest.digest, str(model), kind)
        registry.record_provenance(
            actual_manifest.digest,
            status="tampered",
            method=method,
            signer=signer,
            signature=str(sig),
            detail=diff.describe(),
            signed_digest=signed,
        )
    return err


def _record_failure(
    registry: Registry | None,
    model: Path,
    statement: dict[str, Any] | None,
    method: str,
    signer: str,
    sig: Path,
    reason: str,
) -> None:
    if registry is None:
        return
    from .hashing import hash_path

    digest = hash_path(model).digest
    registry.record_artifact(digest, str(model), "model" if model.is_dir() else "file")
    registry.record_provenance(
        digest,
        status="unverified",
        method=method,
        signer=signer,
        signature=str(sig),
        detail=f"verification failed: {reason}",
        signed_digest=signed_digest(statement, model) if statement else None,
    )


def _resource_map(statement: dict[str, Any], model: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in statement["predicate"]["resources"]:
        if r.get("algorithm") != "sha256":
            raise VerificationError(
                f"Signature uses hash algorithm {r.get('algorithm')!r}; dormant reads sha256."
            )
        name = model.name if r["name"] == "." else str(r["name"])
        out[name] = str(r["digest"])
    return out


def signed_digest(statement: dict[str, Any], model: Path) -> str:
    """dormant's subject digest of the model a model-signing statement signs."""
    files = _resource_map(statement, model)
    if model.is_file() and len(files) == 1:
        return "sha256:" + next(iter(files.values()))
    return directory_digest(FileDigest(p, 0, h) for p, h in files.items())


def _hashing_config(ms: Any, model: Path, sig: Path, allow_symlinks: bool) -> Any:
    ignored: list[Path] = []
    if model.is_dir():
        with contextlib.suppress(ValueError):
            ignored.append(sig.resolve().relative_to(model.resolve()))
    cfg = ms.hashing.Config().use_file_serialization(
        hashing_algorithm="sha256", allow_symlinks=allow_symlinks
    )
    return cfg.set_ignored_paths(paths=[*ignored, Path("model.sig")], ignore_git_paths=True)


def _model_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"Model not found: {p} (no such file or directory).")
    if p.is_dir() and not any(x.is_file() for x in p.rglob("*") if ".git" not in x.parts):
        raise InputError(f"{p} is not a model: the directory holds no file.")
    if not p.is_dir() and not p.is_file():
        raise InputError(f"{p} is not a model: expected a directory or a file.")
    return p


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
