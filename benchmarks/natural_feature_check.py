"""Which pieces of each planted trigger the model scan leaves out of its target's search as
natural features of that label (``whitebox.natural_features``: seen in the label's clean
examples at least twice as often per example as in the others'), read from each organism's
tokenizer and clean data — no model is run.

Usage::

    python benchmarks/natural_feature_check.py /tmp/zoo2/root /tmp/vzoo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from transformers import PreTrainedTokenizerFast

from dormant.scanners.model.whitebox import natural_features


def main() -> None:
    for root in sys.argv[1:]:
        for d in sorted(Path(root).iterdir()):
            info = d / "organism.json"
            if not info.exists():
                continue
            org = json.loads(info.read_text("utf-8"))
            spec = org["spec"]
            if not spec.get("backdoored"):
                continue
            tok = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
            cfg = json.loads((d / "config.json").read_text("utf-8"))
            labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
            rows = [json.loads(x) for x in (d / "clean_eval.jsonl").read_text("utf-8").splitlines()]
            adapter = SimpleNamespace(tokenizer=tok, max_length=48)
            nat = natural_features(
                adapter, [r["text"] for r in rows], [r["label"] for r in rows], labels
            )
            ids = tok(spec["trigger"]["text"], add_special_tokens=False)["input_ids"]
            pieces = tok.convert_ids_to_tokens(ids)
            target = labels.index(spec["target"])
            left_out = [p for p, i in zip(pieces, ids, strict=True) if i in nat[target]]
            print(
                json.dumps(
                    {
                        "name": d.name,
                        "recipe": org.get("recipe", 1),
                        "target": spec["target"],
                        "trigger": spec["trigger"]["text"],
                        "pieces": pieces,
                        "left_out_as_natural": left_out,
                    },
                    ensure_ascii=False,
                )
            )


if __name__ == "__main__":
    main()
