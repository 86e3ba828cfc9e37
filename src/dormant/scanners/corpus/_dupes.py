"""Near-duplicate clusters of passages (an attacker plants many copies of one injection).

MinHash signatures of word 3-shingles of the folded text with locality-sensitive hashing
(Broder 1997, "On the resemblance and containment of documents"; Leskovec, Rajaraman &
Ullman, *Mining of Massive Datasets*, ch. 3), from the maintained ``datasketch`` package
(``MinHash``, ``MinHashLSH``); candidate pairs are confirmed on their estimated Jaccard
similarity and joined into clusters with a union-find.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import require
from ._cooccur import word_tokens

NUM_PERM = 64


def _shingles(text: str) -> set[bytes]:
    toks = word_tokens(text)
    if len(toks) < 3:
        return {" ".join(toks).encode()} if toks else set()
    return {" ".join(toks[i : i + 3]).encode() for i in range(len(toks) - 2)}


def near_duplicate_clusters(
    texts: Sequence[str], *, threshold: float = 0.6, min_size: int = 2, seed: int = 0
) -> list[list[int]]:
    """Clusters (index lists, ``min_size`` or more) of passages with Jaccard >= ``threshold``."""
    ds: Any = require("datasketch", "corpus")
    lsh = ds.MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    sigs = []
    for i, t in enumerate(texts):
        m = ds.MinHash(num_perm=NUM_PERM, seed=seed)
        sh = _shingles(t)
        if sh:
            m.update_batch(list(sh))
            lsh.insert(str(i), m)
        sigs.append(m if sh else None)
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(sigs):
        if m is None:
            continue
        for key in lsh.query(m):
            j = int(key)
            if j != i and m.jaccard(sigs[j]) >= threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) >= min_size), key=lambda g: (-len(g), g[0]))
