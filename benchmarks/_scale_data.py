"""Sharded labelled datasets of 10^5-10^7 records built from real English (benchmark helper).

Texts: the four Debian dictionaries (Jargon File, FOLDOC, GCIDE, WordNet; label = the source)
and Debian's one-line package descriptions (``apt-cache dumpavail``; label = ``pkg-<section>``
collapsed to the source ``packages`` so the label set stays small). The pool (~220k texts) is
cycled to reach the size asked for; each cycle prefixes nothing and changes nothing, so counts
scale exactly with the size. Ids are ``<cycle>-<i>`` and unique.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from dormant.bench.corpus import load_corpus

SOURCES = ("jargon", "foldoc", "gcide", "wordnet", "packages")


def pool(seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs of every source, shuffled by ``seed``."""
    out: list[tuple[str, str]] = []
    for s in SOURCES:
        out.extend((e.text, s) for e in load_corpus(s, seed=seed))
    random.Random(seed).shuffle(out)
    return out


def write_shards(root: Path, n: int, *, shard_size: int = 100_000, seed: int = 0) -> list[Path]:
    """Write ``n`` records as JSONL shards ``part-00000.jsonl`` ... under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    texts = pool(seed)
    paths: list[Path] = []
    for start in range(0, n, shard_size):
        paths.append(root / f"part-{len(paths):05d}.jsonl")
        with open(paths[-1], "w", encoding="utf-8") as fh:
            for i in range(start, min(start + shard_size, n)):
                text, label = texts[i % len(texts)]
                rec = {"id": f"{i // len(texts)}-{i % len(texts)}", "text": text, "label": label}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return paths
