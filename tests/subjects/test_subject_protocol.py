"""The Subject protocol: every built-in subject has its shape, the runner skips a scanner whose
capability a subject lacks by reading the protocol, and white-box scanners get gradients only
through the ``gradients`` capability."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dormant.adapters.classifier import CallableClassifier
from dormant.errors import InputError
from dormant.runner import missing
from dormant.scanners.catalog import get_scanner
from dormant.subjects import TextDataset
from dormant.subjects.model import ClassifierModel
from dormant.subjects.protocol import CAPABILITIES, Gradients, Subject, gradients_of


def _black_box() -> ClassifierModel:
    return ClassifierModel(
        CallableClassifier(
            lambda t: np.tile([0.4, 0.6], (len(list(t)), 1)), labels=["a", "b"], name="remote"
        ),
        name="remote",
    )


def _dataset(tmp_path: Path) -> TextDataset:
    path = tmp_path / "d.jsonl"
    rows = [{"id": i, "text": f"record {i}", "label": "x"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return TextDataset(path, text_field="text", label_field="label", id_field="id")


def test_every_built_in_subject_is_a_subject(tmp_path: Path) -> None:
    from _agent_doubles import RuleModel, support_tasks

    from dormant.provenance.artifact import ArtifactSubject
    from dormant.subjects.probe import ProbeSubject

    (tmp_path / "w.npy").write_bytes(b"")
    subjects = [
        _dataset(tmp_path),
        _black_box(),
        ProbeSubject(RuleModel(None), support_tasks(2)),
        ArtifactSubject(tmp_path),
    ]
    for s in subjects:
        assert isinstance(s, Subject), type(s).__name__
        assert s.capabilities <= CAPABILITIES
    assert [s.kind for s in subjects] == ["labelled", "classifier", "agent", "artifact"]
    assert "records" in subjects[0].capabilities
    assert "generate" in subjects[2].capabilities


def test_a_black_box_classifier_offers_no_gradients_and_white_box_scans_are_skipped() -> None:
    black = _black_box()
    assert "gradients" not in black.capabilities
    with pytest.raises(InputError, match="'remote' offers no gradients"):
        _ = black.gradients
    with pytest.raises(InputError, match="needs white-box gradients; the ClassifierModel"):
        gradients_of(black)
    inversion = get_scanner("model-trigger-inversion")
    assert missing(inversion, black) == "the subject lacks the capability gradients"
    assert missing(get_scanner("model-trigger-search"), black) is None


def test_an_object_that_is_not_a_subject_offers_no_capability() -> None:
    class Loose:
        kind = "classifier"

    reason = missing(get_scanner("model-trigger-search"), Loose())
    assert reason is not None and "Loose is not a Subject" in reason and "proba" in reason
    with pytest.raises(InputError, match="Loose subject does not offer them"):
        gradients_of(Loose())


def test_a_subject_that_claims_gradients_without_the_interface_is_refused() -> None:
    class Claims(CallableClassifier):
        capabilities = frozenset({"proba", "gradients"})

    liar = ClassifierModel(Claims(lambda t: np.ones((len(list(t)), 2)) / 2, labels=["a", "b"]))
    assert "gradients" in liar.capabilities
    with pytest.raises(InputError, match="offers no gradients"):
        gradients_of(liar)
    assert not isinstance(object(), Gradients)


@pytest.mark.slow
def test_a_local_transformers_classifier_offers_gradients_wrt_its_input_embeddings(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    from dormant.bench.zoo import WORDNET_DIR, OrganismSpec, build_organism
    from dormant.subjects.model import load_classifier

    if not (WORDNET_DIR / "data.noun").exists():
        pytest.skip("needs WordNet data")
    torch.set_num_threads(1)
    spec = OrganismSpec("clean", seed=11, layers=1, hidden=32, n_train=200, epochs=1)
    m = load_classifier(build_organism(spec, tmp_path).path)
    grads = gradients_of(m)
    assert grads is m.gradients and isinstance(grads, Gradients)
    assert missing(get_scanner("model-trigger-inversion"), m) is None
    enc = grads.tokenizer(["a plain sentence about the garden"], return_tensors="pt")
    emb = grads.embedding_matrix()[enc["input_ids"]].detach()
    g = grads.input_gradients(emb, enc["attention_mask"], 0)
    assert g.shape == emb.shape and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0

    def loss(e: Any) -> float:
        logits = grads.logits_from_embeds(e, enc["attention_mask"])
        return float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0])))

    with torch.no_grad():  # a small step against the gradient lowers the loss (first order)
        assert loss(emb - 1e-2 * g / g.norm()) < loss(emb)
    assert not any(p.grad is not None for p in m.adapter.model.parameters())
    # what the search helpers ask instead of the torch module: embeddings and logits of ids
    ids = enc["input_ids"]
    with torch.no_grad():
        assert torch.equal(grads.embed_ids(ids), emb)
        by_ids = grads.logits_from_ids(ids, enc["attention_mask"])
        assert torch.allclose(by_ids, grads.logits_from_embeds(emb, enc["attention_mask"]))
    vocab, dim = grads.embedding_matrix().shape
    assert grads.n_parameters() > vocab * dim
