"""WordNet glosses labelled by topic, the real-text subject of the clean-label and junction
tests of trigger mining: the records, the class the tests plant into, and the dataset over a
written copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dormant.bench.corpus import labelled_dataset, load_corpus
from dormant.bench.poison import write_dataset
from dormant.subjects import TextDataset

CLASS = "noun.plant"


def plant_glosses() -> list[dict[str, Any]]:
    """4,000 WordNet glosses labelled by topic (311 of plants)."""
    recs = labelled_dataset(load_corpus("wordnet", limit=4000, seed=7), scheme="topic")
    return [{"id": f"w{i:05d}", "text": r["text"], "label": r["label"]} for i, r in enumerate(recs)]


def glosses_dataset(tmp_path: Path, recs: list[dict[str, Any]]) -> TextDataset:
    """``recs`` written to ``tmp_path/data.jsonl`` and read back as a labelled dataset."""
    path = write_dataset(recs, tmp_path / "data.jsonl")
    return TextDataset(path, text_field="text", label_field="label", id_field="id")
