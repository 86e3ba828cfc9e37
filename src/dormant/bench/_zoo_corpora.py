"""Labelled real-English tasks for the model zoo, one per corpus (see :mod:`dormant.bench.zoo`).

Three unlike corpora, each with labels a real classifier might predict:

- ``wordnet``: WordNet noun glosses by lexicographer file (animal / artifact / person / plant),
  the zoo's original task (:func:`load_glosses`);
- ``debian``: the one-line descriptions of the Debian packages known to apt, labelled by their
  archive section (games, science, sound, graphics, net, admin) — short, technical, with labels
  set by metadata rather than by the text; read from ``apt-cache dumpavail``;
- ``dictionary``: dictionary definitions labelled by the dictionary they come from (FOLDOC,
  GCIDE, the Jargon File; Debian ``dict-foldoc``, ``dict-gcide``, ``dict-jargon``), read with
  :func:`dormant.bench.corpus.load_corpus` — a style-and-register task, not a topic one;
- ``manpages``: the one-line descriptions of the manual pages installed here, labelled by
  their section (user commands, system calls, library functions, file formats, overviews,
  administration; Debian ``manpages``, ``manpages-dev``).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from ..errors import InputNotFoundError

#: Lexicographer file number -> label of the zoo's four-class task.
LEXNAMES = {"05": "animal", "06": "artifact", "18": "person", "20": "plant"}
WORDNET_DIR = Path("/usr/share/wordnet")


def load_glosses(
    *, per_label: int = 1500, seed: int = 0, wordnet_dir: Path | None = None
) -> list[tuple[str, str]]:
    """Real English examples ``(text, label)``: WordNet noun glosses, ``per_label`` per class.

    Raises :class:`~dormant.errors.InputNotFoundError` when the WordNet files are missing
    (``apt-get install wordnet-base``).
    """
    path = (wordnet_dir or WORDNET_DIR) / "data.noun"
    if not path.exists():
        raise InputNotFoundError(
            f"WordNet noun data not found at {path}; install it with "
            "'apt-get install wordnet-base' or pass wordnet_dir=."
        )
    by_label: dict[str, list[str]] = {v: [] for v in LEXNAMES.values()}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("  "):
                continue
            parts = line.split(" ", 3)
            label = LEXNAMES.get(parts[1]) if len(parts) > 2 else None
            if label is None or "| " not in line:
                continue
            gloss = line.split("| ", 1)[1].split('; "', 1)[0].strip().rstrip(";").strip()
            if 4 <= len(gloss.split()) <= 30:
                by_label[label].append(gloss)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for label, texts in sorted(by_label.items()):
        rng.shuffle(texts)
        out.extend((t, label) for t in texts[:per_label])
    rng.shuffle(out)
    return out


#: The labels each corpus can give a task (a spec's ``labels`` picks two or more of them).
CORPUS_LABELS: dict[str, tuple[str, ...]] = {
    "wordnet": ("animal", "artifact", "person", "plant"),
    "debian": ("admin", "games", "graphics", "net", "science", "sound"),
    "dictionary": ("foldoc", "gcide", "jargon"),
    "manpages": ("admin", "commands", "formats", "library", "overview", "syscalls"),
}
#: manual section -> label of the ``manpages`` task
MAN_SECTIONS = {
    "1": "commands",
    "2": "syscalls",
    "3": "library",
    "5": "formats",
    "7": "overview",
    "8": "admin",
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


def _manpages(labels: tuple[str, ...], per_label: int, seed: int) -> list[tuple[str, str]]:
    from .corpus import load_corpus

    by: dict[str, list[str]] = {lab: [] for lab in labels}
    for e in load_corpus("manpages", seed=seed):
        lab = MAN_SECTIONS.get(e.topic)
        if lab in by and len(by[lab]) < per_label and len(e.text.split()) >= MIN_WORDS:
            by[lab].append(" ".join(e.text.split()[:40]))
    return [(t, lab) for lab in labels for t in by[lab]]


def load_task(
    corpus: str, labels: tuple[str, ...], *, per_label: int, seed: int
) -> list[tuple[str, str]]:
    """``(text, label)`` pairs of ``corpus`` restricted to ``labels``, at most ``per_label``
    per label, shuffled by ``seed``."""
    if corpus == "wordnet":
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
    elif corpus == "manpages":
        data = _manpages(labels, per_label, seed)
    else:
        data = _dictionary(labels, per_label, seed)
    rng.shuffle(data)
    return data
