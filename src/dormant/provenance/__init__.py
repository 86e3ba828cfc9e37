"""Provenance: know what is actually running.

- :mod:`.hashing` — content digests of model directories and dataset files (the digest that
  names a subject in every finding, report, signature, BOM and registry row);
- :mod:`.signing` — sign and verify with OpenSSF model-signing (key, certificate, Sigstore);
- :mod:`.attestation` — in-toto attestations of scan reports, signed as DSSE envelopes;
- :mod:`.bom` — CycloneDX 1.6 ML-BOM of a model, its files, datasets, signature and findings;
- :mod:`.serialization`, :mod:`.pickles`, :mod:`.artifact` — ``dormant scan artifact``: is a
  checkpoint safe to load?

Signing, BOM and the registry need ``pip install 'dormant[provenance]'``; hashing and the
serialization scan need nothing beyond the base install.
"""

from __future__ import annotations

from .artifact import ArtifactScanner, scan_artifact
from .attestation import Attestation, attest_report, report_digest, verify_attestation
from .bom import build_bom, write_bom
from .hashing import FileDigest, Manifest, ManifestDiff, hash_file, hash_path
from .keys import generate_key_pair
from .serialization import FileScan, scan_file
from .signing import (
    ModelTamperedError,
    SignatureInfo,
    default_signature_path,
    sign_model,
    verify_model,
)

__all__ = [
    "ArtifactScanner",
    "Attestation",
    "FileDigest",
    "FileScan",
    "Manifest",
    "ManifestDiff",
    "ModelTamperedError",
    "SignatureInfo",
    "attest_report",
    "build_bom",
    "default_signature_path",
    "generate_key_pair",
    "hash_file",
    "hash_path",
    "report_digest",
    "scan_artifact",
    "scan_file",
    "sign_model",
    "verify_attestation",
    "verify_model",
    "write_bom",
]
