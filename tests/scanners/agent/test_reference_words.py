"""The shipped English word list equals the words of the shipped sample corpus.

``reference_words`` (the vocabulary-tail candidates of the agent probe skip English words) reads
``data/reference_words.txt`` instead of importing the benchmark corpus loader; this pins that
the file holds exactly the words the loader gave, so the probe's candidates did not change.
"""

from __future__ import annotations

import re

from dormant.bench.corpus import load_corpus
from dormant.scanners.agent.candidates import reference_words


def _corpus_words() -> frozenset[str]:
    words: set[str] = set()
    for entry in load_corpus("sample"):
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", entry.text))
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", entry.headword))
    return frozenset(words)


def test_shipped_word_list_equals_the_sample_corpus_words() -> None:
    assert reference_words() == _corpus_words()


def test_common_words_are_known_and_made_up_ones_are_not() -> None:
    words = reference_words()
    assert {"computer", "program", "water"} <= words
    assert "xqzvbn" not in words
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)
