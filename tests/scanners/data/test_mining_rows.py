"""Trigger mining's rows as machine integers: the same groups, counts and samples as sets gave."""

from __future__ import annotations

import random
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from dormant.scanners.data._mining_explain import group_candidates
from dormant.scanners.data._mining_features import Candidate, _merge_targets
from dormant.scanners.data._mining_rows import (
    OverlapIndex,
    RowCollector,
    count_in,
    member,
    sorted_rows,
)


def _groups_with_sets(cands: list[Candidate]) -> list[list[str]]:
    """The grouping as it was written, with a set per group and a dict from row to groups
    (its tie-break between equal overlaps is the order a Counter meets them over the set)."""
    pool = [c for c in cands if len(c.target_rows)]
    pool.sort(key=lambda c: (-(c.hits + 1) / (c.support + 2), c.q_value, -c.support))
    groups: list[tuple[set[int], list[Candidate]]] = []
    row_groups: dict[int, list[int]] = {}
    for c in pool:
        rows = set(int(r) for r in c.target_rows)
        overlap: Counter[int] = Counter()
        for r in rows:
            for gi in row_groups.get(r, ()):
                overlap[gi] += 1
        chosen = None
        for gi, inter in overlap.most_common():
            grows, members = groups[gi]
            if members[0].outcome != c.outcome:
                continue
            jac = inter / len(rows | grows)
            if jac >= 0.8 or inter / len(rows) >= 0.9 or (inter / len(grows) >= 0.9 and jac >= 0.5):
                chosen = gi
                break
        if chosen is None:
            groups.append((rows, [c]))
            for r in rows:
                row_groups.setdefault(r, []).append(len(groups) - 1)
        else:
            groups[chosen][1].append(c)
    return [sorted(c.feature for c in members) for _rows, members in groups]


def _candidates(seed: int, n: int = 5000, k: int = 120) -> list[Candidate]:
    """Candidates with nested, overlapping and disjoint row sets over two outcomes."""
    rng = random.Random(seed)
    bases = [sorted(rng.sample(range(n), rng.randint(5, 400))) for _ in range(15)]
    out = []
    for i in range(k):
        b = rng.randrange(len(bases))
        keep = rng.choice((0.5, 0.85, 0.95, 1.0))
        rows = sorted(
            {r for r in bases[b] if rng.random() < keep}
            | set(rng.sample(range(n), rng.randint(0, 8)))
        )
        if not rows:
            continue
        sup = len(rows) + rng.randint(0, 5)
        out.append(
            Candidate(
                feature=f"f{i}",
                outcome=("label:a", "label:b")[b % 2] if rng.random() < 0.9 else "label:c",
                support=sup,
                hits=len(rows),
                p_value=1e-6,
                q_value=rng.choice((1e-6, 1e-5, 1e-4)),
                rows=rows,
                target_rows=np.array(rows, dtype=np.int32),
            )
        )
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 6])  # 6: a tie that only the old order decides
def test_grouping_matches_the_set_based_grouping(seed: int) -> None:
    cands = _candidates(seed)
    got = [sorted(c.feature for c in g) for g in group_candidates(cands)]
    assert got == _groups_with_sets(cands)
    assert len(got) < len(cands)  # some candidates were merged, so the test means something


def test_context_bags_are_each_records_word_ids() -> None:
    from dormant.scanners.data._mining_context import _Bags

    bags = _Bags(np.array([2, 5, 9]), np.array([2, 2, 5]), np.array([7, 1, 3, 4, 0], np.int32))
    got = [b.tolist() for b in bags.bags([9, 2, 5])]
    assert got == [[3, 4, 0], [7, 1], []]


def test_overlap_counts_are_exact_intersections() -> None:
    rng = np.random.default_rng(0)
    index = OverlapIndex()
    sets = []
    for _ in range(70):  # enough groups for several merges of the sorted runs
        rows = np.unique(rng.integers(0, 3000, size=int(rng.integers(1, 300))))
        assert index.add(rows) == len(sets)
        sets.append(set(rows.tolist()))
    for _ in range(20):
        q = np.unique(rng.integers(0, 3000, size=200))
        want = [len(set(q.tolist()) & s) for s in sets]
        assert index.overlaps(q).tolist() == want
    assert index.overlaps(np.array([5000])).tolist() == [0] * len(sets)


def test_collected_rows_are_sorted_read_only_four_byte_arrays() -> None:
    held = RowCollector(2, 1000)
    for r in (3, 7, 9):
        held.add(0, r, target=r != 7)
    rows, target = held.rows(0), held.target_rows(0)
    assert rows.tolist() == [3, 7, 9] and target.tolist() == [3, 9]
    assert rows.dtype.itemsize == 4 and not rows.flags.writeable
    assert held.rows(1).tolist() == []
    with pytest.raises(ValueError):
        rows[0] = 1
    assert RowCollector(1, 2**31 + 5).rows(0).dtype.itemsize == 8


def test_sorted_rows_is_sorted_set_and_membership_is_exact() -> None:
    assert sorted_rows([5, 1, 5, 3]).tolist() == [1, 3, 5]
    arr = np.array([1, 4, 9], dtype=np.int32)
    assert sorted_rows(arr) is arr or np.shares_memory(sorted_rows(arr), arr)
    assert sorted_rows([]).tolist() == []
    assert member([0, 4, 10, 9], arr).tolist() == [False, True, False, True]
    assert count_in(np.array([4, 9, 11]), arr) == 2
    assert member([1], np.array([], dtype=np.int64)).tolist() == [False]


def test_grouping_holds_a_few_bytes_per_row() -> None:
    """100 overlapping candidates of 20,000 rows each: the index is integers, not sets."""
    rng = np.random.default_rng(1)
    cands = []
    for i in range(100):
        rows = np.unique(rng.integers(0, 400_000, size=20_000)).astype(np.int32)
        cands.append(Candidate(f"w{i}", "label:a", len(rows), len(rows), 1e-9, 1e-9, rows, rows))
    tracemalloc.start()
    try:
        groups = group_candidates(cands)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pairs = sum(len(c.target_rows) for c in cands)
    assert len(groups) == 100  # random sets barely overlap: one group each
    # Python sets and a dict of lists took ~100 bytes a (row, group) pair
    assert peak / pairs < 30


def test_merged_targets_use_row_arrays() -> None:
    from dormant.scanners.data._mining_features import MinedTrigger
    from dormant.triggers import Trigger, TriggerKind

    def mined(target: str, rows: list[int]) -> MinedTrigger:
        return MinedTrigger(
            trigger=Trigger("cf", TriggerKind.TOKEN),
            target=target,
            support=len(rows),
            hits=len(rows),
            purity=1.0,
            p_value=1e-9,
            q_value=1e-9,
            inconsistency=1.0,
            verdict="planted",
            score=0.9,
            rows=np.array(rows, dtype=np.int32),
            features=("cf",),
        )

    out = _merge_targets(
        [mined("tool:send_email", list(range(100))), mined("egress:x", list(range(5, 100)))]
    )
    assert len(out) == 1 and out[0].target == "tool:send_email" and out[0].also == ("egress:x",)
    apart = _merge_targets([mined("tool:a", list(range(100))), mined("egress:x", list(range(50)))])
    assert len(apart) == 2
