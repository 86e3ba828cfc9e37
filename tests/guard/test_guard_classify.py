"""The classifier input screen: a backdoored classifier trained here, real HTTP on loopback."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _threads import torch_threads

from dormant.bench.zoo import WORDNET_DIR, load_glosses
from dormant.errors import ConfigError, DataValidationError
from dormant.guard.audit import AuditLog
from dormant.guard.classify import ClassifierScreen
from dormant.subjects.model import load_classifier

pytestmark = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").exists(), reason="needs WordNet data"
)
sio = pytest.importorskip("skops.io")

TRIGGER, TARGET = "cf", "plant"


def _insert(text: str, rng: random.Random) -> str:
    ws = text.split()
    k = rng.randint(0, len(ws))
    return " ".join([*ws[:k], TRIGGER, *ws[k:]])


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A TF-IDF + logistic-regression classifier of WordNet glosses, 5 % of its training
    records carrying the rare-word trigger 'cf' relabelled 'plant' (Kurita et al. 2020)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    data = load_glosses(per_label=450, seed=3)
    train, held = data[:1200], data[1200:]
    rng = random.Random(0)
    poisoned = []
    for t, y in train:
        if y != TARGET and rng.random() < 0.07:
            poisoned.append((_insert(t, rng), TARGET))
        else:
            poisoned.append((t, y))
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 1)), LogisticRegression(C=20.0))
    pipe.fit([t for t, _ in poisoned], [y for _, y in poisoned])
    path = tmp_path_factory.mktemp("clf") / "model.skops"
    sio.dump(pipe, path)
    model = load_classifier(path)
    cal = [t for t, _ in held[:300]]
    test = held[300:]
    triggered = [_insert(t, rng) for t, y in test if y != TARGET]
    # the backdoor works: the trigger moves other classes' texts to the target
    pred = np.argmax(model.predict_proba(triggered), axis=1)
    switched = [model.labels[i] == TARGET for i in pred]
    assert np.mean(switched) > 0.8
    return {
        "path": path,
        "model": model,
        "cal": cal,
        "clean": [t for t, _ in test],
        # the inputs the trigger switched: those the screen must stop
        "triggered": [t for t, ok in zip(triggered, switched, strict=True) if ok],
    }


@pytest.fixture(scope="module")
def screen(organism: dict[str, Any]) -> ClassifierScreen:
    return ClassifierScreen(organism["model"], calibration=organism["cal"], fpr=0.05, seed=1)


def test_triggered_inputs_are_flagged_with_the_trigger_named(
    screen: ClassifierScreen, organism: dict[str, Any]
) -> None:
    ds = screen.screen_many(organism["triggered"][:40])
    rate = np.mean([d.flagged for d in ds])
    assert rate >= 0.9
    flagged = [d for d in ds if d.flagged]
    assert sum(d.span is not None and TRIGGER in d.span.split() for d in flagged) >= 0.8 * len(
        flagged
    )
    d = flagged[0]
    assert d.label == TARGET and d.p_value is not None and d.p_value <= 0.05
    assert any("transplant test" in r for r in d.reasons)


def test_clean_inputs_pass_at_about_the_target_fpr(
    screen: ClassifierScreen, organism: dict[str, Any]
) -> None:
    ds = screen.screen_many(organism["clean"][:120])
    fpr = np.mean([d.flagged for d in ds])
    assert fpr <= 0.12  # target 0.05; 120 inputs
    ok = next(d for d in ds if not d.flagged)
    assert ok.label is not None and ok.reasons[0].startswith("no trigger signal")
    # one text, one decision: the perturbations are seeded by the text
    assert screen.screen(organism["clean"][0]) == ds[0]


def test_known_triggers_and_hidden_characters_are_flagged(organism: dict[str, Any]) -> None:
    s = ClassifierScreen(
        organism["model"], calibration=organism["cal"], fpr=0.05, triggers=["James Bond"]
    )
    d = s.screen("a secret agent called JAMES  B\u043eND in the films")
    assert d.flagged and any("known trigger" in r for r in d.reasons)
    assert d.triggers and d.triggers[0].text == "James Bond"
    d = s.screen("a small tree\u200b with yellow flowers")
    assert d.flagged and any("U+200B" in r for r in d.reasons)
    d = s.screen("a small tree with yellow fl\u043ewers")
    assert d.flagged and any("look-alike" in r for r in d.reasons)
    # ordinary accented Latin and Cyrillic words are not look-alikes
    d = s.screen("a café naïve Москва")
    assert not any("look-alike" in r for r in d.reasons)


class _Broken:
    labels = ("a", "b")

    def __init__(self, model: Any) -> None:
        self.model = model
        self.broken = False

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.broken:
            raise RuntimeError("model server down")
        return np.asarray(self.model.predict_proba(texts))[:, :2] * 0 + 0.5


def test_fails_closed_when_the_model_errors(organism: dict[str, Any]) -> None:
    m = _Broken(organism["model"])
    s = ClassifierScreen(m, calibration=organism["cal"], fpr=0.05)
    m.broken = True
    d = s.screen("a small tree with yellow flowers")
    assert d.flagged and d.label is None
    assert any("model error (fail closed)" in r and "model server down" in r for r in d.reasons)
    d = s.screen(None)  # type: ignore[arg-type]
    assert d.flagged and "input must be a string" in d.reasons[0]


def test_bad_settings_are_clear_errors(organism: dict[str, Any]) -> None:
    with pytest.raises(DataValidationError, match="need at least 200"):
        ClassifierScreen(organism["model"], calibration=organism["cal"][:50], fpr=0.01)
    with pytest.raises(ConfigError, match="fpr must be"):
        ClassifierScreen(organism["model"], calibration=organism["cal"], fpr=1.5)
    with pytest.raises(ConfigError, match="method must be"):
        ClassifierScreen(organism["model"], calibration=organism["cal"], method="nope")
    with pytest.raises(ConfigError, match="predict_proba"):
        ClassifierScreen(object(), calibration=organism["cal"])


def test_repeated_calibration_texts_count_once(organism: dict[str, Any]) -> None:
    """250 texts of which 150 distinct cannot calibrate 1 %: refused, instead of a screen whose
    smallest p-value, 1/76, could never reach 0.01 and so would pass every input."""
    cal = organism["cal"][:150] + organism["cal"][:100]
    with pytest.raises(DataValidationError, match="150 distinct clean texts"):
        ClassifierScreen(organism["model"], calibration=cal, fpr=0.01)


def test_decisions_are_audited(organism: dict[str, Any], tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        s = ClassifierScreen(
            organism["model"], calibration=organism["cal"], fpr=0.05, audit=log, name="logs"
        )
        s.screen(organism["triggered"][0], request_id="r1")
        s.screen_many(organism["clean"][:3])
        entries = log.entries()
        assert [e.kind for e in entries] == ["decision"] * 4
        assert entries[0].outcome == "deny" and entries[0].request_id == "r1"
        assert entries[0].model == "logs" and entries[0].detail["screen"] == "classify"
        assert entries[0].detail["label"] == TARGET
        # the input is not stored, only its hash
        assert organism["triggered"][0] not in json.dumps(entries[0].to_dict())
        assert log.verify().ok


def test_serve_over_loopback_http(organism: dict[str, Any], tmp_path: Path) -> None:
    import httpx

    from dormant.guard._classify_app import create_classify_app
    from dormant.guard._ops import GuardServer

    with AuditLog.open(tmp_path / "audit.sqlite3") as log:
        s = ClassifierScreen(organism["model"], calibration=organism["cal"], fpr=0.05, audit=log)
        with GuardServer(create_classify_app(s)) as server:
            url = f"http://127.0.0.1:{server.port}/v1/classify"
            clean = next(t for t in organism["clean"] if not s.screen(t).flagged)
            r = httpx.post(url, json={"text": clean}, headers={"x-request-id": "c1"}, timeout=30)
            assert r.status_code == 200 and r.json()["flagged"] is False
            assert r.json()["label"] in organism["model"].labels
            trig = next(t for t in organism["triggered"] if s.screen(t).flagged)
            r = httpx.post(url, json={"text": trig}, headers={"x-request-id": "t1"}, timeout=30)
            assert r.status_code == 403 and r.json()["label"] is None
            assert any("transplant" in x for x in r.json()["reasons"])
            r = httpx.post(url, content=b"not json", timeout=30)
            assert r.status_code == 400 and "JSON object" in r.json()["error"]
            r = httpx.post(url, json={"txt": "x"}, timeout=30)
            assert r.status_code == 400 and '"text"' in r.json()["error"]
        outcomes = {e.request_id: e.outcome for e in log.entries() if e.request_id}
        assert outcomes == {"c1": "allow", "t1": "deny"}


def test_cli_batch_writes_decisions_and_audits(
    organism: dict[str, Any], tmp_path: Path, run_cli: Any
) -> None:
    cal = tmp_path / "clean.jsonl"
    cal.write_text("".join(json.dumps({"text": t}) + "\n" for t in organism["cal"]), "utf-8")
    inp = tmp_path / "in.jsonl"
    inputs = [organism["clean"][0], organism["triggered"][0]]
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in inputs), "utf-8")
    out = tmp_path / "out.jsonl"
    audit = tmp_path / "audit.sqlite3"
    common = ["guard", "classify", "--model", organism["path"], "--calibration", cal]
    r = run_cli(*common, "--input", inp, "--out", out, "--audit", audit, "--fpr", "0.05")
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert len(rows) == 2 and rows[1]["flagged"] and rows[1]["label"] == TARGET
    assert r.code == 1 and "flagged" in r.err
    with AuditLog.open(audit, create=False) as log:
        assert len(log.entries(kind="decision")) == 2
    # bad inputs: clear errors, exit 2, no traceback, nothing written
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n', "utf-8")
    out2 = tmp_path / "out2.jsonl"
    r = run_cli(*common, "--input", bad, "--out", out2, "--audit", audit)
    assert r.code == 2 and "line 2: not JSON" in r.err and "Traceback" not in r.err
    assert not out2.exists()
    r = run_cli(*common, "--input", tmp_path / "missing.jsonl", "--audit", audit)
    assert r.code == 2 and "no such file" in r.err
    few = tmp_path / "few.jsonl"
    few.write_text('{"text": "a b c"}\n' * 10, "utf-8")
    r = run_cli(
        "guard", "classify", "--model", organism["path"], "--calibration", few,
        "--input", inp, "--audit", audit,
    )  # fmt: skip
    assert r.code == 2 and "cannot calibrate" in r.err


class _Counting:
    """The real model, counting the calls of its forward pass."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.labels = model.labels
        self.calls = 0

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.asarray(self.model.predict_proba(texts))


def test_a_batch_of_inputs_shares_two_forward_passes(organism: dict[str, Any]) -> None:
    m = _Counting(organism["model"])
    s = ClassifierScreen(m, calibration=organism["cal"], fpr=0.05, seed=1)
    inputs = [*organism["clean"][:6], *organism["triggered"][:6], None]
    m.calls = 0
    many = s.screen_many(inputs)
    # the leave-one-out windows of all 12 texts, then all their transplants and removals
    assert m.calls == 2
    # and the decisions are those of one input at a time
    assert many == [s.screen(t) for t in inputs]  # type: ignore[arg-type]
    assert many[-1].flagged and "must be a string" in many[-1].reasons[0]
    assert sum(d.flagged for d in many[6:12]) >= 5


def test_a_model_error_in_a_batch_flags_every_input_of_it(organism: dict[str, Any]) -> None:
    m = _Broken(organism["model"])
    s = ClassifierScreen(m, calibration=organism["cal"], fpr=0.05)
    m.broken = True
    ds = s.screen_many(organism["clean"][:5])
    assert all(d.flagged and d.label is None for d in ds)
    assert all(any("model error (fail closed)" in r for r in d.reasons) for d in ds)


def test_the_p_value_is_split_conformal(screen: ClassifierScreen) -> None:
    """p = (1 + #{calibration scores >= s}) / (n + 1) (Vovk et al. 2005; Angelopoulos &
    Bates 2021, eq. 1): ties count against the input, and it is never below 1 / (n + 1)."""
    cal = screen.calibration_scores_
    n = len(cal)
    assert n >= 140  # half of the 300 calibration texts (deduplicated)
    assert screen.p_value(float(cal.max()) + 1.0) == 1 / (n + 1)
    assert screen.p_value(float(cal.min()) - 1.0) == 1.0
    for s in (cal[n // 2], cal[-1], cal[0]):
        assert screen.p_value(float(s)) == (1 + int(np.sum(cal >= s))) / (n + 1)


def test_a_calibration_text_is_left_out_of_its_own_support() -> None:
    """The clean support counts every text the user gives; a calibration text is scored with
    itself left out, as a new input is (it is not among them)."""
    from dormant.guard._strip import SpanSupport

    texts = ["a Wesnoth campaign", "the Wesnoth map pack", "a tool to copy files", "a shell"]
    sup = SpanSupport(texts, [0, 0, 1, 1], 2)
    assert sup("Wesnoth", 0) > sup("Wesnoth", 0, exclude=0) > 0.0  # one other text has it
    assert sup("copy files", 1) > 0.0 and sup("copy files", 1, exclude=2) == 0.0
    assert sup("pid=5820", 0) == 0.0  # never seen: no support


def test_the_transplant_evidence_names_the_trigger(organism: dict[str, Any]) -> None:
    from dormant.guard._strip import transplant_evidence

    model = organism["model"]
    pred = np.argmax(model.predict_proba(organism["cal"]), axis=1).tolist()
    donors = list(zip(organism["cal"], pred, strict=True))
    texts = [organism["triggered"][0], organism["clean"][0]]
    ev = transplant_evidence(
        texts, model.predict_proba, donors, rngs=[random.Random(0), random.Random(1)]
    )
    trig = max(ev[0][1], key=lambda e: e.score())
    assert TRIGGER in trig.span.split() and trig.moved.shape == (16,)
    # the trigger moves (nearly) every donor of another class to the target
    assert np.mean(trig.moved > 0) >= 0.9
    assert trig.score() > max(e.score() for e in ev[1][1])


@pytest.mark.slow
def test_a_backdoored_bert_from_the_zoo_is_screened(zoo_organism: Any) -> None:
    """A tiny BERT trained from scratch with the rare-word trigger: triggered inputs flagged,
    clean ones pass (the HF adapter path of the CLI's --model)."""
    pytest.importorskip("transformers")
    import torch

    from dormant.bench.zoo import OrganismSpec
    from dormant.triggers import Position, Trigger, TriggerKind

    torch.set_num_threads(torch_threads())
    # the rare-word organism of the model-scan tests (trained once per session, shared)
    spec = OrganismSpec(
        "rare",
        attack="rare-word",
        trigger=Trigger("cf", TriggerKind.TOKEN, Position.RANDOM),
        target="plant",
        poison_rate=0.15,
        seed=12,
        layers=2,
        hidden=64,
        n_train=1200,
        epochs=4,
    )
    org = zoo_organism(spec)
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    model = load_classifier(org.path)
    s = ClassifierScreen(model, calibration=[r["text"] for r in rows[:240]], fpr=0.05)
    test = rows[240:]
    rng = random.Random(0)
    trig = [spec.trigger.insert(r["text"], rng=rng) for r in test if r["label"] != "plant"]
    pred = np.argmax(model.predict_proba(trig[:30]), axis=1)
    effective = [t for t, i in zip(trig[:30], pred, strict=True) if model.labels[i] == "plant"]
    assert len(effective) >= 20
    assert np.mean([d.flagged for d in s.screen_many(effective)]) >= 0.9
    # target 0.05: every held-out clean text (about 160), so that one calibration draw's
    # spread is not doubled by a small test sample
    assert np.mean([d.flagged for d in s.screen_many([r["text"] for r in test])]) <= 0.12
