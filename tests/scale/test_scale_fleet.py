"""``dormant scan models``: the manifest, failing and refused models, resume, the HTML page.

No model is trained here (the scans of real trained models, locally and on Ray, are in
``test_scale_ray.py``): a model that is missing, has no data, or whose files would run code on
load must each become a row of the fleet report, never a crashed fleet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from dormant.cli import main
from dormant.errors import DataFormatError, InputNotFoundError
from dormant.scale import FleetReport, FleetRow, read_manifest, scan_fleet
from dormant.scale._fleet_html import render_fleet_html

pytest.importorskip("yaml")
pytest.importorskip("jinja2")

#: a pickle whose load would call os.system (never loaded: the artifact check refuses it)
EVIL_PICKLE = b"cos\nsystem\n(S'echo pwned'\ntR."


@pytest.fixture()
def fleet_dir(tmp_path: Path) -> Path:
    evil = tmp_path / "models" / "evil"
    evil.mkdir(parents=True)
    (evil / "pytorch_model.bin").write_bytes(EVIL_PICKLE)
    (evil / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "clean.jsonl").write_text('{"text": "a cat", "label": "animal"}\n')
    (tmp_path / "fleet.yaml").write_text(
        "models:\n"
        "  - model: models/evil\n"
        "    data: clean.jsonl\n"
        "  - model: models/gone\n"
        "    data: clean.jsonl\n"
        "    name: 'gone <script>alert(1)</script>'\n"
    )
    return tmp_path


def test_manifest_yaml_json_jsonl_resolve_paths_against_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("- {model: a/m1, data: d.jsonl, label_field: y}\n")
    (tmp_path / "m.json").write_text(json.dumps({"models": [{"model": "/abs/m2", "data": "d"}]}))
    (tmp_path / "m.jsonl").write_text('{"model": "m3", "data": "d", "name": "three"}\n\n')
    (y,) = read_manifest(tmp_path / "m.yaml")
    assert y.model == str(tmp_path / "a" / "m1") and y.name == "m1" and y.label_field == "y"
    (j,) = read_manifest(tmp_path / "m.json")
    assert j.model == "/abs/m2" and j.data == str(tmp_path / "d")
    (k,) = read_manifest(tmp_path / "m.jsonl")
    assert k.name == "three" and k.text_field == "text"


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("- {model: a}\n", ".yaml", "'data' must be a path"),
        ("- {model: a, data: b, weights: c}\n", ".yaml", "unknown key(s) 'weights'"),
        ("- {model: a, data: b}\n- {model: x/a, data: c}\n", ".yaml", "the same name 'a'"),
        ("models: [\n", ".yaml", "not valid YAML"),
        ("[]", ".json", "non-empty list"),
        ("- just a string\n", ".yml", "entry 1 is a str"),
        ('{"model": "a", "data": "b"}\n{oops\n', ".jsonl", "line 2 is not valid JSON"),
        ("x", ".txt", "expected .yaml, .yml, .json or .jsonl"),
    ],
)
def test_bad_manifests_are_named_errors(
    tmp_path: Path, text: str, suffix: str, expected: str
) -> None:
    p = tmp_path / f"m{suffix}"
    p.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_manifest(p)
    assert expected in str(err.value)


def test_missing_manifest_and_cli_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(InputNotFoundError):
        read_manifest(tmp_path / "nope.yaml")
    assert main(["scan", "models", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o")]) == 2
    assert "Manifest not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_refused_and_missing_models_are_rows_not_a_crash(
    fleet_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    out = fleet_dir / "out"
    code = main(["scan", "models", str(fleet_dir / "fleet.yaml"), "-o", str(out), "--no-progress"])
    assert code == 1  # a refused model is a finding
    data = json.loads((out / "fleet.json").read_text())
    rows = {r["name"]: r for r in data["models"]}
    evil = rows["evil"]
    assert evil["status"] == "refused" and "os.system" in evil["error"]
    assert evil["unsafe_findings"] == 1 and evil["artifact_max_severity"] == "critical"
    assert (out / "models" / "evil" / "artifact.json").exists()
    assert not (out / "models" / "evil" / "report.json").exists()  # never loaded
    gone = rows["gone <script>alert(1)</script>"]
    assert gone["status"] == "error" and "not found" in gone["error"]
    assert data["summary"] == {
        "models": 2,
        "backdoored": 0,
        "clean": 0,
        "failed": 1,
        "refused": 1,
        "tampered": 0,
        "resumed": 0,
    }
    err = capsys.readouterr().err
    assert "model evil: refused" in err and "Traceback" not in err


def test_resume_skips_finished_models_and_retries_failed_ones(fleet_dir: Path) -> None:
    entries = read_manifest(fleet_dir / "fleet.yaml")
    out = fleet_dir / "out"
    first = scan_fleet(entries, out)
    done = (out / "models" / "evil" / "result.json").stat().st_mtime_ns
    again = scan_fleet(entries, out, resume=True)
    assert [r.resumed for r in again.rows] == [True, False]  # the failed one is tried again
    assert (out / "models" / "evil" / "result.json").stat().st_mtime_ns == done
    assert again.rows[0].error == first.rows[0].error
    # another model under the same name is not taken from the earlier run
    moved = [entries[0].__class__(**{**entries[0].__dict__, "data": "other.jsonl"}), entries[1]]
    assert not scan_fleet(moved, out, resume=True).rows[0].resumed
    assert not list(out.rglob(".*.tmp"))


def test_registry_records_the_refused_artifact(fleet_dir: Path) -> None:
    pytest.importorskip("sqlalchemy")
    from dormant.registry import Registry

    url = f"sqlite:///{fleet_dir / 'reg.db'}"
    out = fleet_dir / "out"
    assert main(["scan", "models", str(fleet_dir / "fleet.yaml"), "-o", str(out), "-q",
                 "--registry", url]) == 1  # fmt: skip
    row = json.loads((out / "models" / "evil" / "result.json").read_text())
    assert row["provenance"] == "unverified"
    reg = Registry.open(url)
    try:
        scans = reg.scans_for(row["model_digest"])
        assert scans and scans[0].max_severity == "critical"
    finally:
        reg.close()


def test_html_escapes_hostile_values_and_allows_only_its_own_script() -> None:
    hostile = '<img src=x onerror=alert(1)>"\u200b'
    row = FleetRow(
        name=hostile,
        model="/m/" + hostile,
        data="d",
        status="ok",
        backdoored=True,
        probability=0.97,
        trigger="cf\u200b<b>",
        target="<i>plant</i>",
        flip_rate=0.95,
        error="</td><script>alert(2)</script>",
    )
    page = render_fleet_html(
        FleetReport(rows=(row,), manifest="<m>", engine="process-pool", workers=1, seconds=1.0)
    )
    assert "<img" not in page and "<script>alert" not in page and "<i>plant" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "cf⟨U+200B⟩&lt;b&gt;" in page  # the invisible character is shown
    (script,) = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    assert f"script-src 'sha256-{digest}'" in csp.group(1) and "default-src 'none'" in csp.group(1)
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from outside


def test_process_pool_gives_the_same_rows_in_manifest_order(fleet_dir: Path) -> None:
    entries = read_manifest(fleet_dir / "fleet.yaml")
    one = scan_fleet(entries, fleet_dir / "one")
    two = scan_fleet(entries, fleet_dir / "two", jobs=2)
    strip = lambda r: {**r.to_dict(), "seconds": 0}  # noqa: E731
    assert [strip(r) for r in two.rows] == [strip(r) for r in one.rows]
    assert two.engine == "process-pool" and two.workers == 2
