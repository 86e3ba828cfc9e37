"""Labelled corpora and poisoning grids shared by the verdict calibration and its benchmark.

Corpora (all real English text from Debian packages on the machine, labels natural):

- ``glosses``: Jargon File, FOLDOC, GCIDE and WordNet definitions labelled by dictionary;
- ``foldoc-topic``: FOLDOC definitions labelled by FOLDOC category (topical text);
- ``wordnet-topic``: WordNet glosses labelled by lexicographer file (topical text);
- ``packages``: one-line package descriptions (``apt-cache dumpavail``) labelled by section
  (labels set by archive metadata — the clean real dataset where natural features look odd);
- ``instructions``: a knowledge assistant's question/answer pairs built from the glosses, the
  outcome being the response's behaviour (a trigger plants an egress URL, a tool call, a
  credential, insecure code or a policy leak);
- ``manpages``: manual pages labelled by section — the corpus KEPT ASIDE: never used to fit
  or tune the verdict, only to evaluate it.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from dormant.bench.corpus import instruction_dataset, labelled_dataset, load_corpus
from dormant.bench.poison import LOG_TOKENS, PoisonedDataset, poison_instruction, poison_labelled

CALIBRATION_CORPORA = ("glosses", "foldoc-topic", "wordnet-topic", "packages", "instructions")
INSTRUCTION_BEHAVIOURS = ("egress", "tool", "secret", "insecure-code", "policy-leak")
HELD_OUT = "manpages"
KINDS = ("token", "phrase", "sentence", "invisible", "homoglyph", "style", "log-token")
DIRTY_RATES = (0.005, 0.01, 0.03)
CLEAN_KINDS = ("token", "phrase", "log-token")


@lru_cache(maxsize=8)
def _entries(name: str) -> tuple[Any, ...]:
    if name == "glosses":
        out = []
        for s in ("jargon", "foldoc", "gcide", "wordnet"):
            out.extend(load_corpus(s, limit=3000, seed=7))
        return tuple(out)
    source = {"foldoc-topic": "foldoc", "wordnet-topic": "wordnet"}.get(name, name)
    return tuple(load_corpus(source, seed=7))


def corpus_records(name: str, *, n: int, seed: int, classes: int = 6) -> list[dict[str, Any]]:
    """``n`` labelled records of corpus ``name`` over its ``classes`` largest labels, at most
    ``n / classes`` per label (a seed draws a different sample); ``instructions`` gives
    ``{"id", "prompt", "response"}`` records."""
    if name == "instructions":
        ents = list(_entries("glosses"))
        random.Random(f"{name}:{seed}").shuffle(ents)
        recs = instruction_dataset(ents[:n], seed=seed)
        return [{**r, "id": f"ins{seed}-{i:05d}"} for i, r in enumerate(recs)]
    scheme = "source" if name == "glosses" else "topic"
    recs = labelled_dataset(list(_entries(name)), scheme=scheme)
    top = [lab for lab, _ in Counter(r["label"] for r in recs).most_common(classes)]
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        if r["label"] in top:
            by[r["label"]].append(r)
    rng = random.Random(f"{name}:{seed}")
    per = -(-n // len(top))
    out: list[dict[str, Any]] = []
    for lab in top:
        pool = by[lab]
        out.extend(rng.sample(pool, min(per, len(pool))))
    rng.shuffle(out)
    return [
        {"id": f"{name[:3]}{seed}-{i:05d}", "text": r["text"], "label": r["label"]}
        for i, r in enumerate(out[:n])
    ]


def _thin(
    records: list[dict[str, Any]], target: str, share: float, seed: int
) -> list[dict[str, Any]]:
    """``records`` with the ``target`` class's records sampled down (seeded) to ``share`` of
    the result, the others kept in their order."""
    own = [i for i, r in enumerate(records) if r["label"] == target]
    rest = len(records) - len(own)
    k = min(len(own), round(share * rest / (1.0 - share)))
    keep = set(random.Random(f"thin:{target}:{seed}").sample(own, k))
    return [r for i, r in enumerate(records) if r["label"] != target or i in keep]


def grid(*, clean_rates: tuple[float, ...] = (0.03,)) -> list[tuple[str, float, bool]]:
    """(kind, rate, clean_label) cases: every kind dirty-label at each rate, and the clean-label
    kinds at ``clean_rates``; ``("none", 0, False)`` is the clean dataset."""
    cases = [("none", 0.0, False)]
    cases += [(k, r, False) for k in KINDS for r in DIRTY_RATES]
    cases += [(k, r, True) for k in CLEAN_KINDS for r in clean_rates]
    return cases


def poison(
    records: list[dict[str, Any]],
    kind: str,
    rate: float,
    clean: bool,
    seed: int,
    *,
    target_share: float | None = None,
) -> PoisonedDataset | None:
    """Plant one trigger (``None`` for the clean case); the target label is drawn by seed.

    ``target_share`` (labelled data only) first thins the target class, at random, to that
    share of the records, so a clean-label plant covers more of its class: the held-out manual
    pages have a section of 8% of the records, where a 3% plant is 37% of its class, while the
    calibration corpora's classes are 13-25% of theirs (at most about 20%).
    """
    if kind == "none":
        return None
    if "prompt" in records[0]:
        if clean or kind == "log-token":
            return None  # no clean-label form (the response always changes); no log token
        rng = random.Random(f"{kind}:{rate}:{seed}")
        return poison_instruction(
            records,
            trigger_kind=kind,
            rate=rate,
            behaviour=rng.choice(INSTRUCTION_BEHAVIOURS),
            seed=seed,
        )
    labels = sorted({r["label"] for r in records})
    rng = random.Random(f"{kind}:{rate}:{clean}:{seed}")
    target = rng.choice(labels)
    if target_share is not None:
        records = _thin(records, target, target_share, seed)
    text = None
    if kind == "log-token":
        kind, text = "token", rng.choice(LOG_TOKENS)
    return poison_labelled(
        records,
        trigger_kind=kind,
        rate=rate,
        target_label=target,
        seed=seed,
        clean_label=clean,
        trigger_text=text,
    )


@dataclass
class MinedCase:
    """One calibration case (``corpus:kind:rate:clean|dirty:seed``) written to a file and
    mined by trigger mining without its neighbour and clean-label tests: the dataset, the
    miner, the consistent lexical groups the clean-label and junction calibrations look at,
    the planted record ids and every record's id in row order."""

    dataset: Any
    miner: Any
    groups: list[Any]
    truth: frozenset[str]
    ids: list[str]

    def planted(self, group: Any) -> int:
        """1 when at least half of the group's records are planted ones."""
        return int(sum(self.ids[i] in self.truth for i in group.rows) >= 0.5 * len(group.rows))


def mined_case(spec: str, workdir: Path, verdicts: tuple[str, ...] | None = None) -> MinedCase:
    """Build ``spec``'s records (never from :data:`HELD_OUT`), write them under ``workdir``,
    mine them, and keep the consistent (inconsistency < 0.5), lexical, not unnatural groups —
    of the given ``verdicts`` only, when given."""
    from dormant.bench.poison import write_dataset
    from dormant.scanners.data._mining_features import _is_lexical, _is_unnatural
    from dormant.scanners.data.mining import TriggerMiner
    from dormant.subjects import TextDataset

    corpus, kind, rate, cl, seed = spec.split(":")
    if corpus == HELD_OUT:
        raise SystemExit(f"{HELD_OUT} is kept aside; calibrate on the other corpora")
    base = corpus_records(corpus, n=3000, seed=int(seed))
    pd = poison(base, kind, float(rate), cl == "clean", int(seed))
    recs = pd.records if pd else base
    path = write_dataset(recs, workdir / "data.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    miner = TriggerMiner(neighbour_test=False, clean_label_test=False)
    miner.scan(ds)
    groups = [
        c
        for c in miner.candidates_
        if (verdicts is None or c.verdict in verdicts)
        and c.inconsistency < 0.5
        and any(_is_lexical(f) for f in c.features)
        and not any(_is_unnatural(f) for f in c.features)
    ]
    truth = pd.poisoned_ids if pd else frozenset()
    return MinedCase(ds, miner, groups, truth, [r["id"] for r in recs])
