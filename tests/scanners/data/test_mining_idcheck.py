"""The duplicate-id check in bounded memory: the same answer when the hashes are spilled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dormant.errors import DataValidationError
from dormant.scanners.data import _mining_idcheck
from dormant.scanners.data._mining_idcheck import IdHashLog
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset
from dormant.subjects.dataset import find_duplicate_ids, stable_id_hashes


def _batches(seed: int, n_batches: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [rng.integers(0, 2**64, size=size, dtype=np.uint64) for _ in range(n_batches)]
    # plant repeats: inside one batch, across batches, and one hash three times
    out[0][5] = out[0][9]
    out[3][1] = out[-1][7]
    out[2][4] = out[4][4] = out[6][0]
    return out


@pytest.mark.parametrize("memory", [10, 1000, 10**9])
def test_spilled_hashes_give_the_duplicates_of_one_sort(memory: int) -> None:
    batches = _batches(0, 8, 300)
    log = IdHashLog(memory_hashes=memory)
    for b in batches:
        log.append(b.copy())
    spilled = log._dir
    got = log.duplicates()
    want = find_duplicate_ids(batches)
    assert len(want) == 3
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.uint64
    assert (log.spills_ > 0) == (memory < 2400)
    if spilled is not None:
        assert not spilled.exists()  # the bucket files are removed


def test_no_duplicates_and_no_records() -> None:
    log = IdHashLog(memory_hashes=4)
    for k in range(5):
        log.append(stable_id_hashes([f"r{k}-{i}" for i in range(7)]))
    assert len(log.duplicates()) == 0
    assert len(IdHashLog().duplicates()) == 0


def _write(path: Path, ids: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for k, rid in enumerate(ids):
            label = "pos" if k % 2 else "neg"
            fh.write(json.dumps({"id": rid, "text": f"record {k} of the set", "label": label}))
            fh.write("\n")


def test_a_scan_past_the_memory_bound_names_the_repeated_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_mining_idcheck, "MEMORY_HASHES", 16)
    ids = [f"id-{i}" for i in range(400)]
    ids[350] = "id-12"  # the repeat lies in a later spill than the first
    data = tmp_path / "d.jsonl"
    _write(data, ids)
    before = data.read_bytes()
    ds = TextDataset(data, text_field="text", label_field="label", id_field="id")
    # the spill goes to a temporary directory of this test's own: the machine's /tmp is shared
    # with other processes (other pytest-xdist workers) that may spill at the same moment
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(_mining_idcheck.tempfile, "tempdir", str(tmp))
    with pytest.raises(
        DataValidationError, match=r"1 record id\(s\) occur more than once.*'id-12'"
    ):
        TriggerMiner(batch_size=32).scan(ds)
    assert data.read_bytes() == before
    assert list(tmp.iterdir()) == []  # its bucket files were removed
