"""Zoo organisms are bit-for-bit reproducible: the WordPiece vocabulary and the trained weights."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import ROOT

from dormant.bench._wordpiece import train_wordpiece_vocab
from dormant.bench.zoo import WORDNET_DIR
from dormant.errors import ConfigError

# the example of the Hugging Face course's WordPiece chapter
COURSE = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
SPECIALS = ["[PAD]", "[UNK]"]


def _merges(vocab: dict[str, int], n_alphabet: int) -> list[str]:
    return sorted(vocab, key=vocab.__getitem__)[n_alphabet:]


def test_vocab_ids_are_specials_then_sorted_alphabet_then_merges() -> None:
    vocab = train_wordpiece_vocab(COURSE, vocab_size=14, special_tokens=SPECIALS)
    ordered = sorted(vocab, key=vocab.__getitem__)
    alphabet = ["##g", "##n", "##s", "##u", "b", "h", "p"]
    assert ordered[:9] == SPECIALS + alphabet
    assert list(vocab.values()) == sorted(vocab.values()) == list(range(len(vocab)))
    assert len(vocab) == 14


def test_likelihood_score_merges_the_pair_whose_parts_seldom_occur_apart() -> None:
    # count(##g ##s) / (count(##g) count(##s)) = 5 / (20 * 5) beats every pair holding ##u
    # (1/36 each), as in the course; the tie among those is broken by the pair's text
    merges = _merges(train_wordpiece_vocab(COURSE, vocab_size=11, special_tokens=SPECIALS), 9)
    assert merges == ["##gs", "##ug"]


def test_frequency_score_merges_the_most_frequent_pair() -> None:
    vocab = train_wordpiece_vocab(
        COURSE, vocab_size=10, special_tokens=SPECIALS, criterion="frequency"
    )
    assert _merges(vocab, 9) == ["##ug"]  # 20 occurrences: hug 10, pug 5, hugs 5


def test_vocab_does_not_depend_on_the_order_the_words_come_in() -> None:
    words = {f"w{i % 37}x{i % 11}y": 1 + i % 5 for i in range(400)}
    backwards = dict(reversed(list(words.items())))
    for criterion in ("wordpiece", "frequency"):
        a = train_wordpiece_vocab(words, vocab_size=120, criterion=criterion)
        b = train_wordpiece_vocab(backwards, vocab_size=120, criterion=criterion)
        assert a == b
        assert list(a) == list(b)


def test_every_training_word_is_spelled_by_the_vocab_and_training_stops_when_done() -> None:
    vocab = train_wordpiece_vocab({"abc": 3, "abd": 2}, vocab_size=1000, criterion="frequency")
    # alphabet of 4 pieces; merges: ab (5), abc (3), abd (2); then no pair is left
    assert set(vocab) == {"a", "##b", "##c", "##d", "ab", "abc", "abd"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"vocab_size": 10, "criterion": "bpe"}, "criterion"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train_wordpiece_vocab(COURSE, **kwargs)


def test_a_word_count_below_one_is_named() -> None:
    with pytest.raises(ConfigError, match="'hug' has 0"):
        train_wordpiece_vocab({**COURSE, "hug": 0}, vocab_size=20)


BUILD = """
import hashlib, json, sys
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[2]))
from dormant.bench.zoo import OrganismSpec, attack_trigger, build_organism
spec = OrganismSpec(
    "det", attack="rare-word", trigger=attack_trigger("rare-word", 0), target="plant",
    poison_rate=0.1, n_train=400, epochs=1, layers=1, hidden=32, seed=3,
)
org = build_organism(spec, Path(sys.argv[1]))
vocab = json.loads((org.path / "tokenizer.json").read_text("utf-8"))["model"]["vocab"]
print(json.dumps({
    "vocab": hashlib.sha256(json.dumps(list(vocab.items())).encode()).hexdigest(),
    "weights": hashlib.sha256((org.path / "model.safetensors").read_bytes()).hexdigest(),
    "accuracy": org.clean_accuracy,
    "threads_after": torch.get_num_threads(),
}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").exists(), reason="WordNet not installed")
def test_an_organism_is_bit_for_bit_the_same_in_two_fresh_processes(tmp_path: Path) -> None:
    src = str(ROOT / "src")
    procs = []
    for k, (hash_seed, threads) in enumerate((("1", 1), ("2", 2))):
        env = {
            **os.environ,
            "PYTHONHASHSEED": hash_seed,
            "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", BUILD, str(tmp_path / f"zoo{k}"), str(threads)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    runs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        runs.append(json.loads(out.strip().splitlines()[-1]))
    first, second = runs
    # different hash seeds and caller thread counts: same vocabulary, same weights
    assert first["vocab"] == second["vocab"]
    assert first["weights"] == second["weights"]
    assert first["accuracy"] == second["accuracy"]
    # the caller's thread count is given back after training
    assert (first["threads_after"], second["threads_after"]) == (1, 2)
    files = [tmp_path / f"zoo{k}" / "det" / "tokenizer.json" for k in (0, 1)]
    assert hashlib.sha256(files[0].read_bytes()).digest() == (
        hashlib.sha256(files[1].read_bytes()).digest()
    )
