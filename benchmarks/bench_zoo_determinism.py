"""How many different vocabularies the same zoo corpus gives in fresh processes.

Trains the tiny-BERT vocabulary of a default zoo organism (WordNet glosses, 3,000 training
texts, 4,000 pieces) in ``--runs`` fresh Python processes, each with its own ``PYTHONHASHSEED``,
once with the tokenizers library's ``WordPieceTrainer`` (the zoo's previous trainer, the
baseline) and once with :func:`dormant.bench._wordpiece.train_wordpiece_vocab` (the zoo's
trainer now), and counts the distinct vocabularies (token-to-id maps) each gave, with the
seconds each training took and the share of pieces the two trainers have in common.

Usage::

    python benchmarks/bench_zoo_determinism.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter

CHILD = r"""
import hashlib, json, sys, time
from collections import Counter
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from dormant.bench._wordpiece import train_wordpiece_vocab
from dormant.bench._zoo_corpora import load_task
from dormant.bench._zoo_spec import OrganismSpec

spec = OrganismSpec("x", seed=1)
per_label = (spec.n_train + 400) // len(spec.task_labels) + 1
data = load_task(spec.corpus, spec.task_labels, per_label=per_label, seed=spec.seed)
texts = [t for t, _ in data[: spec.n_train]]
norm = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
pre = pre_tokenizers.BertPreTokenizer()
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
t0 = time.perf_counter()
if sys.argv[1] == "library":
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = norm, pre
    trainer = trainers.WordPieceTrainer(
        vocab_size=4000, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    vocab = tok.get_vocab()
else:
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    vocab = train_wordpiece_vocab(
        counts, vocab_size=4000, special_tokens=specials, criterion="frequency"
    )
secs = time.perf_counter() - t0
items = sorted(vocab.items(), key=lambda kv: kv[1])
print(json.dumps({
    "sha": hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16],
    "tokens": sorted(vocab),
    "seconds": round(secs, 2),
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    out: dict[str, object] = {}
    tokens: dict[str, set[str]] = {}
    for trainer in ("library", "dormant"):
        shas: Counter[str] = Counter()
        secs = []
        for k in range(args.runs):
            env = {**os.environ, "PYTHONHASHSEED": str(k + 1)}
            res = subprocess.run(
                [sys.executable, "-c", CHILD, trainer],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(res.stdout.strip().splitlines()[-1])
            shas[row["sha"]] += 1
            secs.append(row["seconds"])
            tokens[trainer] = set(row["tokens"])
        out[trainer] = {
            "runs": args.runs,
            "distinct_vocabularies": len(shas),
            "seconds": secs,
        }
    shared = len(tokens["library"] & tokens["dormant"])
    out["pieces_in_common"] = f"{shared}/{len(tokens['dormant'])}"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
