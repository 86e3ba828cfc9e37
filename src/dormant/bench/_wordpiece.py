"""A deterministic WordPiece vocabulary trainer for the zoo's tiny BERTs.

Why not the library's trainer: ``tokenizers.trainers.WordPieceTrainer`` assigns its ``##``
continuation pieces in Rust hash-map order and breaks merge ties by id, so the same texts give a
different vocabulary from one process to the next (huggingface/tokenizers#1794; a fix is proposed
in #2066, not released). A zoo organism trained on that vocabulary is a different model in every
fresh process, and tests and benchmarks built on organisms drift with it. This module trains the
vocabulary in pure Python with every order fixed; the result is loaded into the library's
``tokenizers.models.WordPiece(vocab=...)``, which encodes deterministically (greedy longest match
first), so only the training is replaced.

Method: WordPiece training (Schuster & Nakajima, "Japanese and Korean voice search", ICASSP
2012; as used for BERT, Devlin et al. 2019), in the form described by the Hugging Face course,
chapter 6, "WordPiece tokenization" (https://huggingface.co/learn/nlp-course/chapter6/6). Words
(pre-tokenized by the caller) are split into characters, every character after the first
carrying the ``##`` continuation prefix; the alphabet starts the vocabulary; then the pair of
adjacent symbols with the highest score is merged, again and again, until the vocabulary has
``vocab_size`` entries or no pair is left. The score is

- ``"wordpiece"`` (default): ``count(a, b) / (count(a) * count(b))``, the likelihood criterion
  of WordPiece — a pair whose parts seldom occur apart is merged first;
- ``"frequency"``: ``count(a, b)``, the BPE criterion (Sennrich et al., ACL 2016), which is what
  the ``tokenizers`` WordPiece trainer actually ranks by (it wraps its BPE trainer).

Ties are broken by the pair's text (``a``, then ``b``, in code-point order), never by an id or a
hash. Ids: the special tokens in the order given, then the alphabet in code-point order, then the
merged pieces in the order they were made. Pair and symbol counts are kept incrementally (only
the words holding the merged pair are recounted), with a lazy max-heap of scores, so a zoo corpus
of a few thousand short texts trains in seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from fractions import Fraction
from itertools import pairwise

from ..errors import ConfigError

PREFIX = "##"
CRITERIA = ("wordpiece", "frequency")


def _merge_text(a: str, b: str) -> str:
    return a + b[len(PREFIX) :]


def train_wordpiece_vocab(
    word_counts: Mapping[str, int],
    *,
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    criterion: str = "wordpiece",
) -> dict[str, int]:
    """Train a WordPiece vocabulary, the same for the same counts in every process.

    Parameters
    ----------
    word_counts
        How often each pre-tokenized (and normalised) word occurs in the corpus.
    vocab_size
        The largest vocabulary wanted, special tokens and alphabet included (the alphabet is
        always kept whole, so a corpus with a larger alphabet gives a larger vocabulary).
    special_tokens
        Tokens placed first, with ids ``0..len-1`` in the order given.
    criterion
        ``"wordpiece"`` (``count(ab) / (count(a) count(b))``) or ``"frequency"`` (``count(ab)``).

    Returns
    -------
    dict[str, int]
        Token to id, ids ``0..n-1`` in a fixed order (specials, alphabet, merges).

    Raises
    ------
    ConfigError
        On an unknown criterion, a ``vocab_size`` below 1, or a word count below 1.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    if vocab_size < 1:
        raise ConfigError(f"vocab_size must be at least 1, got {vocab_size}.")
    words = sorted(w for w in word_counts if w)
    bad = [w for w in words if int(word_counts[w]) < 1]
    if bad:
        raise ConfigError(f"word counts must be at least 1; {bad[0]!r} has {word_counts[bad[0]]}.")
    freq = [int(word_counts[w]) for w in words]
    splits = [[w[0], *(PREFIX + c for c in w[1:])] for w in words]

    vocab: dict[str, int] = {}
    for t in special_tokens:
        vocab.setdefault(t, len(vocab))
    for t in sorted({s for sp in splits for s in sp}):
        vocab.setdefault(t, len(vocab))

    sym: dict[str, int] = {}
    pair: dict[tuple[str, str], int] = {}
    where: dict[tuple[str, str], set[int]] = {}
    by_sym: dict[str, set[tuple[str, str]]] = {}
    likelihood = criterion == "wordpiece"

    def add(i: int, sign: int, delta: dict[tuple[str, str], int]) -> None:
        sp, f = splits[i], freq[i] * sign
        for s in sp:
            sym[s] = sym.get(s, 0) + f
        for p in pairwise(sp):
            pair[p] = pair.get(p, 0) + f
            delta[p] = delta.get(p, 0) + f
            if sign > 0:
                where.setdefault(p, set()).add(i)
                by_sym.setdefault(p[0], set()).add(p)
                by_sym.setdefault(p[1], set()).add(p)
            else:
                where[p].discard(i)

    def score(p: tuple[str, str]) -> Fraction | int:
        # exact, so that pairs of equal score are tied and ordered by their text, not by
        # float rounding
        c = pair[p]
        return Fraction(c, sym[p[0]] * sym[p[1]]) if likelihood else c

    heap: list[tuple[Fraction | int, str, str]] = []
    for i in range(len(splits)):
        add(i, 1, {})
    for p in sorted(pair):
        heap.append((-score(p), p[0], p[1]))
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        p = (a, b)
        if pair.get(p, 0) <= 0 or -neg != score(p):
            continue  # stale: the pair's current score was pushed when it changed
        new = _merge_text(a, b)
        vocab.setdefault(new, len(vocab))
        delta: dict[tuple[str, str], int] = {}
        for i in sorted(where[p]):
            add(i, -1, delta)
            sp, out, k = splits[i], [], 0
            while k < len(sp):
                if k + 1 < len(sp) and sp[k] == a and sp[k + 1] == b:
                    out.append(new)
                    k += 2
                else:
                    out.append(sp[k])
                    k += 1
            splits[i] = out
            add(i, 1, delta)
        touched = {q for q, d in delta.items() if d}
        if likelihood:
            # the counts of a, b and the new piece changed: every pair holding one has a new score
            for s in (a, b, new):
                touched |= by_sym.get(s, set())
        for q in sorted(touched):
            if pair.get(q, 0) > 0:
                heapq.heappush(heap, (-score(q), q[0], q[1]))
            else:
                pair.pop(q, None)
                where.pop(q, None)
                for s in q:
                    by_sym.get(s, set()).discard(q)
    return vocab
