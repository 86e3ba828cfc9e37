"""Resuming trigger mining's counting pass: its running counts saved at block boundaries.

An interrupted data scan resumed with ``--resume`` (:mod:`._scan_work`) reads back its finished
embedding batches; this module does the same for the statistical pass. Every ``block_batches``
batches (a *block*, ``--checkpoint-records`` rounded to whole batches) the pass saves, in the
working directory's ``count/`` folder,

- ``state-<k>.npz`` — the running counter after block ``k`` (the integer-code tables of
  :class:`._mining_codes.CodeCounts`, or the string tables of :class:`._mining_features._Partial`
  once they took over), arrays only, read back with ``allow_pickle=False``;
- ``state.json`` — which block that is, how many records it covers, the settings the counts
  depend on, the vocabulary and per-outcome tables that are not arrays, and a **chained
  SHA-256** of every record read so far (id, text, label, response, length-prefixed): the hash
  after block ``k`` covers blocks ``0..k``. It is replaced atomically after the arrays are on
  disk, so a kill at any point leaves either the previous checkpoint or the new one.

A resumed pass reads the data from the start as before — the duplicate-id check needs every
id and the hash needs every record — but does not count the blocks the checkpoint covers: when
the chained hash at the end of block ``k`` equals the saved one, the saved counter is loaded and
counting goes on from the next batch. The running state is restored exactly (same tables, same
prune points), so the counts, and the report, are identical to an uninterrupted run's; a
changed record, other settings or another number of records before the checkpoint make the pass
count afresh, and the report says so. What a resume saves is the counting, not the reading
(about two thirds of the pass at 10^6 records, BENCHMARKS.md).

Why not a library: a checkpoint of a streaming aggregation is what Apache Flink's or Spark
Structured Streaming's state stores do (snapshots of operator state tied to a stream offset;
Carbone et al., "State management in Apache Flink", VLDB 2017), but neither runs in this
process; the state here is four numpy arrays and a few dicts, saved with ``numpy.savez`` and
``json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...subjects.dataset import Batch, TextDataset, stable_id_hashes
from ._mining_codes import CodeCounts
from ._mining_count import CountSettings, _Counter
from ._mining_features import _Partial
from ._mining_idcheck import IdHashLog

_VERSION = 1
_ARRAYS = ("keys", "counts", "total_keys", "total_counts")


class CountDataChanged(Exception):
    """The records before the saved checkpoint are not those it was made from."""


def _update(h: Any, batch: Batch) -> None:
    """Hash a batch's ids, texts, labels and responses (each column: its strings' lengths,
    then the strings end to end, so no two different batches hash alike)."""
    for col in (batch.ids, batch.texts, batch.labels, batch.responses):
        if col is None:
            h.update(b"\xff" * 8)
            continue
        h.update(np.fromiter(map(len, col), dtype=np.int64, count=len(col)).tobytes())
        h.update("".join(col).encode("utf-8", "surrogatepass"))


def _counters(d: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {o: dict(c) for o, c in d.items()}


def _state_of(counter: _Counter) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The running counter as JSON-able fields and arrays."""
    codes, part = counter.codes, counter.part
    if codes is not None:
        meta = {
            "kind": "codes",
            "labelled": codes.labelled,
            "max_n": codes.max_n,
            "words": codes.words,
            "outcome_index": codes.outcome_index,
            "n": codes.n,
            "prunes": codes.prunes,
            "outcome_n": dict(codes.outcome_n),
            "skel_per": _counters(codes.skel_per),
            "skel_total": dict(codes.skel_total),
        }
        return meta, {a: getattr(codes, a) for a in _ARRAYS}
    if part is not None:
        meta = {
            "kind": "partial",
            "n": part.n,
            "prunes": part.prunes,
            "total": dict(part.total),
            "per": _counters(part.per),
            "outcome_n": dict(part.outcome_n),
            "skel_per": _counters(part.skel_per),
            "skel_total": dict(part.skel_total),
        }
        return meta, {}
    return {"kind": "empty"}, {}


def _restore(counter: _Counter, meta: dict[str, Any], arrays: Any) -> None:
    """Put the saved state into a fresh ``counter`` (the inverse of :func:`_state_of`)."""

    def cnt(d: dict[str, int]) -> Counter[str]:
        return Counter({str(k): int(v) for k, v in d.items()})

    def per(d: dict[str, dict[str, int]]) -> dict[str, Counter[str]]:
        return {str(o): cnt(c) for o, c in d.items()}

    if meta["kind"] == "codes":
        codes = CodeCounts(labelled=bool(meta["labelled"]), max_n=int(meta["max_n"]))
        codes.words = [str(w) for w in meta["words"]]
        codes.vocab = {w: i for i, w in enumerate(codes.words)}
        if len(codes.vocab) != len(codes.words):
            raise ValueError("the saved vocabulary repeats a word")
        codes.outcome_index = {str(k): int(v) for k, v in meta["outcome_index"].items()}
        for a in _ARRAYS:
            arr = np.asarray(arrays[a])
            if arr.dtype != np.int64 or arr.ndim != 1:
                raise ValueError(f"the saved array {a} is not a 1-d int64 array")
            setattr(codes, a, arr)
        codes.n, codes.prunes = int(meta["n"]), int(meta["prunes"])
        codes.outcome_n = cnt(meta["outcome_n"])
        codes.skel_per, codes.skel_total = per(meta["skel_per"]), cnt(meta["skel_total"])
        counter.codes, counter.part = codes, None
    elif meta["kind"] == "partial":
        counter.part = _Partial(
            n=int(meta["n"]),
            prunes=int(meta["prunes"]),
            total=cnt(meta["total"]),
            per=per(meta["per"]),
            outcome_n=cnt(meta["outcome_n"]),
            skel_per=per(meta["skel_per"]),
            skel_total=cnt(meta["skel_total"]),
        )
        counter.codes = None
    elif meta["kind"] != "empty":
        raise ValueError(f"unknown saved counter kind {meta['kind']!r}")


@dataclass
class _Saved:
    block: int
    rows: int
    chain: str
    meta: dict[str, Any]
    arrays: Any


@dataclass
class CountCheckpoint:
    """The counting pass's checkpoints in ``directory`` (see the module docstring).

    Parameters
    ----------
    directory:
        The ``count/`` folder of the scan's working directory (created when missing).
    key:
        What the counts depend on besides the records (settings, fields); a checkpoint made
        with another key is not used.
    resume:
        Use a checkpoint found there; when ``False`` any earlier one is removed.
    block_batches:
        Batches per block (a checkpoint is saved after each full block).
    """

    directory: Path
    key: dict[str, Any]
    resume: bool = False
    block_batches: int = 32
    notes: list[str] = field(default_factory=list)
    reused_blocks: int = 0
    reused_rows: int = 0
    saved_blocks: int = 0

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.block_batches = max(int(self.block_batches), 1)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            self.discard()

    def discard(self) -> None:
        """Remove every checkpoint file."""
        for p in self.directory.glob("state*"):
            p.unlink(missing_ok=True)

    def load(self) -> _Saved | None:
        """The saved checkpoint when there is a usable one for this key, else ``None`` (and a
        note saying why, when one was there)."""
        path = self.directory / "state.json"
        if not path.is_file():
            self.notes.append("resume: no counting checkpoint found; counted from the start")
            return None
        try:
            d = json.loads(path.read_text("utf-8"))
            if d.get("key") != self.key:
                self.notes.append(
                    "resume: the counting checkpoint was made with other settings; counted "
                    "from the start"
                )
                return None
            arrays = dict(np.load(self.directory / str(d["arrays"]), allow_pickle=False))
            return _Saved(int(d["block"]), int(d["rows"]), str(d["chain"]), d["state"], arrays)
        except (OSError, ValueError, KeyError, TypeError):
            self.notes.append("resume: the counting checkpoint is unreadable; counted afresh")
            return None

    def save(self, block: int, rows: int, chain: str, counter: _Counter) -> None:
        """Save the running ``counter`` after ``block`` (``rows`` records, chained hash)."""
        meta, arrays = _state_of(counter)
        name = f"state-{block}.npz"
        with open(self.directory / name, "wb") as fh:
            savez: Any = np.savez  # arrays only (read back with allow_pickle=False)
            savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        doc = {"key": self.key, "block": block, "rows": rows, "chain": chain, "arrays": name}
        doc["state"] = meta
        tmp = self.directory / "state.json.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / "state.json")
        for old in self.directory.glob("state-*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self.saved_blocks += 1


def count_checkpointed(
    subject: TextDataset,
    *,
    batch_size: int,
    max_n: int,
    settings: CountSettings,
    checkpoint: CountCheckpoint,
    on_ids: Callable[[list[str]], None],
    on_batch: Callable[[int], None],
) -> _Partial:
    """The serial counting pass (:func:`._mining_count.count_serial`) saving a checkpoint after
    every block and, when resuming, counting only what the saved one does not cover.

    Raises :class:`CountDataChanged` when the records before the checkpoint differ from those
    it was made from (the caller counts afresh).
    """
    saved = checkpoint.load() if checkpoint.resume else None
    counter = _Counter(settings)
    chain = hashlib.sha256(json.dumps(checkpoint.key, sort_keys=True).encode())
    bb = checkpoint.block_batches
    rows = 0
    restored = saved is None
    for k, batch in enumerate(subject.batches(batch_size)):
        on_ids(batch.ids)
        _update(chain, batch)
        rows += len(batch)
        blk, end = k // bb, (k + 1) % bb == 0
        if not restored:
            assert saved is not None
            if blk > saved.block or (end and blk == saved.block):
                if not end or blk != saved.block or rows != saved.rows:
                    raise CountDataChanged
                if chain.hexdigest() != saved.chain:
                    raise CountDataChanged
                try:
                    _restore(counter, saved.meta, saved.arrays)
                except (ValueError, KeyError, TypeError) as exc:
                    raise CountDataChanged from exc
                restored = True
                checkpoint.reused_blocks, checkpoint.reused_rows = blk + 1, rows
            on_batch(len(batch))
            continue
        counter.add((batch.texts, batch.labels, batch.responses, max_n))
        on_batch(len(batch))
        if end:
            checkpoint.save(blk, rows, chain.hexdigest(), counter)
    if not restored:  # fewer records than the checkpoint covers
        raise CountDataChanged
    if checkpoint.reused_blocks:
        batches = -(-rows // batch_size)
        blocks = -(-batches // bb)
        checkpoint.notes.append(
            f"resume: {checkpoint.reused_blocks} of {blocks} counting blocks "
            f"({checkpoint.reused_rows:,} of {rows:,} records) were read back from the "
            "interrupted run"
        )
    return counter.result()


def resumable_count(
    subject: TextDataset,
    work: Any,
    *,
    batch_size: int,
    max_n: int,
    settings: CountSettings,
    id_hashes: IdHashLog,
    on_batch: Callable[[int], None],
) -> tuple[_Partial, IdHashLog]:
    """Trigger mining's serial counting pass with checkpoints in ``work``'s ``count/`` folder,
    resumed from one when ``work.resume``; counted afresh (and said so in ``work.notes``) when
    the records before the checkpoint changed. Returns the counts and the id-hash log."""
    every = max(int(getattr(work, "count_block", 1 << 18)) // batch_size, 1)
    key = {
        "version": _VERSION,
        "settings": [settings.labelled, settings.count_error, settings.max_table],
        "max_n": max_n,
        "batch_size": batch_size,
        "fields": [subject.input_field, subject.label_field, subject.response_field],
        "id_field": subject.id_field,
        "block_batches": every,
    }
    check = CountCheckpoint(
        Path(work.directory) / "count",
        key,
        resume=bool(work.resume),
        block_batches=every,
    )

    def run(log: IdHashLog) -> _Partial:
        return count_checkpointed(
            subject,
            batch_size=batch_size,
            max_n=max_n,
            settings=settings,
            checkpoint=check,
            on_ids=lambda ids: log.append(stable_id_hashes(ids)),
            on_batch=on_batch,
        )

    try:
        acc = run(id_hashes)
    except CountDataChanged:
        id_hashes.close()
        id_hashes = IdHashLog()
        check.notes.append(
            "resume: the records before the counting checkpoint changed; counted afresh"
        )
        check.resume = False
        check.discard()
        check.reused_blocks = check.reused_rows = 0
        try:
            acc = run(id_hashes)
        except BaseException:
            id_hashes.close()
            raise
    work.notes.extend(check.notes)
    return acc, id_hashes
