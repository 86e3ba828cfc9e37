"""Record ids hashed the same in every process, and the duplicates among them."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_id_hashes(ids: list[str]) -> np.ndarray:
    """64-bit BLAKE2b hashes of record ids (``uint64``), the same in every process and run.

    Python's ``hash()`` of a string is salted per process (PYTHONHASHSEED), so hashes made in
    different workers or machines could not be compared; BLAKE2b (RFC 7693) can.
    """
    digest = hashlib.blake2b
    raw = b"".join(
        [digest(i.encode("utf-8", "surrogatepass"), digest_size=8).digest() for i in ids]
    )
    return np.frombuffer(raw, dtype="<u8").copy() if raw else np.empty(0, dtype=np.uint64)


def find_duplicate_ids(hashes: list[np.ndarray]) -> np.ndarray:
    """Hashes that occur more than once among the per-batch id hash arrays."""
    if not hashes:
        return np.empty(0, dtype=np.uint64)
    allh = np.sort(np.concatenate(hashes))
    dup = allh[1:][allh[1:] == allh[:-1]]
    return np.unique(dup)
