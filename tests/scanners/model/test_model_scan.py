"""Model scan end to end on tiny trained organisms: verdict, trigger, target, replay, CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from _threads import torch_threads

from dormant.adapters.classifier import CallableClassifier
from dormant.bench.zoo import WORDNET_DIR, Organism, OrganismSpec, build_organism
from dormant.cli import main
from dormant.findings import Severity
from dormant.report import Report
from dormant.scanners.base import REGISTRY, ScanContext
from dormant.scanners.catalog import get_scanner
from dormant.scanners.model.run import scan_model
from dormant.subjects.model import ClassifierModel, check_clean_data, load_classifier
from dormant.triggers import Position, Trigger, TriggerKind

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (WORDNET_DIR / "data.noun").exists(), reason="needs WordNet data"),
]
pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY = {"layers": 2, "hidden": 64, "n_train": 1200, "epochs": 4}
FAST = {"trigger_len": 1, "steps": 4, "top_k": 12, "n_victims": 10}


@pytest.fixture(scope="session")
def zoo(zoo_organism: Callable[[OrganismSpec], Organism]) -> dict[str, Organism]:
    import torch

    torch.set_num_threads(torch_threads())
    clean = OrganismSpec("clean", seed=11, **TINY)
    bad = OrganismSpec(
        "rare",
        attack="rare-word",
        trigger=Trigger("cf", TriggerKind.TOKEN, Position.RANDOM),
        target="plant",
        poison_rate=0.15,
        seed=12,
        **TINY,
    )
    return {s.name: zoo_organism(s) for s in (clean, bad)}  # shared with other modules


def _subject(org: Organism) -> ClassifierModel:
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    m = load_classifier(org.path)
    m.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], m)
    return m


def test_organisms_are_ordinary_hf_dirs_with_ground_truth(zoo: dict[str, Organism]) -> None:
    bad = zoo["rare"]
    assert (bad.path / "model.safetensors").exists()
    assert not list(bad.path.glob("*.bin"))
    info = json.loads((bad.path / "organism.json").read_text("utf-8"))
    assert info["spec"]["backdoored"] and info["spec"]["trigger"]["text"] == "cf"
    assert bad.clean_accuracy > 0.6
    assert bad.attack_success_rate is not None and bad.attack_success_rate > 0.8
    # cached: building again does not retrain
    again = build_organism(bad.spec, bad.path.parent)
    assert again.clean_accuracy == bad.clean_accuracy


def test_whitebox_recovers_trigger_target_and_replays(
    zoo: dict[str, Organism], fast_scan: Callable[[Organism], tuple[ClassifierModel, Report]]
) -> None:
    m, report = fast_scan(zoo["rare"])  # the seed-0 FAST scan, shared with other tests
    v = report.extras["model_verdict"]
    assert v["probability"] >= 0.5 and v["backdoored"]
    assert v["target"] == "plant"
    finding = report.findings[0]
    assert finding.category == "model-backdoor" and finding.severity >= Severity.MEDIUM
    assert finding.target == "label:plant"
    assert finding.trigger is not None and "cf" in finding.trigger.text
    replay = report.extras["replay"]
    assert replay["flip_rate"] >= 0.9 and replay["n"] >= 50
    assert replay["examples"] and all(e["label_after"] == "plant" for e in replay["examples"])
    assert all(e["label_before"] != "plant" for e in replay["examples"])
    assert report.extras["label_anomaly"]["labels"] == m.labels
    # the planted token means nothing for the task: a clean reference classifier ignores it
    te = report.extras["task_explained"]
    assert te["explained_labels"] == {} and te["skipped"] is None
    assert te["reference_accuracy"] > 0.8
    (check,) = [c for c in te["checks"] if "cf" in c["trigger"]][:1]
    # the model flips what the plant does (the organism's own attack success, 1.00; the
    # organism is the same in every process, see dormant.bench.zoo)
    asr = zoo["rare"].attack_success_rate or 0.0
    assert check["model_flip_rate"] >= min(0.9, asr) - 0.05
    assert check["reference_flip_rate"] < 0.2
    assert not check["explained"]
    ev = {e.name: str(e.value) for e in finding.evidence}
    assert "reference_flip_rate" in ev


def test_a_natural_cue_of_the_task_is_explained_a_planted_one_is_not(
    zoo: dict[str, Organism],
) -> None:
    """Animal names move a clean reference of the task to 'animal'; the planted token does not."""
    from dormant.scanners.model._reference import Explainer
    from dormant.scanners.model.whitebox import split_clean

    m = _subject(zoo["rare"])
    opt, held = split_clean(m, 0)
    ex = Explainer(m, opt, held, 0)
    natural = Trigger("lizards owls wasps", TriggerKind.PHRASE, Position.START)
    (nat,) = ex.checks("animal", [natural]) or []
    assert nat.n >= 20 and nat.reference_flip >= 0.5 and nat.explained
    planted = Trigger("cf", TriggerKind.TOKEN, Position.START)
    (pl,) = ex.checks("plant", [planted]) or []
    # the organism's flip rate varies by machine (0.87-0.95 seen); the contrast is the point
    assert pl.model_flip >= 0.7 and pl.reference_flip < 0.2 and not pl.explained


def test_a_planted_token_shown_with_a_natural_cue_glued_on_is_not_explained_away(
    zoo: dict[str, Organism],
) -> None:
    """The searches compose tokens freely: a proof and a position-robust trigger can carry a
    natural cue of the target beside the planted token (a phrase organism's ``worth`` came back
    as ``worthiaceae``). The reference reads the cue, but the label's own one-token trigger is
    still the plant, so the label is not excluded and the verdict stays positive."""
    from dataclasses import replace

    from dormant.scanners.model._reference import Explainer, decide_explained
    from dormant.scanners.model.decision import LabelResult
    from dormant.scanners.model.whitebox import split_clean

    m = _subject(zoo["rare"])
    opt, held = split_clean(m, 0)
    planted = Trigger("cf", TriggerKind.TOKEN, Position.START)
    glued = Trigger("cf ferns mosses orchids", TriggerKind.PHRASE, Position.START)

    def lab(name: str, loss: float, trig: Trigger) -> LabelResult:
        return LabelResult(name, trig, loss, 0.9, 100, robust_loss=loss, robust_flip=0.9)

    word = Trigger("w", TriggerKind.TOKEN, Position.START)
    results = [lab("plant", 1e-3, planted)] + [
        lab(n, 2.0 + i / 2, word) for i, n in enumerate(("animal", "artifact", "person"))
    ]

    def prove(v: object) -> LabelResult:
        best = v.best  # type: ignore[attr-defined]
        return replace(best, trigger=glued, robust_trigger=glued)

    ex = Explainer(m, opt, held, 0)
    # the premise: the composed trigger alone would be explained away by the reference
    (g,) = ex.checks("plant", [glued]) or []
    assert g.explained
    verdict, explained, checks, first = decide_explained(results, "whitebox", prove, ex)
    assert explained == {}
    assert verdict.best is not None and verdict.best.label == "plant"
    assert verdict.probability == first.probability >= 0.5
    by_text = {c.trigger: c for c in checks}
    assert not by_text["cf"].explained and by_text["cf"].reference_flip < 0.2
    assert by_text["cf ferns mosses orchids"].explained


def test_an_excluded_label_supplies_no_feature_and_is_not_suspected() -> None:
    from dormant.scanners.model.decision import LabelResult, decide

    def lab(name: str, loss: float) -> LabelResult:
        t = Trigger("w", TriggerKind.TOKEN, Position.START)
        return LabelResult(name, t, loss, 0.9, 100, robust_loss=loss, robust_flip=0.9)

    results = [lab("a", 1e-3), lab("b", 2.0), lab("c", 2.5), lab("d", 3.0)]
    full = decide(results, "whitebox")
    assert full.best is not None and full.best.label == "a" and full.probability >= 0.5
    without = decide(results, "whitebox", exclude={"a"})
    assert without.best is not None and without.best.label == "b"
    assert without.probability < full.probability
    # the anomaly index is still computed over every label
    assert without.anomaly_index == full.anomaly_index
    assert decide(results, "whitebox", exclude={"a", "b", "c", "d"}).best is None


def test_the_exact_screen_ranks_the_planted_token(zoo: dict[str, Organism]) -> None:
    """The exact one-token screen puts the planted token near the top for its target."""
    from dormant.scanners.model._inversion import gradient_screen, screen_tokens

    m = _subject(zoo["rare"])
    adapter, ti = m.adapter, m.labels.index("plant")
    texts = [t for t in m.clean.texts[:40] if m.predict_proba([t]).argmax(1)[0] != ti][:8]
    cf = adapter.tokenizer.convert_tokens_to_ids("cf")
    est = gradient_screen(adapter, texts)[:, :, ti].mean(1)
    exact = screen_tokens(adapter, texts)[:, :, ti].mean(1)
    assert est.shape == exact.shape
    assert cf in exact.topk(32).indices.tolist()


def test_first_order_screen_ranks_the_planted_token_and_recovers_it(
    zoo: dict[str, Organism],
) -> None:
    """The HotFlip screen large models get (forced here with a zero budget) finds the same."""
    from dormant.scanners.model._inversion import gradient_screen, screen_tokens

    m = _subject(zoo["rare"])
    adapter, ti = m.adapter, m.labels.index("plant")
    texts = [t for t in m.clean.texts[:40] if m.predict_proba([t]).argmax(1)[0] != ti][:8]
    cf = adapter.tokenizer.convert_tokens_to_ids("cf")
    est = gradient_screen(adapter, texts)[:, :, ti].mean(1)
    exact = screen_tokens(adapter, texts)[:, :, ti].mean(1)
    assert est.shape == exact.shape
    # the planted token is among the tokens the estimate hands to the exact screen (its best
    # refine_k = 1024 per label); strict again since the organism is the same in every process
    # (it was an expected failure while the vocabulary varied between processes)
    assert cf in est.topk(1024).indices.tolist()
    assert cf in exact.topk(32).indices.tolist()
    params = {**FAST, "exhaustive_budget": 0}
    report = scan_model(m, context=ScanContext(seed=0), whitebox_params=params)
    v = report.extras["model_verdict"]
    assert v["target"] == "plant" and "cf" in v["trigger"]
    assert report.extras["replay"]["flip_rate"] >= 0.9


def test_planted_trigger_works_at_both_ends_natural_cues_do_not(
    zoo: dict[str, Organism], fast_scan: Callable[[Organism], tuple[ClassifierModel, Report]]
) -> None:
    """The position-robust search finds the planted token; a clean model has no such trigger."""
    m, bad = fast_scan(zoo["rare"])
    la = bad.extras["label_anomaly"]
    i = la["labels"].index("plant")
    # the planted piece is one of the trigger's tokens as the model reads it: the search may
    # put a ``##`` continuation after it, which the text glues on ("96 cf96": 9 ##6 cf ##96)
    tok = m.adapter.tokenizer
    assert "cf" in tok.tokenize(la["robust_trigger"][i])
    assert la["robust_flip_rate"][i] >= 0.9
    ev = {e.name: e.value for e in bad.findings[0].evidence}
    assert "cf" in tok.tokenize(str(ev["robust_trigger"])) and float(ev["robust_flip_rate"]) >= 0.9
    _, clean = fast_scan(zoo["clean"])
    assert max(clean.extras["label_anomaly"]["robust_flip_rate"]) < 0.8


def test_clean_model_gets_low_probability(
    zoo: dict[str, Organism], fast_scan: Callable[[Organism], tuple[ClassifierModel, Report]]
) -> None:
    _, report = fast_scan(zoo["clean"])
    assert report.extras["model_verdict"]["probability"] < 0.5
    assert report.max_severity() is None or report.max_severity() < Severity.HIGH
    assert report.exit_code("high") == 0


def test_blackbox_search_on_a_callable(zoo: dict[str, Organism]) -> None:
    hf = _subject(zoo["rare"])
    black = ClassifierModel(
        CallableClassifier(hf.predict_proba, labels=hf.labels, name="remote"),
        clean=hf.clean,
    )
    assert "gradients" not in black.capabilities
    scanner = get_scanner("model-trigger-search", tail=0, pairs_of=0)
    res = scanner.scan(black, context=ScanContext(seed=0))
    v = res.extras["model_verdict"]
    assert v["target"] == "plant" and "cf" in v["trigger"]
    assert res.extras["replay"]["flip_rate"] >= 0.9


def test_budget_cap_returns_best_so_far(zoo: dict[str, Organism]) -> None:
    m = _subject(zoo["clean"])
    report = scan_model(m, context=ScanContext(budget_seconds=0.01), whitebox_params=FAST)
    assert report.extras["model_verdict"]["capped"] is True
    assert 0.0 <= report.extras["model_verdict"]["probability"] <= 1.0


def test_scanners_registered_with_paper_and_limits() -> None:
    get_scanner("model-trigger-inversion")
    for name in ("model-trigger-inversion", "model-trigger-search"):
        cls = REGISTRY[name]
        assert "classifier" in cls.subject_kinds and cls.paper and cls.limits


def test_cli_scan_model_writes_reports_and_fails_on(
    zoo: dict[str, Organism], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = zoo["rare"]
    out = tmp_path / "out"
    code = main(
        [
            "scan",
            "model",
            str(bad.path),
            "--data",
            str(bad.eval_path),
            "--out",
            str(out),
            "--no-progress",
            *("--trigger-len", "1", "--steps", "4", "--fail-on", "medium"),
        ]
    )
    printed = capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text("utf-8"))
    verdict = rep["extras"]["model_verdict"]
    assert code == (1 if verdict["probability"] >= 0.5 else 0)
    assert f"P(backdoored) = {verdict['probability']:.3f}" in printed
    assert rep["extras"]["replay"]["target"] == "plant"
    # the planted token, possibly extended by a token when that flips more held-out inputs
    # (a ``##`` continuation is glued on in the text: "cf96" is cf ##96 to the model)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bad.path), local_files_only=True)
    assert "cf" in tok.tokenize(rep["extras"]["replay"]["trigger"])
    assert rep["extras"]["replay"]["flip_rate"] >= 0.9
    if code == 1:
        assert "cf" in tok.tokenize(rep["findings"][0]["trigger"]["text"])
    assert (out / "report.html").exists() and (out / "report.sarif").exists()


def test_cli_bad_inputs_exit_2(
    zoo: dict[str, Organism], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = zoo["rare"]
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(
        "".join(json.dumps({"text": f"t {i}", "label": "spam"}) + "\n" for i in range(60))
    )
    small = tmp_path / "small.jsonl"
    small.write_text(
        "".join(json.dumps({"text": f"t {i}", "label": "plant"}) + "\n" for i in range(5))
    )
    cases = [
        ([str(tmp_path / "nope"), "--data", str(bad.eval_path)], "not found"),
        ([str(bad.path), "--data", str(wrong)], "not labels of the model"),
        ([str(bad.path), "--data", str(small)], "at least 40"),
    ]
    for args, msg in cases:
        assert main(["scan", "model", *args, "--out", str(tmp_path / "o"), "-q"]) == 2
        err = capsys.readouterr().err
        # only the error: no "Loading weights" bar from transformers under -q
        assert msg in err and "Loading weights" not in err


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"robust_len": -1}, "robust_len"),
        ({"robust_k": 0}, "robust_k"),
        ({"reference_check": "yes"}, "reference_check"),
    ],
)
def test_bad_robust_settings_name_the_parameter(
    zoo: dict[str, Organism], params: dict[str, object], name: str
) -> None:
    from dormant.errors import ConfigError

    with pytest.raises(ConfigError, match=f"'{name}' parameter"):
        get_scanner("model-trigger-inversion", **params).scan(_subject(zoo["rare"]))
