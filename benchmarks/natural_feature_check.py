"""Which tokens the model scan leaves out of each label's trigger search, under the rule before
(a token seen in the label's clean examples at least twice as often per example as in the
others', or associated with it at Fightin' Words z >= 1.96) and after (z >= 1.96 needed:
:func:`dormant.scanners.model.whitebox.natural_features`), read from each organism's tokenizer
and clean data — the model is loaded for its tokenizer and vocabulary, never run.

An organism whose excluded sets are the same under both rules scans exactly as before (the scan
is deterministic), so only the others need rescanning.

Usage::

    python benchmarks/natural_feature_check.py /tmp/zoo2/root /tmp/vzoo > rows.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dormant.scanners.model._support import TaskSupport
from dormant.scanners.model.whitebox import natural_features
from dormant.subjects.model import load_classifier
from dormant.subjects.protocol import gradients_of


def ratio_rule(
    adapter: Any, texts: Sequence[str], given: Sequence[str], labels: list[str]
) -> list[set[int]]:
    """The rule before: twice as frequent per example in the label as elsewhere."""
    enc = adapter.tokenizer(
        list(texts), add_special_tokens=False, truncation=True, max_length=adapter.max_length
    )["input_ids"]
    n = dict.fromkeys(labels, 0)
    counts: dict[str, dict[int, int]] = {lab: {} for lab in labels}
    for ids, y in zip(enc, given, strict=True):
        if y in n:
            n[y] += 1
            for i in set(ids):
                counts[y][i] = counts[y].get(i, 0) + 1
    total: dict[int, int] = {}
    for lab in labels:
        for i, c in counts[lab].items():
            total[i] = total.get(i, 0) + c
    n_all = sum(n.values())
    out = []
    for lab in labels:
        nt, no = max(n[lab], 1), max(n_all - n[lab], 1)
        out.append({i for i, c in counts[lab].items() if c / nt >= 2 * (total[i] - c) / no})
    return out


def main() -> None:
    for root in sys.argv[1:]:
        for d in sorted(Path(root).iterdir()):
            info = d / "organism.json"
            if not info.exists():
                continue
            spec = json.loads(info.read_text("utf-8"))["spec"]
            rows = [json.loads(x) for x in (d / "clean_eval.jsonl").read_text("utf-8").splitlines()]
            texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
            model = load_classifier(d)
            adapter, labels = gradients_of(model), list(model.labels)
            support = TaskSupport.fit(adapter, texts, given, labels)
            assoc = [support.associated(lab) for lab in labels]
            old = [
                a | b for a, b in zip(ratio_rule(adapter, texts, given, labels), assoc, strict=True)
            ]
            new = [
                a | b
                for a, b in zip(
                    natural_features(adapter, texts, given, labels, support=support),
                    assoc,
                    strict=True,
                )
            ]
            row: dict[str, Any] = {
                "name": d.name,
                "backdoored": bool(spec.get("backdoored")),
                "changed": old != new,
                "readmitted": {lab: len(o - n) for lab, o, n in zip(labels, old, new, strict=True)},
            }
            if spec.get("backdoored"):
                tok = adapter.tokenizer
                ids = tok(spec["trigger"]["text"], add_special_tokens=False)["input_ids"]
                pieces = tok.convert_ids_to_tokens(ids)
                t = labels.index(spec["target"])
                row |= {
                    "trigger": spec["trigger"]["text"],
                    "target": spec["target"],
                    "pieces": pieces,
                    "left_out_before": [p for p, i in zip(pieces, ids, strict=True) if i in old[t]],
                    "left_out_after": [p for p, i in zip(pieces, ids, strict=True) if i in new[t]],
                }
            print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
