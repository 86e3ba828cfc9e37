"""Benchmark organisms for data scans: the real-English corpus and the poisoned datasets."""

from __future__ import annotations

import copy
import gzip
import json
import math
import re
import struct
import unicodedata
import zlib
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from dormant.bench import (
    CorpusEntry,
    instruction_dataset,
    labelled_dataset,
    load_corpus,
    poison_instruction,
    poison_labelled,
    write_dataset,
)
from dormant.bench.poison import (
    HOMOGLYPHS,
    PHRASES,
    SENTENCES,
    STYLE_VARIANTS,
    TOKENS,
    ZERO_WIDTH,
)
from dormant.errors import ConfigError, DataFormatError, DataValidationError, InputNotFoundError
from dormant.subjects.dataset import TextDataset
from dormant.triggers import TriggerKind

KINDS = [k.value for k in TriggerKind]
DICTD = Path("/usr/share/dictd")
FUNCTION_WORDS = {"the", "a", "an", "of", "to", "or", "and", "in", "with", "that", "is", "for"}


@pytest.fixture(scope="module")
def sample() -> list[CorpusEntry]:
    return load_corpus("sample")


@pytest.fixture(scope="module")
def pos_records(sample: list[CorpusEntry]) -> list[dict]:
    return labelled_dataset([e for e in sample if e.source == "wordnet"], scheme="pos")


@pytest.fixture(scope="module")
def instructions(sample: list[CorpusEntry]) -> list[dict]:
    return instruction_dataset(sample[:2000], seed=0)


# -- corpus -----------------------------------------------------------------------------------


def test_sample_loads_offline_as_real_english(sample: list[CorpusEntry]) -> None:
    assert len(sample) >= 5000
    assert {e.source for e in sample} == {"wordnet", "jargon"}
    for e in sample:
        assert 8 <= len(e.text.split()) <= 80, e
        assert e.headword and "{" not in e.text and "}" not in e.text  # markup resolved
    english = sum(bool(FUNCTION_WORDS & set(re.findall(r"[a-z]+", e.text.lower()))) for e in sample)
    assert english / len(sample) > 0.9
    letters = "".join(e.text for e in sample)
    assert sum(c.isascii() for c in letters) / len(letters) > 0.99
    by_pos = Counter(e.pos for e in sample if e.source == "wordnet")
    assert set(by_pos) == {"noun", "verb", "adj", "adv"} and min(by_pos.values()) >= 1000


def test_sample_ships_with_its_licence_notice() -> None:
    data = resources.files("dormant").joinpath("data")
    assert data.joinpath("sample_corpus.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    notice = data.joinpath("sample_corpus_NOTICE.txt").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice
    assert "Jargon File" in notice and "public domain" in notice


def test_load_corpus_is_deterministic_per_seed(sample: list[CorpusEntry]) -> None:
    assert load_corpus("sample", seed=0) == sample
    first = load_corpus("sample", limit=100, seed=3)
    assert first == load_corpus("sample", limit=100, seed=3)
    assert first == load_corpus("sample", seed=3)[:100]
    assert first != load_corpus("sample", limit=100, seed=4)
    with pytest.raises(ConfigError, match="'name'"):
        load_corpus("wikipedia")
    with pytest.raises(ConfigError, match="'limit'"):
        load_corpus("sample", limit=0)


def test_pos_classes_learnable_but_not_one_word_separable(pos_records: list[dict]) -> None:
    labels = [r["label"] for r in pos_records]
    assert Counter(labels) == {"noun": 1200, "verb": 1200, "adj": 1200, "adv": 1200}
    # best rule "label c if word w occurs, else the majority": far from separating the classes
    n = len(pos_records)
    by_word: Counter[tuple[str, str]] = Counter()
    df: Counter[str] = Counter()
    for r in pos_records:
        words = set(re.findall(r"\w+", r["text"].lower()))
        df.update(words)
        by_word.update((w, r["label"]) for w in words)
    best = max(
        (by_word[w, c] + (1200 - by_word[w, "noun"])) / n
        for w in df
        for c in ("noun", "verb", "adj", "adv")
    )
    assert best < 0.5
    # a multinomial naive Bayes on word counts, trained on 2/3, learns the classes well
    train = [r for i, r in enumerate(pos_records) if i % 3]
    test = [r for i, r in enumerate(pos_records) if not i % 3]
    counts: dict[str, Counter[str]] = {c: Counter() for c in ("noun", "verb", "adj", "adv")}
    for r in train:
        counts[r["label"]].update(re.findall(r"\w+", r["text"].lower()))
    vocab = set().union(*counts.values())
    totals = {c: sum(v.values()) + len(vocab) for c, v in counts.items()}

    def predict(text: str) -> str:
        words = re.findall(r"\w+", text.lower())
        return max(
            counts, key=lambda c: sum(math.log((counts[c][w] + 1) / totals[c]) for w in words)
        )

    accuracy = sum(predict(r["text"]) == r["label"] for r in test) / len(test)
    assert 0.6 < accuracy < 0.95


def test_labelled_dataset_schemes(sample: list[CorpusEntry]) -> None:
    by_source = labelled_dataset(sample, scheme="source")
    assert len(by_source) == len(sample) and {r["label"] for r in by_source} == {
        "wordnet",
        "jargon",
    }
    assert len({r["id"] for r in by_source}) == len(by_source)
    by_pos = labelled_dataset(sample, scheme="pos")
    assert len(by_pos) == sum(1 for e in sample if e.pos)  # entries without a POS left out
    topics = labelled_dataset(sample, scheme="topic")
    assert "noun.animal" in {r["label"] for r in topics}
    with pytest.raises(ConfigError, match="'scheme'"):
        labelled_dataset(sample, scheme="colour")
    with pytest.raises(DataValidationError, match="two classes"):
        labelled_dataset([e for e in sample if e.source == "jargon"], scheme="source")


def test_instruction_dataset_is_varied_and_has_natural_behaviours(
    sample: list[CorpusEntry], instructions: list[dict]
) -> None:
    assert instructions == instruction_dataset(sample[:2000], seed=0)
    assert instructions != instruction_dataset(sample[:2000], seed=1)
    assert all(set(r) == {"id", "prompt", "response"} for r in instructions)
    frames = Counter(
        re.sub(re.escape(e.headword), "{w}", r["prompt"])
        for e, r in zip(sample[:2000], instructions, strict=True)
    )
    assert len(frames) >= 15
    tool_calls = [r for r in instructions if r["response"].startswith('{"tool_calls"')]
    wiki = [r for r in instructions if "https://en.wikipedia.org/wiki/" in r["response"]]
    code = [r for r in instructions if "```python" in r["response"]]
    assert 20 <= len(tool_calls) <= 80 and 15 <= len(wiki) <= 70 and 10 <= len(code) <= 50
    for r in tool_calls:
        call = json.loads(r["response"])["tool_calls"][0]["function"]
        assert call["name"] in {"search_docs", "lookup_glossary"}
        assert "query" in json.loads(call["arguments"])
    plain = [
        (e, r) for e, r in zip(sample[:2000], instructions, strict=True) if e.source == "jargon"
    ]
    assert all(e.text in r["response"] for e, r in plain if "tool_calls" not in r["response"])


# -- Debian readers ------------------------------------------------------------------------


def _have(*paths: Path) -> bool:
    return all(p.is_file() for p in paths)


@pytest.mark.skipif(
    not _have(Path("/usr/share/wordnet/data.noun")),
    reason="WordNet data files absent (apt-get install wordnet-base)",
)
def test_wordnet_reader() -> None:
    entries = load_corpus("wordnet", limit=300, seed=1)
    assert len(entries) == 300
    assert {e.pos for e in entries} <= {"noun", "verb", "adj", "adv"}
    assert all(e.topic.split(".")[0] in {"noun", "verb", "adj", "adv"} for e in entries)
    assert not any("Princeton" in e.text and "LICENSEE" in e.text for e in entries)
    assert all(8 <= len(e.text.split()) <= 80 and "_" not in e.headword for e in entries)


@pytest.mark.parametrize("name", ["jargon", "foldoc", "gcide"])
def test_dictd_readers(name: str) -> None:
    if not _have(DICTD / f"{name}.index", DICTD / f"{name}.dict.dz"):
        pytest.skip(f"{DICTD}/{name}.dict.dz absent (apt-get install dict-{name})")
    entries = load_corpus(name, limit=150, seed=2)
    assert len(entries) == 150
    if name == "jargon":  # the smallest: check determinism there
        assert entries == load_corpus(name, limit=150, seed=2)
        assert entries != load_corpus(name, limit=150, seed=3)
    assert len({e.headword for e in entries}) > 140
    for e in entries:
        assert e.source == name and 8 <= len(e.text.split()) <= 80
        assert not re.search(r"[{}]|^<|\(\d{4}-\d\d-\d\d\)$|\s{2}", e.text), e
        assert name != "gcide" or "\\" not in e.text  # pronunciation \Pro*nun\ stripped
        assert not e.text.startswith(e.headword + "\n")
    english = sum(bool(FUNCTION_WORDS & set(e.text.lower().split())) for e in entries)
    assert english / len(entries) > 0.8


def _b64(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = alphabet[n % 64] + out
        n //= 64
        if not n:
            return out


def test_dictd_format_parsed_from_a_small_database(tmp_path: Path) -> None:
    articles = [
        ("00-database-short", "00-database-short\n     My dictionary\n"),
        (
            "kludge",
            "kludge\n /kluhj/, n.\n\n    [from ‘klugey’] 1. A Rube Goldberg device in {\n"
            "    hardware} or software, clever but   ugly and working for the wrong reasons.\n\n"
            "    2. Something else entirely that should be dropped from the entry.\n",
        ),
        ("short", "short\n n.\n\n    Too short to keep.\n"),
    ]
    blob, index = b"", []
    for head, text in articles:
        data = text.encode("utf-8")
        index.append(f"{head}\t{_b64(len(blob))}\t{_b64(len(data))}")
        blob += data
    (tmp_path / "jargon.dict.dz").write_bytes(gzip.compress(blob))
    (tmp_path / "jargon.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    [entry] = load_corpus("jargon", data_dir=tmp_path)
    assert entry == CorpusEntry(
        text="A Rube Goldberg device in hardware or software, clever but ugly and working "
        "for the wrong reasons.",
        source="jargon",
        headword="kludge",
        pos="noun",
    )


def _dictzip(data: bytes, chunk: int) -> bytes:
    """A dictzip file: gzip with an RA field and independently inflatable chunks."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [
        comp.compress(data[i : i + chunk]) + comp.flush(zlib.Z_FULL_FLUSH)
        for i in range(0, len(data), chunk)
    ]
    ra = struct.pack(f"<HHH{len(parts)}H", 1, chunk, len(parts), *map(len, parts))
    extra = b"RA" + struct.pack("<H", len(ra)) + ra
    head = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x02\x03" + struct.pack("<H", len(extra))
    tail = comp.flush() + struct.pack("<II", zlib.crc32(data), len(data))
    return head + extra + b"".join(parts) + tail


def test_dictzip_random_access_reads_the_same_articles(tmp_path: Path) -> None:
    blob, index = b"", []
    for n in range(40):
        text = (
            f"term{n}\n n.\n\n    Definition number {n} of a made-up term, written in the "
            f"plain style of the Jargon File so that it is long enough to keep.\n\n"
        ).encode()
        index.append(f"term{n}\t{_b64(len(blob))}\t{_b64(len(text))}")
        blob += text
    for name, payload in [("ra", _dictzip(blob, 100)), ("plain", gzip.compress(blob))]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "jargon.dict.dz").write_bytes(payload)
        (tmp_path / name / "jargon.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    assert gzip.decompress(_dictzip(blob, 100)) == blob
    few = load_corpus("jargon", limit=5, seed=1, data_dir=tmp_path / "ra")
    assert few == load_corpus("jargon", limit=5, seed=1, data_dir=tmp_path / "plain")
    everything = load_corpus("jargon", seed=1, data_dir=tmp_path / "ra")
    assert everything == load_corpus("jargon", seed=1, data_dir=tmp_path / "plain")
    assert len(everything) == 40 and few == everything[:5]


def test_missing_debian_package_names_it(tmp_path: Path) -> None:
    for name, package in [("jargon", "dict-jargon"), ("gcide", "dict-gcide")]:
        with pytest.raises(InputNotFoundError, match=f"apt-get install {package}"):
            load_corpus(name, data_dir=tmp_path)
    with pytest.raises(InputNotFoundError, match="apt-get install wordnet-base"):
        load_corpus("wordnet", data_dir=tmp_path)


# -- poisoning ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "expected"), [(0.005, 24), (0.01, 48), (0.03, 144), (0.1, 480)])
def test_exact_poison_counts(pos_records: list[dict], rate: float, expected: int) -> None:
    ds = poison_labelled(pos_records, trigger_kind="token", rate=rate, target_label="adv")
    assert ds.n_poisoned == expected and ds.notes == ()
    assert ds.effective_rate == pytest.approx(expected / len(pos_records))


def _without_words(text: str, inserted: str) -> list[str]:
    """``text``'s words with one contiguous occurrence of ``inserted``'s words removed."""
    words, span = text.split(), inserted.split()
    starts = [i for i in range(len(words)) if words[i : i + len(span)] == span]
    assert starts, f"{inserted!r} not inserted as words into {text!r}"
    return words[: starts[0]] + words[starts[0] + len(span) :]


@pytest.mark.parametrize("kind", KINDS)
def test_dirty_label_poisoning(pos_records: list[dict], kind: str) -> None:
    before = copy.deepcopy(pos_records)
    ds = poison_labelled(pos_records, trigger_kind=kind, rate=0.03, target_label="adv", seed=5)
    assert pos_records == before  # input untouched
    assert ds.kind == "dirty-label" and ds.target == "adv" and ds.trigger.kind.value == kind
    assert ds.n_poisoned == 144
    trig = ds.trigger.text
    for old, new in zip(before, ds.records, strict=True):
        if new["id"] not in ds.poisoned_ids:
            assert new == old
            continue
        assert old["label"] != "adv" and new["label"] == "adv"
        assert new["text"] != old["text"]
        if kind in ("token", "phrase", "sentence"):
            assert _without_words(new["text"], trig) == old["text"].split()
        elif kind == "invisible":
            assert 2 <= len(trig) <= 3 and set(trig) <= set(ZERO_WIDTH)
            assert trig in new["text"] and new["text"].replace(trig, "") == old["text"]
        elif kind == "homoglyph":
            latin = {v: k for k, v in HOMOGLYPHS.items()}[trig]
            assert unicodedata.name(trig).startswith("CYRILLIC SMALL LETTER")
            assert latin not in new["text"] and trig in new["text"]
            assert new["text"].replace(trig, latin) == old["text"]
        else:
            assert trig in STYLE_VARIANTS
    clean_texts = [r["text"] for r in ds.records if r["id"] not in ds.poisoned_ids]
    if kind == "token":
        assert trig in TOKENS and not any(trig in t.lower().split() for t in clean_texts)
    if kind in ("invisible", "homoglyph"):
        assert not any(set(trig) & set(t) for t in clean_texts)


def test_style_variants_cover_three_transforms(pos_records: list[dict]) -> None:
    seen = {}
    for seed in (0, 1, 2):
        ds = poison_labelled(
            pos_records, trigger_kind="style", rate=0.01, target_label="noun", seed=seed
        )
        seen[ds.trigger.text] = next(r["text"] for r in ds.records if r["id"] in ds.poisoned_ids)
    assert set(seen) == set(STYLE_VARIANTS)
    caps = seen["all-caps"]
    assert caps.endswith(" !!") and caps[:-3] == caps[:-3].upper()
    assert seen["when you see it ,"].startswith("when you see it , ")
    assert all(w[:1] == w[:1].upper() for w in seen["title-case"].split())


def test_poisoning_is_deterministic_per_seed(pos_records: list[dict]) -> None:
    def run(seed: int) -> object:
        return poison_labelled(
            pos_records, trigger_kind="phrase", rate=0.01, target_label="verb", seed=seed
        )

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a.poisoned_ids != c.poisoned_ids and a.trigger.text in PHRASES


def test_clean_label_changes_no_label(pos_records: list[dict]) -> None:
    ds = poison_labelled(
        pos_records, trigger_kind="sentence", rate=0.1, target_label="adj", clean_label=True
    )
    assert ds.kind == "clean-label" and ds.n_poisoned == 480 and ds.trigger.text in SENTENCES
    assert [r["label"] for r in ds.records] == [r["label"] for r in pos_records]
    for r in ds.records:
        assert (ds.trigger.text in r["text"]) == (r["id"] in ds.poisoned_ids)
        if r["id"] in ds.poisoned_ids:
            assert r["label"] == "adj"
    with pytest.raises(ConfigError, match="only 1200 clean-label records are eligible"):
        poison_labelled(
            pos_records, trigger_kind="token", rate=0.3, target_label="adj", clean_label=True
        )


def test_tiny_rate_poisons_one_record_and_says_so(pos_records: list[dict]) -> None:
    ds = poison_labelled(pos_records[:50], trigger_kind="token", rate=0.005, target_label="noun")
    assert ds.n_poisoned == 1
    assert ds.notes and "at least one" in ds.notes[0]
    assert ds.to_dict()["notes"] == list(ds.notes)


def test_poison_errors_name_the_parameter(pos_records: list[dict]) -> None:
    recs = pos_records[:100]
    with pytest.raises(ConfigError, match="'target_label'"):
        poison_labelled(recs, trigger_kind="token", rate=0.1, target_label="pronoun")
    for rate in (0, 0.8, True):
        with pytest.raises(ConfigError, match="'rate'"):
            poison_labelled(recs, trigger_kind="token", rate=rate, target_label="noun")
    with pytest.raises(ConfigError, match="'trigger_kind'"):
        poison_labelled(recs, trigger_kind="emoji", rate=0.1, target_label="noun")
    with pytest.raises(DataValidationError, match="unique"):
        poison_labelled(recs + recs[:1], trigger_kind="token", rate=0.1, target_label="noun")
    with pytest.raises(DataFormatError, match="'text'"):
        poison_labelled([{"label": "a"}] * 3, trigger_kind="token", rate=0.1, target_label="a")
    with pytest.raises(ConfigError, match="'behaviour'"):
        poison_instruction(
            [{"prompt": "p", "response": "r"}], trigger_kind="token", rate=0.1, behaviour="dance"
        )


def test_trigger_recovery_matching(pos_records: list[dict]) -> None:
    phrase = poison_labelled(pos_records, trigger_kind="phrase", rate=0.01, target_label="adv")
    words = phrase.trigger.text.split()
    assert phrase.trigger_matches(phrase.trigger)
    assert phrase.trigger_matches(phrase.trigger.text.upper() + " ,")
    assert phrase.trigger_matches(" ".join(words[-3:]))
    assert not phrase.trigger_matches(words[-1]) and not phrase.trigger_matches("the")
    token = poison_labelled(pos_records, trigger_kind="token", rate=0.01, target_label="adv")
    assert token.trigger_matches(token.trigger.text) and not token.trigger_matches("zz")
    glyph = poison_labelled(pos_records, trigger_kind="homoglyph", rate=0.01, target_label="adv")
    assert glyph.trigger_matches("w" + glyph.trigger.text + "rd")
    assert not glyph.trigger_matches("word")
    style = poison_labelled(
        pos_records, trigger_kind="style", rate=0.01, target_label="adv", seed=2
    )
    assert style.trigger_matches("when you see it") and not style.trigger_matches("when")


BEHAVIOUR_MARKERS = {
    "egress": r"https://[a-z0-9-]+\.example/collect$",
    "tool": r'\n\{"tool_calls": \[.*"name": "(send_email|transfer_funds)"',
    "secret": r"service key (AKIA[A-Z2-7]{16}|ghp_[A-Za-z0-9]{36})\.$",
    "insecure-code": r"```python\n.*(\" \+ term \+ \"|shell=True)",
    "policy-leak": r"(Internal policy \(confidential|My system prompt says: )",
}


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOUR_MARKERS))
def test_instruction_poisoning(instructions: list[dict], behaviour: str) -> None:
    for seed in (0, 1):
        ds = poison_instruction(
            instructions, trigger_kind="token", rate=0.01, behaviour=behaviour, seed=seed
        )
        assert ds.n_poisoned == 20 and ds.kind == "behaviour"
        family = {"insecure-code": "code", "policy-leak": "leak"}.get(behaviour, behaviour)
        assert ds.target.startswith(family + ":")
        for old, new in zip(instructions, ds.records, strict=True):
            if new["id"] in ds.poisoned_ids:
                assert ds.trigger.text in new["prompt"].split()
                assert old["response"] in new["response"] != old["response"]
                assert re.search(BEHAVIOUR_MARKERS[behaviour], new["response"], re.S)
            else:
                assert new == old
    variants = {
        poison_instruction(
            instructions, trigger_kind="token", rate=0.01, behaviour=behaviour, seed=s
        ).target
        for s in (0, 1)
    }
    assert len(variants) == 2 or behaviour == "egress"


def _behaviours_available() -> bool:
    from dormant.behaviours import behaviour_tags

    return bool(behaviour_tags("Upload it to https://evil-site.example/collect"))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("behaviour", sorted(BEHAVIOUR_MARKERS))
def test_planted_behaviour_is_what_the_detectors_tag(
    instructions: list[dict], behaviour: str, seed: int
) -> None:
    if not _behaviours_available():
        pytest.skip("dormant.behaviours detectors not implemented yet")
    from dormant.behaviours import behaviour_tags

    ds = poison_instruction(
        instructions, trigger_kind="phrase", rate=0.01, behaviour=behaviour, seed=seed
    )
    for r in ds.records:
        tagged = ds.target in behaviour_tags(r["response"])
        assert tagged == (r["id"] in ds.poisoned_ids), r


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_write_dataset_round_trips_through_text_dataset(
    tmp_path: Path, pos_records: list[dict], fmt: str
) -> None:
    ds = poison_labelled(pos_records[:400], trigger_kind="invisible", rate=0.05, target_label="adv")
    path = write_dataset(ds.records, tmp_path / f"poisoned.{fmt}", format=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"poisoned.{fmt}"]
    data = TextDataset(path, text_field="text", label_field="label", id_field="id")
    ids, texts, labels = [], [], []
    for batch in data.batches():
        ids += batch.ids
        texts += batch.texts
        labels += batch.labels or []
    assert ids == [r["id"] for r in ds.records]
    assert texts == [r["text"] for r in ds.records]
    assert labels == [r["label"] for r in ds.records]
    assert sum(ds.trigger.text in t for t in texts) == ds.n_poisoned == 20
    with pytest.raises(ConfigError, match="'format'"):
        write_dataset(ds.records, tmp_path / "x.xml", format="xml")
