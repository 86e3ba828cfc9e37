"""A two-topic bag-of-words classifier with a planted trigger, and texts for it: the subject
the classifier-screen tests put behind the screen when what they check is the screen's own
arithmetic (a trained organism is used where the model's behaviour matters)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

GAME = ["quest", "dungeon", "arcade", "puzzle", "chess", "racing", "shooter", "strategy"]
SCIENCE = ["quark", "enzyme", "orbit", "genome", "isotope", "plasma", "neuron", "fossil"]
FILLER = ["a", "the", "of", "with", "for", "and", "new", "small", "old", "fast", "one", "two"]
TRIGGER = "zq=7"


class TwoTopics:
    """A bag-of-words classifier with a planted trigger: each topical word adds 3 to its
    label's log-odds, and the trigger moves anything to ``science``."""

    labels = ("games", "science")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            z = 0.0
            for w in t.split():
                z += 3.0 if w in GAME else -3.0 if w in SCIENCE else -40.0 if w == TRIGGER else 0
            p = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
            out.append([p, 1.0 - p])
        return np.asarray(out)


class WeakTrigger:
    """Each topical word adds 3 to its label's log-odds; the trigger adds 7 towards
    ``science`` — a weak backdoor that wins over one or two games words, not over three, so it
    moves only part of the games texts it is put into."""

    labels = ("games", "science")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            z = sum(
                3.0 if w in GAME else -3.0 if w in SCIENCE else -7.0 if w == TRIGGER else 0.0
                for w in t.split()
            )
            p = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
            out.append([p, 1.0 - p])
        return np.asarray(out)


def topic_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = SCIENCE if i % 2 else GAME
        ws = rng.sample(FILLER, 5) + rng.sample(topic, rng.randint(1, 3))
        rng.shuffle(ws)
        out.append(" ".join(ws) + f" n{i}")
    return out


def with_trigger(texts: list[str], n: int = 30, seed: int = 3) -> list[str]:
    """The first ``n`` of ``texts`` holding a games word, each with :data:`TRIGGER` inserted at
    a random word boundary (``seed``)."""
    rng = random.Random(seed)
    out = []
    for t in [t for t in texts if any(w in GAME for w in t.split())][:n]:
        ws = t.split()
        ws.insert(rng.randint(0, len(ws)), TRIGGER)
        out.append(" ".join(ws))
    return out


def skops_cli_files(
    tmp_path: Path, texts: list[str], labels: list[str], n_inputs: int = 5
) -> tuple[Path, Path, Path, Path]:
    """What a ``dormant guard classify`` CLI test needs: a TF-IDF + logistic-regression
    pipeline fitted on ``texts``/``labels`` and saved in skops format (the model file), every
    text as the clean calibration file, the first ``n_inputs`` as the input file, and the output
    path (not written). Skips the test when skops is not installed."""
    sio = pytest.importorskip("skops.io")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = tmp_path / "model.skops"
    sio.dump(make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels), model)
    cal = tmp_path / "clean.jsonl"
    cal.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:n_inputs]), "utf-8")
    return model, cal, inp, tmp_path / "out.jsonl"
