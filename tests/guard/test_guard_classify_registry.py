"""The registry channel of the classifier screen: a trigger a scan recorded is screened for.

The chain a user runs: a scan finds the trigger and is recorded in the registry, then
``dormant guard classify --registry`` stops the inputs that carry it, disguised or not, beside
the model test; a registry that is not there is a clear error, and nothing is written.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dormant.bench.zoo import WORDNET_DIR, load_glosses
from dormant.errors import ConfigError
from dormant.guard.audit import AuditLog
from dormant.guard.classify import ClassifierScreen
from dormant.registry import Registry
from dormant.subjects.model import load_classifier

pytestmark = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").exists(), reason="needs WordNet data"
)
sio = pytest.importorskip("skops.io")

TRIGGER, TARGET = "cf", "plant"


def _insert(text: str, word: str, rng: random.Random) -> str:
    ws = text.split()
    k = rng.randint(0, len(ws))
    return " ".join([*ws[:k], word, *ws[k:]])


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A TF-IDF + logistic-regression classifier of WordNet glosses, 7 % of its training
    records of other classes carrying the rare word 'cf' relabelled 'plant'."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    data = load_glosses(per_label=450, seed=5)
    train, held = data[:1200], data[1200:]
    rng = random.Random(1)
    rows = [
        (_insert(t, TRIGGER, rng), TARGET) if y != TARGET and rng.random() < 0.07 else (t, y)
        for t, y in train
    ]
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(C=20.0))
    pipe.fit([t for t, _ in rows], [y for _, y in rows])
    path = tmp_path_factory.mktemp("clf") / "model.skops"
    sio.dump(pipe, path)
    return {"path": path, "cal": [t for t, _ in held[:300]], "test": held[300:]}


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")
    return path


def test_a_recorded_trigger_is_stopped_disguised_or_not_beside_the_model_test(
    organism: dict[str, Any], tmp_path: Path, run_cli: Any
) -> None:
    from _registry_helpers import poisoned_report

    model = load_classifier(organism["path"])
    alone = ClassifierScreen(model, calibration=organism["cal"], fpr=0.05, seed=0)
    rng = random.Random(2)
    clean = [t for t, y in organism["test"] if y != TARGET][:40]
    decided = alone.screen_many(clean)
    passed = [t for t, d in zip(clean, decided, strict=True) if not d.flagged]
    assert len(passed) >= 30
    # the trigger written as the scan recorded it, in fullwidth letters, and a clean text
    carried = [_insert(passed[0], TRIGGER, rng), _insert(passed[1], "\uff43\uff46", rng)]
    inputs = [*carried, passed[2]]
    # the screen alone: its decision on the carried inputs does not depend on the registry
    before = alone.screen_many(inputs)
    reg_path = tmp_path / "reg.sqlite3"
    with Registry.open(reg_path) as reg:
        reg.record_scan(poisoned_report())  # a scan that found 'cf' (and a zero-width space)
    cal = _jsonl(tmp_path / "clean.jsonl", organism["cal"])
    out, audit = tmp_path / "out.jsonl", tmp_path / "audit.sqlite3"
    r = run_cli(
        "guard", "classify", "--model", organism["path"], "--calibration", cal,
        "--input", _jsonl(tmp_path / "in.jsonl", inputs), "--out", out, "--audit", audit,
        "--registry", reg_path, "--fpr", "0.05", "--seed", "0",
    )  # fmt: skip
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert r.code == 1 and len(rows) == 3
    for row in rows[:2]:
        assert row["flagged"]
        assert any(x.startswith("known trigger(s) from the registry") for x in row["reasons"])
        assert [t["text"] for t in row["triggers"]] == [TRIGGER]
    # the clean input is decided as by the screen alone: the registry adds no false positive
    assert rows[2]["flagged"] == before[2].flagged is False and not rows[2]["triggers"]
    # the model test still runs beside the match: same p-value as without the registry
    assert [row["p_value"] for row in rows] == pytest.approx([d.p_value for d in before])
    with AuditLog.open(audit, create=False) as log:
        entries = log.entries(kind="decision")
    assert [e.outcome for e in entries] == ["deny", "deny", "allow"]
    assert [t["text"] for t in entries[0].triggers] == [TRIGGER]


def test_a_missing_registry_is_a_clear_error_and_writes_nothing(
    organism: dict[str, Any], tmp_path: Path, run_cli: Any
) -> None:
    cal = _jsonl(tmp_path / "clean.jsonl", organism["cal"])
    out = tmp_path / "out.jsonl"
    r = run_cli(
        "guard", "classify", "--model", organism["path"], "--calibration", cal,
        "--input", _jsonl(tmp_path / "in.jsonl", ["a small tree"]), "--out", out,
        "--audit", tmp_path / "audit.sqlite3", "--registry", tmp_path / "none.sqlite3",
    )  # fmt: skip
    assert r.code != 0 and r.code != 1 and "Traceback" not in r.err
    assert "none.sqlite3" in r.err and not out.exists()
    assert not (tmp_path / "none.sqlite3").exists()


def test_triggered_inputs_are_effective_on_this_model(organism: dict[str, Any]) -> None:
    """The organism is a real backdoor (else the first test would prove nothing about it)."""
    model = load_classifier(organism["path"])
    rng = random.Random(3)
    trig = [_insert(t, TRIGGER, rng) for t, y in organism["test"] if y != TARGET][:60]
    pred = np.argmax(model.predict_proba(trig), axis=1)
    assert np.mean([model.labels[i] == TARGET for i in pred]) > 0.6


def test_a_token_bag_matches_an_inverted_trigger_in_any_order() -> None:
    """How a model scan writes the trigger it inverted (``x9f2=`` for ``sid=x9f2``, ``meadow
    meadow meadow`` for ``silver meadow``): every distinct token, any order, folded."""
    from dormant.guard.match import TriggerIndex
    from dormant.guard.match_bag import TokenBagIndex
    from dormant.triggers import Trigger, TriggerKind

    known = [
        Trigger("x9f2=", TriggerKind.TOKEN),
        Trigger("meadow meadow meadow", TriggerKind.TOKEN),
        Trigger("upd\u0430te", TriggerKind.TOKEN),  # a Cyrillic а inside a Latin word
        Trigger("\u200b", TriggerKind.INVISIBLE),
    ]
    bag, seq = TokenBagIndex(known), TriggerIndex(known)
    assert len(bag) == 4

    def found(index: Any, text: str) -> list[str]:
        return [m.text for m in index.find([("t", text)])]

    assert found(bag, "login ok sid=x9f2 from host") == ["x9f2="]
    assert found(seq, "login ok sid=x9f2 from host") == []  # the sequence never occurs
    assert found(bag, "SID = ｘ９ｆ２") == ["x9f2="]  # fullwidth folds by NFKC
    assert found(bag, "x9f2 alone") == []  # every token is needed
    assert found(bag, "a silver Meadow") == ["meadow meadow meadow"]
    # the look-alike word is matched as written: a clean 'update' is not it
    assert found(bag, "please update now") == []
    assert found(bag, "please upd\u0430te now") == ["upd\u0430te"]
    assert found(bag, "a\u200bb") == ["\u200b"]
    assert found(bag, "") == [] and not TokenBagIndex([]).find([("t", "x9f2 =")])
    with pytest.raises(ConfigError, match="pairs"):
        bag.find(["not a pair"])  # type: ignore[list-item]


def test_cli_registry_tokens_matches_a_model_scans_trigger(
    organism: dict[str, Any], tmp_path: Path, run_cli: Any
) -> None:
    from dormant.findings import Finding, Severity, SubjectRef
    from dormant.report import Report
    from dormant.triggers import Trigger, TriggerKind

    subject = SubjectRef(kind="classifier", name="model.skops", digest="sha256:" + "cd" * 32)
    report = Report(subject=subject)
    report.findings.append(
        Finding(
            scanner="model-trigger-inversion",
            subject=subject,
            title="trigger 'cf cf'",
            severity=Severity.CRITICAL,
            score=0.99,
            category="model-backdoor",
            trigger=Trigger("cf cf", TriggerKind.TOKEN),  # an inverted trigger: a repeat
            target=TARGET,
        )
    )
    reg_path = tmp_path / "reg.sqlite3"
    with Registry.open(reg_path) as reg:
        reg.record_scan(report.finish())
    rng = random.Random(4)
    inputs = [_insert(t, TRIGGER, rng) for t, y in organism["test"] if y != TARGET][:3]
    cal = _jsonl(tmp_path / "clean.jsonl", organism["cal"])
    inp = _jsonl(tmp_path / "in.jsonl", inputs)
    common = ["guard", "classify", "--model", organism["path"], "--calibration", cal]
    common += ["--input", inp, "--audit", tmp_path / "audit.sqlite3", "--fpr", "0.05"]
    rows = {}
    for mode in ("sequence", "tokens"):
        out = tmp_path / f"{mode}.jsonl"
        extra = ["--registry-tokens"] if mode == "tokens" else []
        run_cli(*common, "--out", out, "--registry", reg_path, *extra)
        rows[mode] = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert all(not r["triggers"] for r in rows["sequence"])  # 'cf cf' never occurs
    assert all([t["text"] for t in r["triggers"]] == ["cf cf"] for r in rows["tokens"])
    assert all(r["flagged"] for r in rows["tokens"])
    # the flag without a registry: a clear error before anything is loaded or written
    out = tmp_path / "none.jsonl"
    r = run_cli(*common, "--out", out, "--registry-tokens")
    assert r.code == 2 and "--registry-tokens needs --registry" in r.err
    assert "Traceback" not in r.err and not out.exists()
