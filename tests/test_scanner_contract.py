"""Every registered scanner keeps the scanner contract (like parametrize_with_checks)."""

from __future__ import annotations

import contextlib
import inspect

import numpy as np
import pytest

from dormant.bench.corpus import labelled_dataset, load_corpus
from dormant.bench.poison import poison_labelled, write_dataset
from dormant.findings import Finding, mapping_table
from dormant.scanners.base import REGISTRY, Scanner, ScanResult
from dormant.scanners.catalog import _load_builtin
from dormant.subjects import TextDataset

_load_builtin()
for _mod in ("dormant.provenance.artifact",):
    with contextlib.suppress(ImportError):
        __import__(_mod)

DATA_SCANNERS = sorted(
    n for n, c in REGISTRY.items() if set(c.subject_kinds) & {"labelled", "instruction"}
)


def test_registry_is_not_empty():
    assert "trigger-mining" in REGISTRY


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_metadata_and_constructor(name):
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


@pytest.fixture(scope="module")
def small_poisoned(tmp_path_factory):
    recs = labelled_dataset(load_corpus("sample")[:1200], scheme="pos")
    truth = poison_labelled(recs, trigger_kind="sentence", rate=0.05, target_label="adv", seed=0)
    path = write_dataset(truth.records, tmp_path_factory.mktemp("contract") / "d.jsonl")
    return TextDataset(path, text_field="text", label_field="label", id_field="id"), truth


@pytest.mark.parametrize("name", DATA_SCANNERS)
def test_data_scanner_result_contract(name, small_poisoned):
    ds, truth = small_poisoned
    scanner = REGISTRY[name]()
    if scanner.missing_requirements():
        pytest.skip(scanner.missing_requirements())
    before = scanner.get_params()
    res = scanner.scan(ds)
    assert scanner.get_params() == before, "scan never changes settings"
    assert isinstance(res, ScanResult)
    n = len(truth.records)
    if res.record_scores is not None:
        assert res.record_scores.shape == (n,)
        assert np.all((res.record_scores >= 0) & (res.record_scores <= 1))
    if res.record_flags is not None:
        assert res.record_flags.shape == (n,) and res.record_flags.dtype == bool
    for f in res.findings:
        assert isinstance(f, Finding)
        assert f.scanner == name
        assert 0.0 <= f.score <= 1.0
        assert f.subject.digest.startswith("sha256:")
        assert f.mappings
