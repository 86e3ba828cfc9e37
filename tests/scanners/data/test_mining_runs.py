"""Bounded merges and probes of sorted runs: the same arrays and counts as the simple version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dormant.scanners.data._mining_rows import OverlapIndex, RowCollector
from dormant.scanners.data._mining_runs import merge_runs, probe_counts
from dormant.scanners.data._scan_work import ScanWork


def _simple_merge(r1, g1, r2, g2):  # type: ignore[no-untyped-def]
    r, g = np.concatenate([r1, r2]), np.concatenate([g1, g2])
    order = np.argsort(r, kind="stable")
    return r[order], g[order]


def _run(rng: np.random.Generator, n: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.sort(rng.integers(0, hi, size=n)).astype(np.int32)  # repeats: rows of many groups
    return r, rng.integers(0, 50, size=n).astype(np.int32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("piece", [1, 3, 64])
def test_piecewise_merge_equals_concatenate_and_stable_argsort(seed: int, piece: int) -> None:
    rng = np.random.default_rng(seed)
    for n1, n2, hi in ((0, 5, 10), (7, 0, 10), (300, 200, 40), (500, 90, 5000), (1, 400, 3)):
        r1, g1 = _run(rng, n1, hi)
        r2, g2 = _run(rng, n2, hi)
        want_r, want_g = _simple_merge(r1, g1, r2, g2)
        got_r, got_g = merge_runs(r1, g1, r2, g2, piece=piece)
        assert got_r.tolist() == want_r.tolist()
        assert got_g.tolist() == want_g.tolist()  # ties keep the first run's entries first
        assert got_r.dtype == want_r.dtype and not got_r.flags.writeable


def test_merge_into_files_of_the_working_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    r1, g1 = _run(rng, 3000, 2000)
    r2, g2 = _run(rng, 2500, 2000)
    work = ScanWork(tmp_path / "work")
    got_r, got_g = merge_runs(r1, g1, r2, g2, work=work, piece=100, spill=10)
    want_r, want_g = _simple_merge(r1, g1, r2, g2)
    assert isinstance(got_r, np.memmap) and not got_r.flags.writeable
    assert np.array_equal(got_r, want_r) and np.array_equal(got_g, want_g)


@pytest.mark.parametrize("piece", [1, 7, 1 << 16])
def test_piecewise_probe_counts_every_group_exactly(piece: int) -> None:
    rng = np.random.default_rng(4)
    r, g = _run(rng, 4000, 1500)
    q = np.unique(rng.integers(0, 1600, size=700))
    counts = np.zeros(50, dtype=np.int64)
    probe_counts(r, g, q, counts, piece=piece)
    inq = np.isin(r, q)
    assert counts.tolist() == np.bincount(g[inq], minlength=50).tolist()


def test_index_on_disk_gives_the_in_memory_counts(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dormant.scanners.data import _mining_runs

    monkeypatch.setattr(_mining_runs, "SPILL_PAIRS", 50)
    rng = np.random.default_rng(2)
    work = ScanWork(tmp_path / "work")
    mem, disk = OverlapIndex(), OverlapIndex(work=work)
    for _ in range(80):
        rows = np.unique(rng.integers(0, 4000, size=int(rng.integers(1, 400)))).astype(np.int32)
        assert mem.add(rows) == disk.add(rows)
    for _ in range(15):
        q = np.unique(rng.integers(0, 4000, size=int(rng.integers(1, 900))))
        assert disk.overlaps(q).tolist() == mem.overlaps(q).tolist()
    files = list((tmp_path / "work" / "arrays").glob("overlap-run-*.npy"))
    assert 0 < len(files) <= 2 * len(disk._runs)  # merged-away runs leave no file behind


@pytest.mark.parametrize("budget", [1, 5, 10_000])
def test_spilled_rows_equal_the_rows_held_in_memory(
    tmp_path: Path,
    monkeypatch,
    budget: int,  # type: ignore[no-untyped-def]
) -> None:
    from dormant.scanners.data import _mining_rows

    monkeypatch.setattr(_mining_rows, "SPILL_ENTRIES", budget)
    rng = np.random.default_rng(budget)
    work = ScanWork(tmp_path / "work")
    mem, disk = RowCollector(6, 3000), RowCollector(6, 3000, work=work)
    for row in range(3000):
        for i in np.flatnonzero(rng.random(6) < (0.02, 0.3, 0.0, 0.9, 0.001, 0.5)).tolist():
            hit = bool(rng.random() < 0.7)
            mem.add(i, row, hit)
            disk.add(i, row, hit)
        if row % 37 == 0:
            disk.spill_if_full()
    disk.to_disk(work)
    arrays = tmp_path / "work" / "arrays"
    assert not list(arrays.glob("*.spill"))  # the spill file is gone once joined
    for i in range(6):
        assert disk.rows(i).tolist() == mem.rows(i).tolist()
        assert disk.target_rows(i).tolist() == mem.target_rows(i).tolist()
        assert not disk.rows(i).flags.writeable


def test_content_tests_rows_per_batch_equal_the_dict_of_every_group() -> None:
    from dormant.scanners.data._mining_consistency import _Wanted

    rng = np.random.default_rng(5)
    picked = [np.unique(rng.integers(0, 2000, size=int(rng.integers(0, 300)))) for _ in range(40)]
    whole: dict[int, list[int]] = {}
    for gi, rows in enumerate(picked):
        for r in rows.tolist():
            whole.setdefault(r, []).append(gi)
    want = _Wanted(picked)
    got: dict[int, list[int]] = {}
    for start in range(0, 2100, 128):
        part = want.between(start, start + 128)
        assert all(start <= r < start + 128 for r in part)
        got.update(part)
    assert got == whole
    assert _Wanted([]).between(0, 10) == {}


def test_context_tests_excluded_rows_equal_the_intersections() -> None:
    from types import SimpleNamespace

    from dormant.scanners.data._mining_context import _excluded

    rng = np.random.default_rng(8)
    ref = np.unique(rng.integers(0, 5000, size=300))
    for _ in range(20):
        members = [
            SimpleNamespace(rows=np.unique(rng.integers(0, 5000, size=int(k))).astype(np.int32))
            for k in rng.integers(0, 900, size=int(rng.integers(1, 4)))
        ]
        want = set(np.concatenate([np.intersect1d(m.rows, ref) for m in members]).tolist())
        assert _excluded(members, ref) == want
