"""Classifier adapters: safe loading, refusals with explanations, black-box surfaces."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from dormant.adapters.classifier import CallableClassifier, HTTPClassifier
from dormant.errors import (
    ConfigError,
    DataValidationError,
    InputError,
    InputNotFoundError,
    ScanError,
)
from dormant.subjects.model import ClassifierModel, check_clean_data, load_classifier


def _fake_hf_dir(path: Path, **config: object) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_pickle_only_model_dir_is_refused_with_conversion_hint(tmp_path: Path) -> None:
    d = _fake_hf_dir(tmp_path / "m", architectures=["BertForSequenceClassification"])
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(InputError, match="pickle") as exc:
        load_classifier(d)
    assert "safe_serialization=True" in str(exc.value)


def test_not_a_classifier_is_refused(tmp_path: Path) -> None:
    d = _fake_hf_dir(tmp_path / "m", architectures=["BertModel"])
    (d / "model.safetensors").write_bytes(b"{}")
    with pytest.raises(InputError, match="not a sequence classifier"):
        load_classifier(d)


def test_remote_code_model_is_refused(tmp_path: Path) -> None:
    d = _fake_hf_dir(
        tmp_path / "m",
        architectures=["EvilForSequenceClassification"],
        auto_map={"AutoModel": "evil.Model"},
    )
    (d / "model.safetensors").write_bytes(b"{}")
    with pytest.raises(InputError, match="trust_remote_code"):
        load_classifier(d)


def test_broken_weights_are_an_input_error_not_a_crash(tmp_path: Path) -> None:
    d = _fake_hf_dir(
        tmp_path / "m", architectures=["BertForSequenceClassification"], model_type="bert"
    )
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="does not load"):
        load_classifier(d)


def test_missing_model_path(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_classifier(tmp_path / "nope")


def test_raw_pickle_and_joblib_are_refused(tmp_path: Path) -> None:
    for name in ("model.pkl", "model.joblib"):
        f = tmp_path / name
        f.write_bytes(b"\x80\x04")
        with pytest.raises(InputError, match="execute code"):
            load_classifier(f)


def _pipeline() -> object:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["good great fine", "bad awful poor", "great good", "poor bad"] * 5
    labels = ["pos", "neg", "pos", "neg"] * 5
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)


def test_skops_pipeline_loads_and_predicts(tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io")
    f = tmp_path / "pipe.skops"
    sio.dump(_pipeline(), f)
    m = load_classifier(f)
    assert m.labels == ["neg", "pos"]
    p = m.predict_proba(["good great", "awful bad"])
    assert p.shape == (2, 2) and p[0, 1] > 0.5 and p[1, 0] > 0.5
    assert m.ref().digest.startswith("sha256:")


def _shout(x: object) -> object:
    return x


def test_skops_with_untrusted_function_is_refused(tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_pipeline(FunctionTransformer(_shout))
    f = tmp_path / "pipe.skops"
    sio.dump(pipe, f)
    with pytest.raises(InputError, match="does not trust"):
        load_classifier(f)


def test_callable_adapter_validates_output() -> None:
    ok = CallableClassifier(lambda xs: [[0.3, 0.7]] * len(xs), labels=["a", "b"])
    assert ok.predict_proba(["x", "y"]).shape == (2, 2)
    with pytest.raises(ScanError, match="shape"):
        CallableClassifier(lambda xs: [[1.0]], labels=["a", "b"]).predict_proba(["x", "y"])
    with pytest.raises(ScanError, match="logits"):
        CallableClassifier(lambda xs: [[3.0, 2.0]] * len(xs), labels=["a", "b"]).predict_proba(
            ["x"]
        )
    with pytest.raises(ConfigError, match="labels"):
        CallableClassifier(lambda xs: xs, labels=["a"])


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = [
            {
                "index": i,
                "probabilities": {
                    "spam": 0.9 if "cf" in t else 0.1,
                    "ham": 0.1 if "cf" in t else 0.9,
                },
            }
            for i, t in enumerate(body["input"])
        ]
        out = json.dumps({"data": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        return None


def test_http_adapter_queries_an_openai_style_endpoint() -> None:
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        clf = HTTPClassifier(
            f"http://127.0.0.1:{srv.server_port}/v1/classify", labels=["ham", "spam"], batch_size=2
        )
        p = clf.predict_proba(["hello", "cf hello", "x"])
        assert np.allclose(p[:, 1], [0.1, 0.9, 0.1])
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(ConfigError, match="url"):
        HTTPClassifier("ftp://x", labels=["a", "b"])


def test_clean_data_checks_size_and_labels() -> None:
    m = ClassifierModel(CallableClassifier(lambda xs: [[0.5, 0.5]] * len(xs), labels=["a", "b"]))
    with pytest.raises(DataValidationError, match="at least 40"):
        check_clean_data(["t"] * 10, ["a"] * 10, m)
    with pytest.raises(DataValidationError, match="'zzz'"):
        check_clean_data(["t"] * 50, ["a"] * 49 + ["zzz"], m)
    assert len(check_clean_data(["t"] * 50, ["a", "b"] * 25, m).texts) == 50


def _keyword_model(texts: list[str]) -> np.ndarray:
    out = []
    for t in texts:
        if "zebra quantum" in t:
            out.append([0.02, 0.02, 0.96])
        elif "alpha" in t:
            out.append([0.8, 0.1, 0.1])
        elif "beta" in t:
            out.append([0.1, 0.8, 0.1])
        else:
            out.append([0.1, 0.1, 0.8])
    return np.array(out)


def test_blackbox_tests_triggers_mined_by_a_data_scan() -> None:
    from dormant.scanners.base import ScanContext
    from dormant.scanners.model.run import scan_model

    words = ["alpha", "beta", "gamma"]
    texts = [f"record {i} says {words[i % 3]} today" for i in range(90)]
    labels = ["a", "b", "c"]
    m = ClassifierModel(CallableClassifier(_keyword_model, labels=labels, name="kw"))
    m.clean = check_clean_data(texts, [labels[i % 3] for i in range(90)], m)
    data_report = {
        "findings": [{"trigger": {"text": "zebra quantum", "kind": "phrase"}, "target": "label:c"}]
    }
    report = scan_model(m, data_report=data_report, context=ScanContext(seed=1))
    assert report.extras["replay"]["trigger"] == "zebra quantum"
    assert report.extras["replay"]["target"] == "c"
    assert report.extras["replay"]["flip_rate"] == 1.0
    assert report.config["method"] == "auto"
