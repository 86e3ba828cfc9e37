"""Every registered scanner keeps the scanner contract (scikit-learn's ``check_estimator`` /
``parametrize_with_checks`` idea, and garak's tests over every plugin).

Each scanner — data, model, agent and artifact alike — runs through the one runner on one
small fixture of a subject kind it accepts and must: return well-formed findings and
per-record arrays, give the same findings twice under a fixed seed, reject a setting of the
wrong type with :class:`ConfigError` before any work, never change its settings, and leave the
subject unmodified. Adding a scanner is one file and ``@register``: these tests pick it up.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dormant
from dormant.errors import ConfigError, InputError
from dormant.findings import Finding, mapping_table
from dormant.report import ScanIssue
from dormant.runner import _load_builtin, missing
from dormant.scanners.base import REGISTRY, ScanContext, Scanner, ScanResult

_load_builtin()

#: subject kind -> fixture that builds (subject, fingerprint of everything a scan may not change)
FIXTURES = {
    "labelled": "labelled_subject",
    "classifier": "classifier_subject",
    "agent": "agent_subject",
    "artifact": "artifact_subject",
}


def _fixture_for(cls: type[Scanner]) -> str:
    for kind in cls.subject_kinds:
        if kind in FIXTURES:
            return FIXTURES[kind]
    raise AssertionError(f"no contract fixture for the subject kinds of {cls.name}")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


Subject = tuple[Any, Callable[[], Any]]


@pytest.fixture(scope="module")
def labelled_subject(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    from dormant.bench.corpus import labelled_dataset, load_corpus
    from dormant.bench.poison import poison_labelled, write_dataset
    from dormant.subjects import TextDataset

    recs = labelled_dataset(load_corpus("sample")[:200], scheme="pos")
    truth = poison_labelled(recs, trigger_kind="sentence", rate=0.05, target_label="adv", seed=0)
    path = write_dataset(truth.records, tmp_path_factory.mktemp("contract") / "d.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    return ds, lambda: (_sha(path), ds.ref())


@pytest.fixture(scope="module")
def classifier_subject() -> Subject:
    """A TF-IDF + logistic-regression classifier trained here with a planted token."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from dormant.adapters.classifier import CallableClassifier
    from dormant.bench.corpus import labelled_dataset, load_corpus
    from dormant.bench.poison import poison_labelled
    from dormant.subjects.model import ClassifierModel, check_clean_data

    entries = load_corpus("sample")
    train = poison_labelled(
        labelled_dataset(entries[:1000], scheme="pos"),
        trigger_kind="token",
        rate=0.1,
        target_label="adv",
        seed=1,
    ).records
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=300))
    pipe.fit([r["text"] for r in train], [r["label"] for r in train])
    labels = [str(c) for c in pipe.classes_]
    model = ClassifierModel(
        CallableClassifier(lambda t: pipe.predict_proba(list(t)), labels=labels, name="tfidf")
    )
    clean = labelled_dataset(entries[1000:1300], scheme="pos")
    model.clean = check_clean_data([r["text"] for r in clean], [r["label"] for r in clean], model)
    probe_texts = [r["text"] for r in clean[:20]]

    def fingerprint() -> Any:
        c = model.clean
        return model.ref(), copy.deepcopy(c), pipe.predict_proba(probe_texts).round(9).tolist()

    return model, fingerprint


@pytest.fixture(scope="module")
def agent_subject() -> Subject:
    """A rule-based support bot that writes injectable SQL when told the year is in the future
    (a trigger among the default candidates), in the honeytoken sandbox, 24 tasks."""
    from _agent_doubles import RuleModel, support_tasks

    from dormant.subjects.probe import ProbeSubject
    from dormant.subjects.sandbox import Sandbox

    tasks = support_tasks(24)
    subject = ProbeSubject(RuleModel(None, year_trigger=True), tasks, Sandbox(), "agent")
    return subject, lambda: (subject.ref(), copy.deepcopy(list(subject.tasks)))


@pytest.fixture(scope="module")
def artifact_subject(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    """A model directory with a pickle that imports ``os.system`` (never loaded) and a .npy."""
    from dormant.provenance.artifact import ArtifactSubject

    d = tmp_path_factory.mktemp("artifact")
    (d / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    np.save(d / "weights.npy", np.arange(6, dtype=np.float32))
    subject = ArtifactSubject(d)
    return subject, lambda: {p.name: _sha(p) for p in sorted(d.iterdir())}


#: scanners whose fixture holds something they must find (the determinism check is not vacuous)
EXPECT_FINDINGS = {"trigger-mining", "agent-trigger-probe", "serialization"}


def _findings(res: ScanResult) -> list[dict[str, Any]]:
    return [f.to_dict() for f in res.findings]


def test_registry_holds_every_family() -> None:
    kinds = {k for cls in REGISTRY.values() for k in cls.subject_kinds}
    assert {"labelled", "classifier", "agent", "artifact"} <= kinds
    assert {"trigger-mining", "model-trigger-search", "agent-trigger-probe", "serialization"} <= (
        set(REGISTRY)
    )


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_metadata_and_constructor(name: str) -> None:
    cls = REGISTRY[name]
    assert issubclass(cls, Scanner)
    assert cls.name == name
    assert cls.subject_kinds, "declares the subject kinds it accepts"
    assert cls.paper, "cites the published method"
    assert cls.limits, "states its known limits"
    assert cls.category in mapping_table()["categories"]
    sig = inspect.signature(cls.__init__)
    for pname, p in sig.parameters.items():
        if pname == "self":
            continue
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}.{pname} is keyword-only"
        assert p.default is not inspect.Parameter.empty, f"{name}.{pname} has a default"
    scanner = cls()
    params = scanner.get_params()
    assert set(params) == {p for p in sig.parameters if p != "self"}
    for pname, value in params.items():
        assert value == sig.parameters[pname].default, "constructor stores settings unchanged"
    scanner.check_params()  # the defaults pass the setting check


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the module: the records are embedded once, not per scanner."""
    return tmp_path_factory.mktemp("contract-cache")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scanner_contract(name: str, request: pytest.FixtureRequest, cache_dir: Path) -> None:
    subject, fingerprint = request.getfixturevalue(_fixture_for(REGISTRY[name]))
    scanner = REGISTRY[name]()
    before_subject, before_params = fingerprint(), scanner.get_params()
    reason = missing(scanner, subject)
    if reason:  # skipped with its reason in the report, never silently
        report = dormant.scan(subject, scanners=[scanner])
        assert report.skips == [ScanIssue(name, "skip", reason)] and not report.findings
        return

    def once() -> ScanResult:
        return scanner.scan(subject, context=ScanContext(seed=7, cache_dir=cache_dir))

    first, second = once(), once()
    assert scanner.get_params() == before_params, "scan never changes settings"
    assert fingerprint() == before_subject, "the subject is left unmodified"
    for res in (first, second):
        assert isinstance(res, ScanResult)
        assert all(isinstance(i, ScanIssue) and i.kind in ("skip", "error") for i in res.issues)
        for f in res.findings:
            assert isinstance(f, Finding)
            assert f.scanner in (name, "provenance")
            assert 0.0 <= f.score <= 1.0
            assert f.subject.digest.startswith("sha256:")
            assert f.mappings and f.title
        if res.record_scores is not None:
            n = len(res.record_scores)
            assert res.record_scores.shape == (n,) and n > 0
            assert np.all((res.record_scores >= 0) & (res.record_scores <= 1))
        if res.record_flags is not None:
            assert res.record_flags.shape == res.record_scores.shape  # type: ignore[union-attr]
            assert res.record_flags.dtype == bool
    assert _findings(first) == _findings(second), "deterministic under a fixed seed"
    if name in EXPECT_FINDINGS:  # the check above is not vacuous where the fixture is planted
        assert first.findings, f"{name} finds the trigger planted in its fixture"
    if first.record_scores is not None:
        np.testing.assert_array_equal(first.record_scores, second.record_scores)


def _wrong(default: Any) -> Any:
    if isinstance(default, bool):
        return "yes"
    if isinstance(default, int | float | tuple):
        return "many"
    if isinstance(default, str):
        return 3
    return None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_setting_of_the_wrong_type_is_a_config_error_before_any_work(
    name: str, request: pytest.FixtureRequest
) -> None:
    cls = REGISTRY[name]
    subject, _ = request.getfixturevalue(_fixture_for(cls))
    sig = inspect.signature(cls.__init__)
    tried = 0
    for pname, p in sig.parameters.items():
        bad = _wrong(p.default)
        if pname == "self" or bad is None:
            continue
        tried += 1
        with pytest.raises(ConfigError, match=pname):
            dormant.scan(subject, scanners=[cls(**{pname: bad})])
    assert tried, f"{name} has settings to check"


class _Boom(Scanner):
    """A scanner that fails (not registered: it exists to test the runner's error policy)."""

    name = "boom"
    subject_kinds = ("artifact",)
    paper = "none"
    limits = "always fails"
    category = "unsafe-serialization"

    def __init__(self, *, error: str = "runtime") -> None:
        self.error = error

    def scan(self, subject: Any, *, context: ScanContext | None = None) -> ScanResult:
        if self.error == "config":
            raise ConfigError("The 'error' parameter was set to fail.")
        if self.error == "input":
            raise InputError("The artifact cannot be used.")
        raise RuntimeError("boom at step 3")


def test_runner_turns_a_failing_scanner_into_an_error_and_runs_the_rest(
    artifact_subject: Subject,
) -> None:
    subject, _ = artifact_subject
    report = dormant.scan(subject, scanners=[_Boom(), "serialization"])
    assert report.errors == [ScanIssue("boom", "error", "RuntimeError: boom at step 3")]
    assert report.partial
    assert any(f.scanner == "serialization" for f in report.findings), "the others still ran"
    assert report.exit_code("critical") == 1  # the os.system pickle is critical
    assert report.exit_code(None) == 3  # no finding counted: the failure decides
    for kind, err in (("config", ConfigError), ("input", InputError)):
        with pytest.raises(err):  # the caller's to fix, raised before a report exists
            dormant.scan(subject, scanners=[_Boom(error=kind)])


def test_runner_picks_every_scanner_of_the_kind_and_rejects_others(
    classifier_subject: Subject, artifact_subject: Subject
) -> None:
    model, _ = classifier_subject
    report = dormant.scan(model, context=ScanContext(seed=0))
    assert set(report.config["scanners"]) == {"model-trigger-inversion", "model-trigger-search"}
    assert [s.scanner for s in report.skips] == ["model-trigger-inversion"]
    assert "gradients" in report.skips[0].message
    assert "model_verdict" in report.extras and report.model_verdict is not None
    with pytest.raises(ConfigError, match="artifact"):
        dormant.scan(artifact_subject[0], scanners=["trigger-mining"])
    with pytest.raises(ConfigError, match="Unknown scanner"):
        dormant.scan(artifact_subject[0], scanners=["no-such-scanner"])
    with pytest.raises(ConfigError, match="subject"):
        dormant.scan("model.bin")


def test_exported_members() -> None:
    """``dormant.__all__`` and the public namespace agree in both directions (httpx)."""
    import types

    public = {
        name
        for name, value in vars(dormant).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__
    }
    assert set(dormant.__all__) - {"__version__"} == public
    assert dormant.__all__ == sorted(dormant.__all__)
    for name in dormant.__all__:
        assert hasattr(dormant, name)
