"""ML bill of materials: CycloneDX 1.6 via ``cyclonedx-python-lib`` (``dormant[provenance]``).

The BOM describes one model (component type ``machine-learning-model``, SHA-256 of its
manifest) with one nested ``file`` component per file (path and SHA-256), one ``data``
component per dataset (SHA-256), the model's ``modelCard.modelParameters.datasets`` pointing at
them, and a dependency from the model to its datasets. What dormant knows about each
component is written as properties in the ``dormant:`` namespace:

- ``dormant:signature:*`` — signature file, how it was made (key, certificate, Sigstore),
  the digest it signs and whether that equals the model on disk;
- ``dormant:provenance:*`` — the registry's status (verified, by whom, when; tampered ...);
- ``dormant:scan:*`` and ``dormant:finding`` — every scan report given (or found in the
  registry) for that component's digest, its maximum severity and one property per finding
  (``<severity> <category>: <title>``).

So a reader of the BOM sees what was scanned and with what result. Limits: the library does
not model ``modelCard`` yet, so that part is added to the JSON after serialisation (and the
result is checked against the CycloneDX 1.6 schema in the tests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import InputError, InputNotFoundError, VerificationError, require
from ..report import Report, atomic_write
from .attestation import report_digest
from .hashing import Manifest, hash_path
from .signing import default_signature_path, read_statement, signed_digest

if TYPE_CHECKING:
    from ..registry import Registry

EXTRA = "provenance"


def build_bom(
    model: str | os.PathLike[str],
    *,
    datasets: Sequence[str | os.PathLike[str]] = (),
    signature: str | os.PathLike[str] | None = None,
    reports: Sequence[str | os.PathLike[str] | Report] = (),
    registry: Registry | None = None,
    name: str | None = None,
    version: str | None = None,
    allow_symlinks: bool = False,
) -> dict[str, Any]:
    """Build a CycloneDX 1.6 ML-BOM for a model and its datasets.

    Parameters
    ----------
    model:
        Model directory or file.
    datasets:
        Training / fine-tuning data files (or directories).
    signature:
        The model's signature; by default the one at
        :func:`~dormant.provenance.signing.default_signature_path` when present.
    reports:
        Scan reports (``Report`` objects or ``report.json`` paths) whose findings are attached
        to the component with the matching digest.
    registry:
        Also attach the registry's provenance status and recorded scans of each digest.
    name, version:
        Model name (default: the directory name) and version.

    Returns
    -------
    dict
        The BOM as JSON-ready data.
    """
    require("cyclonedx", EXTRA)
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    mroot = Path(model)
    if not mroot.exists():
        raise InputNotFoundError(f"Model not found: {mroot}.")
    sig = Path(signature) if signature else default_signature_path(mroot)
    if signature and not sig.is_file():
        raise InputNotFoundError(f"Signature not found: {sig}.")
    manifest = hash_path(mroot, allow_symlinks=allow_symlinks)
    found = _index_reports(reports, registry, manifest, datasets, allow_symlinks)

    def sha(hexd: str) -> list[HashType]:
        return [HashType(alg=HashAlgorithm.SHA_256, content=hexd)]

    def props(
        digest: str, extra: Sequence[tuple[str, str]], *, status: bool = True
    ) -> list[Property]:
        out = [Property(name=k, value=v) for k, v in extra]
        out += [Property(name=k, value=v) for k, v in _scan_props(found["scans"].get(digest, []))]
        if registry is not None and status:
            out += [Property(name=k, value=v) for k, v in _registry_props(registry, digest)]
        return out

    files = [
        Component(
            type=ComponentType.FILE,
            name=f.path,
            bom_ref=f"file:{f.path}",
            hashes=sha(f.sha256),
            properties=props(f.digest, [("dormant:size", str(f.size))], status=False),
        )
        for f in (manifest.files if manifest.kind == "directory" else ())
    ]
    model_props = [("dormant:digest", manifest.digest), *_signature_props(sig, mroot, manifest)]
    model_c = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=name or mroot.resolve().name,
        version=version,
        bom_ref=f"model:{manifest.digest}",
        hashes=sha(manifest.digest.split(":", 1)[1]),
        properties=props(manifest.digest, model_props),
        components=files,
    )
    data_cs = []
    for ds_path, ds_manifest in found["datasets"]:
        data_cs.append(
            Component(
                type=ComponentType.DATA,
                name=ds_path.name,
                bom_ref=f"data:{ds_manifest.digest}",
                hashes=sha(ds_manifest.digest.split(":", 1)[1]),
                properties=props(
                    ds_manifest.digest,
                    [("dormant:digest", ds_manifest.digest), ("dormant:path", str(ds_path))],
                ),
            )
        )
    from cyclonedx.model.tool import ToolRepository

    tool = Component(type=ComponentType.APPLICATION, name="dormant", version=__version__)
    bom = Bom(
        metadata=BomMetaData(
            tools=ToolRepository(components=[tool]),
            component=model_c,
            timestamp=datetime.now(UTC),
        ),
        components=data_cs,
    )
    bom.register_dependency(model_c, data_cs)
    for c in data_cs:
        bom.register_dependency(c, [])
    data: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    if data_cs:
        data["metadata"]["component"]["modelCard"] = {
            "modelParameters": {"datasets": [{"ref": str(c.bom_ref.value)} for c in data_cs]}
        }
    return data


def write_bom(bom: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the BOM JSON atomically."""
    with atomic_write(path) as fh:
        json.dump(bom, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    return Path(path)


def _index_reports(
    reports: Sequence[str | os.PathLike[str] | Report],
    registry: Registry | None,
    manifest: Manifest,
    datasets: Sequence[str | os.PathLike[str]],
    allow_symlinks: bool,
) -> dict[str, Any]:
    scans: dict[str, list[dict[str, Any]]] = {}

    def add(rep: dict[str, Any]) -> None:
        rdig = report_digest(rep)
        digests = {rep["subject"]["digest"]} | {f["subject"]["digest"] for f in rep["findings"]}
        for d in digests:
            entry = {"digest": rdig, "report": rep, "subject": d}
            if all(e["digest"] != rdig for e in scans.setdefault(d, [])):
                scans[d].append(entry)

    for r in reports:
        if isinstance(r, Report):
            add(r.to_dict())
            continue
        p = Path(r)
        if not p.is_file():
            raise InputNotFoundError(f"Report not found: {p}.")
        try:
            add(json.loads(p.read_text("utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{p} is not a dormant report: {exc}") from exc
    ds = []
    for d in datasets:
        dp = Path(d)
        if not dp.exists():
            raise InputNotFoundError(f"Dataset not found: {dp}.")
        ds.append((dp, hash_path(dp, allow_symlinks=allow_symlinks)))
    if registry is not None:
        digests = [manifest.digest, *(f.digest for f in manifest.files)]
        digests += [m.digest for _, m in ds]
        for dig in digests:
            for rec in registry.scans_for(dig):
                add(rec.report)
    return {"scans": scans, "datasets": ds}


def _scan_props(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for e in entries:
        rep = e["report"]
        out.append(("dormant:scan:report", e["digest"]))
        out.append(("dormant:scan:max-severity", str(rep["summary"].get("max_severity"))))
        out.append(("dormant:scan:finished", str(rep["run"].get("finished"))))
        for f in rep["findings"]:
            if f["subject"]["digest"] == e["subject"]:
                out.append(("dormant:finding", f"{f['severity']} {f['category']}: {f['title']}"))
    return out


def _signature_props(sig: Path, model: Path, manifest: Manifest) -> list[tuple[str, str]]:
    if not sig.is_file():
        return [("dormant:signature", "none")]
    try:
        statement = read_statement(sig)
        bundle = json.loads(sig.read_text("utf-8"))
    except (VerificationError, ValueError) as exc:
        return [("dormant:signature", str(sig)), ("dormant:signature:error", str(exc))]
    material = bundle.get("verificationMaterial", {})
    if "x509CertificateChain" in material:
        method = "certificate"
    elif "publicKey" in material:
        method = "key"
    else:
        method = "sigstore"
    signed = signed_digest(statement, model)
    return [
        ("dormant:signature", str(sig)),
        ("dormant:signature:method", method),
        ("dormant:signature:format", "OpenSSF model-signing v1.0 (Sigstore bundle, DSSE)"),
        ("dormant:signature:signed-digest", signed),
        ("dormant:signature:matches-model", "true" if signed == manifest.digest else "false"),
    ]


def _registry_props(registry: Registry, digest: str) -> list[tuple[str, str]]:
    st = registry.provenance_status(digest)
    out = [("dormant:provenance:status", st.status)]
    for key, value in (
        ("signer", st.signer),
        ("method", st.method),
        ("actor", st.actor),
        ("at", st.at),
        ("detail", st.detail),
    ):
        if value:
            out.append((f"dormant:provenance:{key}", str(value)))
    return out
