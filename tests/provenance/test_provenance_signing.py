"""Signing and verification through OpenSSF model-signing, attestations, ML-BOM and the CLI."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("model_signing", reason="needs the 'provenance' extra")

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from dormant.cli import EXIT_USAGE, EXIT_VERIFY, main
from dormant.errors import ConfigError, InputError, InputNotFoundError, VerificationError
from dormant.provenance import (
    ModelTamperedError,
    attest_report,
    build_bom,
    generate_key_pair,
    hash_path,
    scan_artifact,
    sign_model,
    verify_attestation,
    verify_model,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    generate_key_pair(d / "signing.key")
    generate_key_pair(d / "other.key")
    return d


@pytest.fixture
def model(tmp_path):
    m = tmp_path / "model"
    (m / "sub").mkdir(parents=True)
    (m / "config.json").write_text('{"a": 1}')
    (m / "weights.bin").write_bytes(b"\x00" * 1000)
    (m / "sub" / "tok.json").write_text("{}")
    return m


def test_sign_then_verify_and_digest_agrees_with_hashing(model, keys):
    info = sign_model(model, key=keys / "signing.key")
    assert info.signature == model / "model.sig" and info.method == "key"
    assert info.digest == hash_path(model).digest  # the signature does not change the digest
    ok = verify_model(model, key=keys / "signing.pub")
    assert ok.digest == info.digest and ok.files == 3
    assert ok.signer == info.signer and ok.signer.startswith("key:sha256:")


@pytest.mark.parametrize("change", ["changed", "added", "removed"])
def test_verification_fails_closed_and_names_the_file(model, keys, change):
    sign_model(model, key=keys / "signing.key")
    if change == "changed":
        (model / "weights.bin").write_bytes(b"\x01" + b"\x00" * 999)
    elif change == "added":
        (model / "sub" / "evil.py").write_text("import os")
    else:
        (model / "sub" / "tok.json").unlink()
    with pytest.raises(ModelTamperedError) as exc:
        verify_model(model, key=keys / "signing.pub")
    name = {"changed": "weights.bin", "added": "sub/evil.py", "removed": "sub/tok.json"}[change]
    assert getattr(exc.value.diff, change) == (name,)
    assert f"{change}: {name}" in str(exc.value)


def test_wrong_key_corrupt_and_missing_signature(model, keys, tmp_path):
    sign_model(model, key=keys / "signing.key")
    with pytest.raises(VerificationError, match="not made with this key"):
        verify_model(model, key=keys / "other.pub")
    sig = model / "model.sig"
    bundle = json.loads(sig.read_text())
    env = bundle["dsseEnvelope"]
    env["signatures"][0]["sig"] = env["signatures"][0]["sig"][:-8] + "AAAAAAA="
    sig.write_text(json.dumps(bundle))
    with pytest.raises(VerificationError, match=r"Verification of .* failed"):
        verify_model(model, key=keys / "signing.pub")
    sig.write_text("{not json")
    with pytest.raises(VerificationError, match="corrupt"):
        verify_model(model, key=keys / "signing.pub")
    sig.unlink()
    with pytest.raises(VerificationError, match="no signature"):
        verify_model(model, key=keys / "signing.pub")
    with pytest.raises(InputNotFoundError, match="does not exist"):
        sign_model(model, key=tmp_path / "nokey.pem")
    with pytest.raises(InputNotFoundError, match="Model not found"):
        sign_model(tmp_path / "nothing", key=keys / "signing.key")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="not a model"):
        sign_model(empty, key=keys / "signing.key")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(InputError, match="elliptic-curve"):
        sign_model(model, key=tmp_path / "rsa.pem")


def _cert(subject, issuer_name, pub, signer, *, ca):
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return b.sign(signer, hashes.SHA256())


def test_certificate_signing_offline(model, tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("dormant test root", "dormant test root", ca_key.public_key(), ca_key, ca=True)
    leaf = _cert("model publisher", "dormant test root", leaf_key.public_key(), ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(ConfigError, match="chain"):
        sign_model(model, key=tmp_path / "leaf.key", certificate=tmp_path / "leaf.pem")
    info = sign_model(
        model,
        key=tmp_path / "leaf.key",
        certificate=tmp_path / "leaf.pem",
        chain=[tmp_path / "ca.pem"],
    )
    assert info.method == "certificate" and "model publisher" in info.signer
    ok = verify_model(model, certificate_chain=[tmp_path / "ca.pem"])
    assert "model publisher" in ok.signer
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("someone else", "someone else", other_ca_key.public_key(), other_ca_key, ca=True)
    (tmp_path / "other.pem").write_bytes(other.public_bytes(pem))
    with pytest.raises(VerificationError):
        verify_model(model, certificate_chain=[tmp_path / "other.pem"])


def test_attestation_of_a_scan_report(model, keys, tmp_path):
    report = scan_artifact(model)
    path = report.write_json(tmp_path / "report.json")
    att = attest_report(path, key=keys / "signing.key", output=tmp_path / "report.intoto.json")
    assert att.subject_digest == report.subject.digest
    env = json.loads((tmp_path / "report.intoto.json").read_text())
    assert env["payloadType"] == "application/vnd.in-toto+json"
    got = verify_attestation(tmp_path / "report.intoto.json", key=keys / "signing.pub", report=path)
    assert got.statement["_type"] == "https://in-toto.io/Statement/v1"
    assert got.report_digest == att.report_digest
    with pytest.raises(VerificationError, match="does not verify"):
        verify_attestation(tmp_path / "report.intoto.json", key=keys / "other.pub")
    data = json.loads(path.read_text())
    data["findings"] = [{"fake": 1}]
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError, match="vouches for"):
        verify_attestation(tmp_path / "report.intoto.json", key=keys / "signing.pub", report=path)


def test_ml_bom_is_valid_cyclonedx_and_carries_findings(model, keys, tmp_path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    shutil.copy(Path(__file__), model / "evil.pkl")  # replaced below with a real pickle
    (model / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    sign_model(model, key=keys / "signing.key")
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "hi", "label": 1}\n')
    report = scan_artifact(model)
    bom = build_bom(model, datasets=[data], reports=[report], version="1.0")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    comp = bom["metadata"]["component"]
    assert comp["type"] == "machine-learning-model"
    assert comp["hashes"][0]["content"] == hash_path(model).digest.split(":")[1]
    files = {c["name"]: c for c in comp["components"]}
    assert set(files) == {"config.json", "weights.bin", "sub/tok.json", "evil.pkl"}
    assert all(c["type"] == "file" and c["hashes"][0]["alg"] == "SHA-256" for c in files.values())
    evil_props = [p["value"] for p in files["evil.pkl"]["properties"]]
    assert any(v.startswith("critical unsafe-serialization:") for v in evil_props)
    props = {p["name"]: p["value"] for p in comp["properties"]}
    assert props["dormant:signature:method"] == "key"
    assert props["dormant:signature:matches-model"] == "true"
    ds = bom["components"][0]
    assert ds["type"] == "data" and ds["name"] == "train.jsonl"
    assert comp["modelCard"]["modelParameters"]["datasets"] == [{"ref": ds["bom-ref"]}]


def test_cli_sign_verify_exit_codes(model, keys, tmp_path, capsys):
    assert main(["provenance", "sign", str(model), "--key", str(keys / "signing.key")]) == 0
    assert main(["provenance", "verify", str(model), "--key", str(keys / "signing.pub")]) == 0
    (model / "config.json").write_text("{}")
    code = main(["provenance", "verify", str(model), "--key", str(keys / "signing.pub")])
    err = capsys.readouterr().err
    assert code == EXIT_VERIFY and "changed: config.json" in err
    assert "verified" not in capsys.readouterr().out
    code = main(["provenance", "verify", str(model), "--key", str(tmp_path / "none.pub")])
    assert code == EXIT_USAGE and "does not exist" in capsys.readouterr().err
    out = tmp_path / "bom.json"
    assert main(["provenance", "bom", str(model), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["specVersion"] == "1.6"
