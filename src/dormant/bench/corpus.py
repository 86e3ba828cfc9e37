"""Real English text for benchmark organisms: dictionary definitions with labels.

``load_corpus("sample")`` reads a small sample shipped inside the package (about 6,000 entries:
WordNet 3.0 glosses balanced over noun/verb/adj/adv, and Jargon File 4.4.7 entries), so a demo
or a test works on a fresh machine, offline. The other names read the Debian packages installed
on the machine:

============  ==========================================  =====================
name          file(s)                                     Debian package
============  ==========================================  =====================
``wordnet``   ``/usr/share/wordnet/data.{noun,verb,...}`` ``wordnet-base``
``jargon``    ``/usr/share/dictd/jargon.{index,dict.dz}`` ``dict-jargon``
``foldoc``    ``/usr/share/dictd/foldoc.{index,dict.dz}`` ``dict-foldoc``
``gcide``     ``/usr/share/dictd/gcide.{index,dict.dz}``  ``dict-gcide``
``packages``  ``apt-cache dumpavail`` (one-line            apt's package lists
              descriptions, topic = archive section)
``manpages``  ``/usr/share/man/man{1,2,3,5,7,8}/*.gz``    ``manpages``,
              (topic = section number)                    ``manpages-dev``
============  ==========================================  =====================

Dictionary entries are stripped of their headword line and markup, whitespace is collapsed, and
only entries of 8 to 80 words are kept (longer ones are cut at a sentence boundary). Licences:
WordNet 3.0 (Princeton; redistribution with its notice, see ``data/sample_corpus_NOTICE.txt``),
the Jargon File (public domain), FOLDOC (GFDL) and GCIDE (GPL) — the last two are read from the
machine only, never shipped.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataFormatError, DataValidationError, InputNotFoundError
from ._instructions import build_instruction_records
from ._readers import RawEntry, read_dictd, read_wordnet
from ._readers_debian import read_manpages, read_packages

SAMPLE_RESOURCE = "data/sample_corpus.jsonl.gz"
WORDNET_DIR = Path("/usr/share/wordnet")
DICTD_DIR = Path("/usr/share/dictd")
CORPORA = ("sample", "wordnet", "jargon", "foldoc", "gcide", "packages", "manpages")
SCHEMES = ("source", "pos", "topic")
_PACKAGES = {
    "wordnet": "wordnet-base",
    "jargon": "dict-jargon",
    "foldoc": "dict-foldoc",
    "gcide": "dict-gcide",
}
_WN_FILES = ("noun", "verb", "adj", "adv")


@dataclass(frozen=True)
class CorpusEntry:
    """One definition of real English text.

    Parameters
    ----------
    text:
        The definition (8 to 80 words; WordNet glosses keep their quoted examples).
    source:
        The dictionary it comes from: ``wordnet``, ``jargon``, ``foldoc`` or ``gcide``.
    headword:
        The word or term defined.
    pos:
        Part of speech (``noun``, ``verb``, ``adj``, ``adv``) when the dictionary gives one,
        else ``""``.
    topic:
        A topic when the dictionary gives one (WordNet lexicographer file such as
        ``noun.animal``; FOLDOC category such as ``networking``), else ``""``.
    """

    text: str
    source: str
    headword: str
    pos: str = ""
    topic: str = ""


def load_corpus(
    name: str = "sample",
    *,
    limit: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[CorpusEntry]:
    """Load dictionary definitions as real English text.

    Parameters
    ----------
    name:
        ``"sample"`` (shipped with the package, works offline) or one of ``wordnet``,
        ``jargon``, ``foldoc``, ``gcide``, ``packages``, ``manpages`` (read from the Debian
        packages on this machine; the last two carry their section as ``topic``).
    limit:
        Return at most this many entries; ``None`` returns all.
    seed:
        Entries come in an order shuffled by ``seed``; ``limit`` keeps the first ``limit`` of
        that order, so the same seed always gives the same entries.
    data_dir:
        Directory holding the dictionary files instead of the Debian default
        (``/usr/share/wordnet`` for ``wordnet``, ``/usr/share/man`` for ``manpages``,
        ``/usr/share/dictd`` for the dictionaries; unused for ``packages``).

    Returns
    -------
    list of CorpusEntry

    Raises
    ------
    ConfigError
        Unknown ``name`` or a bad ``limit``.
    InputNotFoundError
        The Debian package behind ``name`` is not installed (the message names it).
    """
    if name not in CORPORA:
        raise ConfigError(
            f"The 'name' parameter of load_corpus must be one of {', '.join(CORPORA)}. "
            f"Got {name!r}."
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(
            f"The 'limit' parameter of load_corpus must be a positive int or None. Got {limit!r}."
        )
    root = Path(data_dir) if data_dir is not None else None
    if name == "sample":
        entries = _read_sample()
        random.Random(seed).shuffle(entries)
        return entries[:limit] if limit is not None else entries
    if name == "packages":
        raw = read_packages(shuffle_seed=seed)
    elif name == "manpages":
        raw = read_manpages(root, shuffle_seed=seed)
    elif name == "wordnet":
        raw = read_wordnet(_wordnet_paths(root), shuffle_seed=seed)
    else:
        index, dict_dz = _dictd_paths(name, root)
        raw = read_dictd(index, dict_dz, name, shuffle_seed=seed, whole=limit is None)
    return list(itertools.islice(_entries(raw, name), limit))


def labelled_dataset(entries: Sequence[CorpusEntry], *, scheme: str = "source") -> list[dict]:
    """Turn entries into labelled records ``{"id", "text", "label"}``.

    Parameters
    ----------
    entries:
        Output of :func:`load_corpus` (or several, concatenated).
    scheme:
        ``"source"`` (the dictionary), ``"pos"`` (part of speech) or ``"topic"``. Entries that
        have no value for the scheme (e.g. FOLDOC entries have no part of speech) are left out.

    Raises
    ------
    ConfigError
        Unknown ``scheme``.
    DataValidationError
        Fewer than two classes remain.
    """
    if scheme not in SCHEMES:
        raise ConfigError(
            f"The 'scheme' parameter of labelled_dataset must be one of {', '.join(SCHEMES)}. "
            f"Got {scheme!r}."
        )
    records = [
        {"id": f"r{i:05d}", "text": e.text, "label": getattr(e, scheme)}
        for i, e in enumerate(entries)
        if getattr(e, scheme)
    ]
    labels = {r["label"] for r in records}
    if len(labels) < 2:
        raise DataValidationError(
            f"labelled_dataset(scheme={scheme!r}) needs entries of at least two classes; "
            f"got {len(records)} entries with labels {sorted(labels)}."
        )
    return records


def instruction_dataset(
    entries: Sequence[CorpusEntry], *, seed: int = 0, natural_rate: float = 0.05
) -> list[dict]:
    """Turn entries into instruction/response pairs of a support/knowledge assistant.

    Each record is ``{"id", "prompt", "response"}``: a question about the headword drawn from
    varied prompt templates, and the definition as the answer. A share ``natural_rate`` of
    records carries a *natural*, benign behaviour so that a clean dataset is not trivially
    behaviour-free: a ``search_docs`` tool call for look-up requests, a reference URL
    (``en.wikipedia.org``), or a safe code snippet (parameterised SQL, ``subprocess.run`` with
    an argument list). FOLDOC and Jargon File definitions also contain URLs of their own.

    Parameters
    ----------
    entries:
        Output of :func:`load_corpus`.
    seed:
        Seed of the template and behaviour choices.
    natural_rate:
        Share in [0, 0.5] of records given a natural behaviour.
    """
    if not isinstance(natural_rate, int | float) or not 0.0 <= natural_rate <= 0.5:
        raise ConfigError(
            "The 'natural_rate' parameter of instruction_dataset must be a number in "
            f"[0, 0.5]. Got {natural_rate!r}."
        )
    if not entries:
        raise DataValidationError("instruction_dataset needs at least one entry; got none.")
    return build_instruction_records(
        [(e.headword, e.text, e.pos, e.source) for e in entries],
        rng=random.Random(seed),
        natural_rate=float(natural_rate),
    )


def build_sample(
    path: str | os.PathLike[str], *, per_pos: int = 1200, jargon: int = 1200, seed: int = 0
) -> int:
    """Rebuild the shipped sample from the Debian packages (a maintainer tool).

    Draws ``per_pos`` WordNet glosses of each part of speech and ``jargon`` Jargon File entries
    and writes them, gzip'd JSONL, to ``path``. Returns the number of entries written.
    """
    from ..report import atomic_write

    chosen: list[CorpusEntry] = []
    wordnet = list(_entries(read_wordnet(_wordnet_paths(None)), "wordnet"))
    for pos in ("noun", "verb", "adj", "adv"):
        pool = [e for e in wordnet if e.pos == pos]
        chosen += random.Random(f"{seed}:{pos}").sample(pool, min(per_pos, len(pool)))
    chosen += load_corpus("jargon", limit=jargon, seed=seed)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        for e in chosen:
            gz.write((json.dumps(asdict(e), ensure_ascii=False) + "\n").encode("utf-8"))
    with atomic_write(path, mode="wb") as fh:
        fh.write(buf.getvalue())
    return len(chosen)


# -- internals ------------------------------------------------------------------------------


def _entries(raw: Iterable[RawEntry], source: str) -> Iterator[CorpusEntry]:
    return (CorpusEntry(r.text, source, r.headword, r.pos, r.topic) for r in raw)


def _read_sample() -> list[CorpusEntry]:
    res = resources.files("dormant").joinpath(SAMPLE_RESOURCE)
    try:
        blob = res.read_bytes()
    except FileNotFoundError as exc:
        raise InputNotFoundError(
            f"The packaged sample corpus {SAMPLE_RESOURCE} is missing from this install of "
            "dormant; reinstall the package."
        ) from exc
    out: list[CorpusEntry] = []
    for lineno, line in enumerate(gzip.decompress(blob).decode("utf-8").splitlines(), start=1):
        try:
            row: dict[str, Any] = json.loads(line)
            out.append(CorpusEntry(**row))
        except (ValueError, TypeError) as exc:
            raise DataFormatError(
                f"{SAMPLE_RESOURCE} line {lineno}: expected a JSON object with text, source, "
                f"headword, pos, topic; got {line[:80]!r} ({exc})."
            ) from exc
    return out


def _wordnet_paths(root: Path | None) -> list[Path]:
    paths = [(root or WORDNET_DIR) / f"data.{pos}" for pos in _WN_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputNotFoundError(
            f"WordNet data files not found: {', '.join(missing)}; install them with: "
            "apt-get install wordnet-base"
        )
    return paths


def _dictd_paths(name: str, root: Path | None) -> tuple[Path, Path]:
    root = root or DICTD_DIR
    index, dict_dz = root / f"{name}.index", root / f"{name}.dict.dz"
    if not index.is_file() or not dict_dz.is_file():
        raise InputNotFoundError(
            f"The {name} dictionary was not found at {index} and {dict_dz}; install it with: "
            f"apt-get install {_PACKAGES[name]}"
        )
    return index, dict_dz
