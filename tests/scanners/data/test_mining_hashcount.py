"""The clean-label test's text counts in bounded memory: the same answers when spilled."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dormant.scanners.data._mining_hashcount import CAP, HashCounts


def _adds(seed: int) -> list[tuple[str, np.ndarray]]:
    """Batches of hashes under two outcomes, with repeats inside and across batches."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2**64, size=400, dtype=np.uint64)
    pool[:3] = [0, 2**64 - 1, 2**56]  # the ends of the hash range and of a bucket
    return [(("label:a", "label:b")[k % 2], rng.choice(pool, size=90)) for k in range(12)]


@pytest.mark.parametrize("memory", [7, 150, 10**9])
def test_spilled_counts_equal_one_counter(memory: int) -> None:
    adds = _adds(0)
    want: Counter[tuple[int, str]] = Counter()
    for outcome, hashes in adds:
        for h in hashes.tolist():
            want[(h, outcome)] += 1
    counts = HashCounts(memory_hashes=memory)
    for outcome, hashes in adds:
        counts.add(outcome, hashes.copy())
    counts.finish()
    spilled = counts._dir
    assert (counts.spills_ > 0) == (memory < 400)
    query = np.concatenate([adds[0][1], np.array([12345, 2**63], dtype=np.uint64)])
    for outcome in ("label:a", "label:b", "label:never"):
        got = counts.counts(outcome, query).tolist()
        assert got == [min(want[(h, outcome)], CAP) for h in query.tolist()]
    assert counts.counts("label:a", np.empty(0, np.uint64)).tolist() == []
    counts.close()
    if spilled is not None:
        assert not spilled.exists()  # the bucket files are removed
