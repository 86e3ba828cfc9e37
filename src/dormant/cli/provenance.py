"""``dormant provenance ...`` (hash, keygen, sign, verify, bom, attest, verify-attestation)
and ``dormant scan artifact``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import EXIT_OK
from ._common import check_out_dir, parse_formats

#: Report formats of ``scan artifact`` (no per-record scores: an artifact has no records).
ARTIFACT_FORMATS = ("json", "sarif", "md", "html")

REGISTRY_HELP = (
    "record the result in the registry at URL (sqlite:///NAME relative to the current "
    "directory, sqlite:////ABS/NAME absolute, postgresql://..., or a path; checked before the "
    "scan starts); "
    "with no URL, the default per-user registry ($DORMANT_REGISTRY or the user data directory)"
)


def add_registry_option(p: argparse.ArgumentParser) -> None:
    """``--registry [URL]``: absent = do not record; bare = default registry."""
    p.add_argument(
        "--registry", nargs="?", const="", default=None, metavar="URL", help=REGISTRY_HELP
    )


def open_registry(value: str | None) -> Any:
    """The registry named by ``--registry`` (``None`` when the option was not given)."""
    if value is None:
        return None
    from ..registry import Registry

    return Registry.open(value or None)


def register(root: Any, scan: Any) -> None:
    prov = root.add_parser(
        "provenance",
        help="hash, sign, verify models; ML-BOM; signed scan attestations",
        description="Know what is actually running: content digests, OpenSSF model-signing "
        "signatures, CycloneDX ML-BOMs and in-toto attestations of scan reports.",
    )
    sub = prov.add_subparsers(dest="action", metavar="ACTION")
    prov.set_defaults(func=lambda a: _help(prov))

    p = sub.add_parser("hash", help="print the content digest of a model directory or file")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--allow-symlinks", action="store_true", help="follow symbolic links")
    p.set_defaults(func=_hash)

    p = sub.add_parser("keygen", help="create an EC P-256 signing key and its public key")
    p.add_argument("key", help="private key file to write (the public key goes to KEY.pub)")
    p.add_argument("--public", help="public key path (default: KEY with suffix .pub)")
    p.add_argument("--password-env", metavar="VAR", help="encrypt with the password in $VAR")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.set_defaults(func=_keygen)

    p = sub.add_parser("sign", help="sign a model (writes model.sig with every file's digest)")
    p.add_argument("path", help="model directory or file")
    p.add_argument("--key", help="EC private key (PEM)")
    p.add_argument("--password-env", metavar="VAR", help="read the key's password from $VAR")
    p.add_argument("--certificate", help="signing certificate (PEM) for --key")
    p.add_argument("--chain", action="append", default=[], help="intermediate certificate(s)")
    p.add_argument("--sigstore", action="store_true", help="keyless Sigstore signing (network)")
    p.add_argument("--signature", help="signature path (default: PATH/model.sig)")
    p.add_argument("--allow-symlinks", action="store_true")
    add_registry_option(p)
    p.set_defaults(func=_sign)

    p = sub.add_parser(
        "verify", help="verify a model; exit 4 naming any changed, added or removed file"
    )
    p.add_argument("path", help="model directory or file")
    p.add_argument("--key", help="public key (PEM) of the signer")
    p.add_argument(
        "--certificate-chain", action="append", default=[], help="trusted root/intermediate"
    )
    p.add_argument("--identity", help="Sigstore: expected signer identity")
    p.add_argument("--issuer", help="Sigstore: expected OIDC issuer")
    p.add_argument("--signature", help="signature path (default: PATH/model.sig)")
    p.add_argument("--allow-symlinks", action="store_true")
    add_registry_option(p)
    p.set_defaults(func=_verify)

    p = sub.add_parser("bom", help="write a CycloneDX 1.6 ML-BOM of a model and its data")
    p.add_argument("path", help="model directory or file")
    p.add_argument("--data", action="append", default=[], help="dataset file (repeatable)")
    p.add_argument("--report", action="append", default=[], help="report.json to attach")
    p.add_argument("--signature", help="model signature (default: PATH/model.sig if present)")
    p.add_argument("--name", help="model name (default: directory name)")
    p.add_argument("--version", dest="model_version", help="model version")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument(
        "--registry",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="attach provenance status and scans recorded in this registry",
    )
    p.set_defaults(func=_bom)

    p = sub.add_parser("attest", help="sign an in-toto attestation of a scan report")
    p.add_argument("report", help="report.json written by a dormant scan")
    p.add_argument("--key", required=True, help="EC private key (PEM)")
    p.add_argument("--password-env", metavar="VAR")
    p.add_argument("-o", "--output", help="default: REPORT with suffix .intoto.json")
    p.set_defaults(func=_attest)

    p = sub.add_parser("verify-attestation", help="verify a scan-report attestation")
    p.add_argument("attestation")
    p.add_argument("--key", required=True, help="public key (PEM)")
    p.add_argument("--report", help="also check that this report.json is the one attested")
    p.set_defaults(func=_verify_attestation)

    p = scan.add_parser(
        "artifact",
        help="is this checkpoint safe to load? (pickle, zip, .npy, safetensors, Keras, "
        "SavedModel, GGUF, ONNX, chat templates)",
        description="Check model files for code that runs on load, without loading them: "
        "pickles and zip checkpoints, .npy, safetensors headers, Keras .keras/.h5 (Lambda "
        "bytecode, module imports), TensorFlow saved_model.pb (file and Python ops), GGUF and "
        "Hugging Face chat templates (template injection, instructions, trigger branches), "
        "ONNX (custom-op domains, external data outside the folder).",
    )
    p.add_argument("path", help="checkpoint file or model directory")
    p.add_argument("-o", "--out", help="directory to write reports into")
    p.add_argument(
        "--formats",
        "--format",  # the older spelling, kept working
        dest="formats",
        default="json",
        help="comma-separated report formats for --out: json,sarif,md,html (default json)",
    )
    p.add_argument(
        "--fail-on", default="high", help="exit 1 at or above this severity (default high)"
    )
    p.add_argument("--max-depth", type=int, default=4, help="nested archive depth (default 4)")
    p.add_argument("--allow-symlinks", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report JSON to stdout")
    add_registry_option(p)
    p.set_defaults(func=_scan_artifact)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _password(var: str | None) -> str | None:
    from ..errors import ConfigError

    if not var:
        return None
    if var not in os.environ:
        raise ConfigError(f"--password-env names ${var}, which is not set.")
    return os.environ[var]


def _hash(args: argparse.Namespace) -> int:
    from ..provenance.hashing import hash_path

    m = hash_path(args.path, allow_symlinks=args.allow_symlinks)
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
    else:
        print(f"{m.digest}  {m.root}")
        if m.kind == "directory":
            sys.stdout.write(m.text())
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    from ..provenance.keys import generate_key_pair

    priv, pub = generate_key_pair(
        args.key,
        public_key=args.public,
        password=_password(args.password_env),
        overwrite=args.force,
    )
    print(f"private key: {priv} (keep it secret)\npublic key:  {pub}")
    return EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    from ..provenance.signing import sign_model

    info = sign_model(
        args.path,
        key=args.key,
        password=_password(args.password_env),
        certificate=args.certificate,
        chain=args.chain,
        sigstore=args.sigstore,
        signature=args.signature,
        allow_symlinks=args.allow_symlinks,
        registry=open_registry(args.registry),
    )
    print(f"signed {info.model} ({info.files} files) -> {info.signature}")
    print(f"digest: {info.digest}\nsigner: {info.method} {info.signer}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from ..provenance.signing import verify_model

    info = verify_model(
        args.path,
        key=args.key,
        certificate_chain=args.certificate_chain,
        identity=args.identity,
        issuer=args.issuer,
        signature=args.signature,
        allow_symlinks=args.allow_symlinks,
        registry=open_registry(args.registry),
    )
    print(f"verified {info.model}: {info.files} files match {info.signature}")
    print(f"digest: {info.digest}\nsigner: {info.method} {info.signer}")
    return EXIT_OK


def _bom(args: argparse.Namespace) -> int:
    from ..provenance.bom import build_bom, write_bom

    bom = build_bom(
        args.path,
        datasets=args.data,
        signature=args.signature,
        reports=args.report,
        registry=open_registry(args.registry),
        name=args.name,
        version=args.model_version,
    )
    if args.output:
        write_bom(bom, args.output)
        print(f"ML-BOM (CycloneDX 1.6) written to {args.output}", file=sys.stderr)
    else:
        print(json.dumps(bom, indent=2, ensure_ascii=False))
    return EXIT_OK


def _attest(args: argparse.Namespace) -> int:
    from ..provenance.attestation import attest_report

    out = args.output or (args.report.removesuffix(".json") + ".intoto.json")
    att = attest_report(
        args.report, key=args.key, password=_password(args.password_env), output=out
    )
    print(f"attestation written to {out}")
    print(f"subject: {att.subject_digest}\nreport:  {att.report_digest}")
    return EXIT_OK


def _verify_attestation(args: argparse.Namespace) -> int:
    from ..provenance.attestation import verify_attestation

    att = verify_attestation(args.attestation, key=args.key, report=args.report)
    print(f"attestation verified (key {att.keyid})")
    print(f"subject: {att.subject_digest}\nreport:  {att.report_digest}")
    return EXIT_OK


def _scan_artifact(args: argparse.Namespace) -> int:
    from ..findings import Severity
    from ..provenance.artifact import ArtifactScanner

    fail_on = Severity.parse(args.fail_on, param="--fail-on")
    formats = parse_formats(args.formats, ARTIFACT_FORMATS)
    if args.out:
        check_out_dir(args.out)
    registry = open_registry(args.registry)
    report = ArtifactScanner(
        max_depth=args.max_depth, allow_symlinks=args.allow_symlinks
    ).scan_path(args.path, registry=registry)
    if args.out:
        from ..writers import write_all

        for fmt, path in write_all(report, args.out, formats=formats).items():
            print(f"{fmt}: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_summary(report)
    return report.exit_code(fail_on)


def _print_summary(report: Any) -> None:
    files = report.extras.get("files", [])
    print(f"{report.subject.name}  {report.subject.digest}  ({len(files)} file(s))")
    for f in files:
        state = "complete" if f["complete"] else "NOT fully read"
        print(f"  {f['path']}: {f['format']}, {state}")
    for issue in report.issues:
        print(f"  {issue.kind}: {issue.message}")
    if not report.findings:
        print("no unsafe serialization found")
        return
    for f in report.findings:
        print(f"  [{f.severity.value.upper():8}] {f.title}")
    sev = report.max_severity()
    print(f"{len(report.findings)} finding(s), highest {sev.value if sev else 'none'}")
