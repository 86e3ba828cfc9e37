"""Labelled real-English tasks for the model zoo, one per corpus (see :mod:`dormant.bench.zoo`).

Three unlike corpora, each with labels a real classifier might predict:

- ``wordnet``: WordNet noun glosses by lexicographer file (animal / artifact / person / plant),
  the zoo's original task (:func:`dormant.bench.zoo.load_glosses`);
- ``debian``: the one-line descriptions of the Debian packages known to apt, labelled by their
  archive section (games, science, sound, graphics, net, admin) — short, technical, with labels
  set by metadata rather than by the text; read from ``apt-cache dumpavail``;
- ``dictionary``: dictionary definitions labelled by the dictionary they come from (FOLDOC,
  GCIDE, the Jargon File; Debian ``dict-foldoc``, ``dict-gcide``, ``dict-jargon``), read with
  :func:`dormant.bench.corpus.load_corpus` — a style-and-register task, not a topic one.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from functools import lru_cache

from ..errors import InputNotFoundError

#: The labels each corpus can give a task (a spec's ``labels`` picks two or more of them).
CORPUS_LABELS: dict[str, tuple[str, ...]] = {
    "wordnet": ("animal", "artifact", "person", "plant"),
    "debian": ("admin", "games", "graphics", "net", "science", "sound"),
    "dictionary": ("foldoc", "gcide", "jargon"),
}
#: one-line descriptions shorter than this many words are left out
MIN_WORDS = 4


@lru_cache(maxsize=1)
def _debian_descriptions() -> tuple[tuple[str, str], ...]:
    """``(description, section)`` of every package apt knows, deduplicated by text."""
    if shutil.which("apt-cache") is None:
        raise InputNotFoundError(
            "The 'debian' zoo corpus reads 'apt-cache dumpavail'; apt-cache is not on PATH."
        )
    out = subprocess.run(
        ["apt-cache", "dumpavail"], capture_output=True, text=True, check=False, timeout=300
    ).stdout
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    for block in out.split("\n\n"):
        desc = section = ""
        for line in block.splitlines():
            if line.startswith("Description:"):
                desc = line[12:].strip()
            elif line.startswith("Section:"):
                section = line[8:].strip().rsplit("/", 1)[-1]
        if desc and section and len(desc.split()) >= MIN_WORDS and desc.lower() not in seen:
            seen.add(desc.lower())
            rows.append((desc, section))
    if not rows:
        raise InputNotFoundError(
            "'apt-cache dumpavail' listed no package descriptions; run 'apt-get update' first."
        )
    return tuple(rows)


def _dictionary(labels: tuple[str, ...], per_label: int, seed: int) -> list[tuple[str, str]]:
    from .corpus import load_corpus

    out: list[tuple[str, str]] = []
    for name in labels:
        for e in load_corpus(name, limit=per_label, seed=seed):
            words = e.text.split()
            out.append((" ".join(words[:40]), name))
    return out


def load_task(
    corpus: str, labels: tuple[str, ...], *, per_label: int, seed: int
) -> list[tuple[str, str]]:
    """``(text, label)`` pairs of ``corpus`` restricted to ``labels``, at most ``per_label``
    per label, shuffled by ``seed``."""
    if corpus == "wordnet":
        from .zoo import load_glosses

        return [(t, y) for t, y in load_glosses(per_label=per_label, seed=seed) if y in labels]
    rng = random.Random(seed)
    if corpus == "debian":
        by: dict[str, list[str]] = {lab: [] for lab in labels}
        for text, section in _debian_descriptions():
            if section in by:
                by[section].append(text)
        data: list[tuple[str, str]] = []
        for lab in labels:
            texts = sorted(by[lab])
            rng.shuffle(texts)
            data.extend((t, lab) for t in texts[:per_label])
    else:
        data = _dictionary(labels, per_label, seed)
    rng.shuffle(data)
    return data
