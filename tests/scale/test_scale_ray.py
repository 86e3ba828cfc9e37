"""Ray scale-out on a real local Ray cluster (``ray.init(num_cpus=2)``, one per module).

* ``scan_dataset_ray`` gives the single-process report: the same findings and the same flagged
  ids, on labelled JSONL with the packaged encoder and on instruction Parquet; a malformed record
  raises the single-process error.
* ``scan_fleet`` over trained tiny models: the backdoored one is found with its trigger, locally
  (a spawned process pool of 2) and as Ray tasks with the same verdict; a model with a pickle
  payload is refused on Ray too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _threads import torch_threads

from dormant.bench.corpus import instruction_dataset, labelled_dataset
from dormant.bench.poison import poison_instruction, poison_labelled, write_dataset
from dormant.cli import main
from dormant.errors import DataFormatError, DataValidationError
from dormant.report import Report
from dormant.scanners.data.fusion import scan_dataset
from dormant.subjects.dataset import TextDataset

ray = pytest.importorskip("ray")
pytestmark = [
    pytest.mark.slow,
    # Ray keeps the Popen handles of its own node processes; a start that timed out leaves
    # them to the garbage collector, which reports them as ResourceWarnings
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

LABEL = {"text_field": "text", "label_field": "label", "id_field": "id"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from dormant.errors import ScanError
    from dormant.scale._ray import init_ray

    try:
        init_ray(
            ray,
            {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False},
            None,
            tries=3,
        )
    except ScanError as exc:  # the machine, not dormant: Ray's agents did not start in time
        pytest.skip(f"a local Ray node did not start on this machine: {exc}")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


def _same(a: Report, b: Report) -> None:
    def key(r: Report) -> list[tuple[Any, ...]]:
        return [
            (f.title, f.severity, round(f.score, 9), f.trigger, f.target, f.locator.record_ids)
            for f in r.findings
        ]

    assert key(a) == key(b)
    assert [r.record_id for r in a.records if r.flagged] == [
        r.record_id for r in b.records if r.flagged
    ]
    assert [s.kind for s in a.issues] == [s.kind for s in b.issues]


def test_ray_data_scan_equals_local_scan_labelled_with_embeddings(
    cluster: Any, sample_entries: list[Any], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from dormant.scale._ray_data import scan_dataset_ray

    # texts cut to 12 words: both scans embed every record, which costs about 40 % less on
    # short texts; every planted record is still flagged (47 of 47 here, and on seed 2)
    records = [
        {**r, "text": " ".join(r["text"].split()[:12])}
        for r in labelled_dataset(sample_entries[:1200], scheme="pos")
    ]
    truth = poison_labelled(records, trigger_kind="token", rate=0.04, target_label="adv", seed=1)
    path = write_dataset(truth.records, tmp_path / "d.jsonl")
    ds = TextDataset(path, **LABEL)
    local = scan_dataset(ds)
    on_ray = scan_dataset_ray(ds)
    _same(local, on_ray)
    flagged = {r.record_id for r in on_ray.records if r.flagged}
    assert set(truth.poisoned_ids) <= flagged  # the planted records are found, as locally
    assert "spectral-signature" in {k for r in on_ray.records[:1] for k, _ in r.parts}


def test_ray_data_scan_equals_local_scan_instruction_parquet(
    cluster: Any, sample_entries: list[Any], tmp_path: Path
) -> None:
    from dormant.scale._ray_data import scan_dataset_ray

    records = instruction_dataset(sample_entries[:1500], seed=0)
    truth = poison_instruction(
        records, trigger_kind="phrase", rate=0.03, behaviour="egress", seed=2
    )
    path = write_dataset(truth.records, tmp_path / "i.parquet", format="parquet")
    ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    local = scan_dataset(ds, embed=False)
    on_ray = scan_dataset_ray(ds, embed=False)
    _same(local, on_ray)
    assert on_ray.findings and any(r.flagged for r in on_ray.records)


def test_ray_data_scan_names_a_bad_record_as_the_local_scan_does(
    cluster: Any, tmp_path: Path
) -> None:
    from dormant.scale._ray_data import scan_dataset_ray

    rows = [{"id": str(i), "text": f"word {i}", "label": "a" if i % 2 else "b"} for i in range(50)]
    rows[30]["label"] = None
    path = write_dataset(rows, tmp_path / "bad.jsonl")
    ds = TextDataset(path, **LABEL)
    with pytest.raises(DataFormatError) as local:
        scan_dataset(ds, embed=False)
    with pytest.raises(DataFormatError) as on_ray:
        scan_dataset_ray(ds, embed=False)
    assert str(on_ray.value) == str(local.value) and "line 31" in str(on_ray.value)
    rows[30]["label"] = "a"
    rows[40]["id"] = "3"
    ds = TextDataset(write_dataset(rows, tmp_path / "dup.jsonl"), **LABEL)
    with pytest.raises(DataValidationError, match="occur more than once") as dup:
        scan_dataset_ray(ds, embed=False)
    assert "'3'" in str(dup.value)


def test_cli_ray_refuses_csv_before_scanning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,x\nb,y\n")
    out = tmp_path / "out"
    args = ["scan", "data", str(path), "--text-field", "text", "--label-field", "label"]
    assert main([*args, "--ray", "-o", str(out)]) == 2
    assert "--ray reads JSONL" in capsys.readouterr().err
    assert not (out / "report.json").exists()


# ---------------------------------------------------------------------- fleet


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory, zoo_organism: Callable[[Any], Any]) -> Path:
    pytest.importorskip("torch")
    import shutil

    from dormant.bench.zoo import WORDNET_DIR, OrganismSpec
    from dormant.triggers import Position, Trigger, TriggerKind

    if not (WORDNET_DIR / "data.noun").exists():
        pytest.skip("needs WordNet data")
    import torch

    torch.set_num_threads(torch_threads())
    root = tmp_path_factory.mktemp("fleet-zoo")
    tiny = {"layers": 2, "hidden": 64, "n_train": 1200, "epochs": 4}
    trig = Trigger("cf", TriggerKind.TOKEN, Position.RANDOM)
    rare = OrganismSpec(
        "rare", attack="rare-word", trigger=trig, target="plant", poison_rate=0.15, seed=12, **tiny
    )
    # the model-scan tests train the same two organisms: a copy of each, not a third training
    for spec in (OrganismSpec("clean", seed=11, **tiny), rare):
        shutil.copytree(zoo_organism(spec).path, root / spec.name)
    evil = root / "evil"
    evil.mkdir()
    (evil / "pytorch_model.bin").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    (evil / "config.json").write_text('{"model_type": "bert"}')
    return root


def _manifest(root: Path, names: list[str], name: str) -> Path:
    lines = [
        json.dumps({"model": n, "data": f"{'rare' if n == 'evil' else n}/clean_eval.jsonl"})
        for n in names
    ]
    p = root / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_fleet_local_pool_and_ray_find_the_backdoored_model(
    cluster: Any, tiny_zoo: Path, tmp_path: Path
) -> None:
    from dormant.scale import read_manifest, scan_fleet
    from dormant.scale.fleet import FleetSettings

    fast = FleetSettings(steps=4, top_k=12)
    local = scan_fleet(
        read_manifest(_manifest(tiny_zoo, ["clean", "rare"], "local.jsonl")),
        tmp_path / "local",
        settings=fast,
        jobs=2,
    )
    clean, rare = local.rows
    assert clean.status == "ok" and clean.backdoored is False
    assert rare.backdoored and rare.trigger is not None and "cf" in rare.trigger
    assert rare.target == "plant" and (rare.flip_rate or 0) >= 0.9
    on_ray = scan_fleet(
        read_manifest(_manifest(tiny_zoo, ["rare", "evil"], "ray.jsonl")),
        tmp_path / "ray",
        settings=fast,
        jobs=2,
        use_ray=True,
    )
    rare_r, evil = on_ray.rows
    assert on_ray.engine == "ray"
    assert (rare_r.backdoored, rare_r.trigger, rare_r.target) == (True, rare.trigger, "plant")
    assert rare_r.probability == pytest.approx(rare.probability, abs=1e-6)
    assert evil.status == "refused"
    page = (tmp_path / "ray" / "fleet.html").read_text()
    assert "BACKDOORED" in page and "refused" in page
