"""Which clean-data tokens the model scan leaves out of a label's trigger search."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

from dormant.scanners.model.whitebox import natural_features

COMMON = ["the", "a", "of", "and", "is", "with", "in", "to", "that", "for", "its", "on"]
PLANT = ["flower", "leaf", "stem", "petal", "seed", "root", "shrub", "tree", "herb", "grass"]
ANIMAL = ["bird", "fish", "wing", "fur", "tail", "claw", "nest", "paw", "beak", "scale"]


class _Adapter:
    """What the rule reads of a model: its tokenizer, input length and vocabulary size."""

    max_length = 48

    def __init__(self, vocab: list[str]) -> None:
        ids = {w: i for i, w in enumerate(["[UNK]", *vocab])}
        tok = Tokenizer(WordLevel(ids, unk_token="[UNK]"))
        tok.pre_tokenizer = Whitespace()  # type: ignore[assignment]
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
        self._n = len(ids)

    def embedding_matrix(self) -> np.ndarray:
        return np.zeros((self._n, 4))


def _clean_set() -> tuple[list[str], list[str]]:
    """60 plant and 60 animal records of their own words; one plant record holds ``bb``
    (a rare token, as one dictionary record holds ``bb`` in the BBS sense)."""
    rng = random.Random(0)
    texts, labels = [], []
    for lab, words in (("plant", PLANT), ("animal", ANIMAL)):
        for _ in range(60):
            texts.append(" ".join(rng.choices(COMMON, k=6) + rng.choices(words, k=3)))
            labels.append(lab)
    texts[7] += " bb"
    return texts, labels


@pytest.fixture(scope="module")
def rule() -> tuple[_Adapter, list[set[int]]]:
    texts, labels = _clean_set()
    ad = _Adapter(COMMON + PLANT + ANIMAL + ["bb"])
    return ad, natural_features(ad, texts, labels, ["animal", "plant"])


def _id(ad: _Adapter, word: str) -> int:
    return int(ad.tokenizer.convert_tokens_to_ids(word))


def test_a_rare_token_in_one_clean_record_is_still_searched(
    rule: tuple[_Adapter, list[set[int]]],
) -> None:
    ad, nat = rule
    # ``bb``: once in 60 plant records, never in animal ones (a ratio of infinity, z < 1.96)
    assert _id(ad, "bb") not in nat[1]
    assert _id(ad, "bb") not in nat[0]


def test_a_frequent_class_word_is_still_a_natural_feature(
    rule: tuple[_Adapter, list[set[int]]],
) -> None:
    ad, nat = rule
    for w in ("flower", "leaf", "petal"):
        assert _id(ad, w) in nat[1]
        assert _id(ad, w) not in nat[0]
    for w in ("bird", "wing"):
        assert _id(ad, w) in nat[0]
    # words both classes use are nobody's natural feature
    for w in ("the", "of", "with"):
        assert _id(ad, w) not in nat[0] | nat[1]
