"""Measure ``dormant scan corpus`` on real-text corpora with injected RAG poison.

For each corpus (``dev``: FOLDOC + Jargon File entries, the one the scan was developed on;
``aside``: manual pages, kept aside until the end, tainted with a second set of directive
wordings written apart from the scan's exemplar bank) and each taint rate (0.1%, 1%, 5%), tainted
passages (a directive + a trigger phrase, varied wording, some paraphrased, some with zero-width
characters; see ``_corpus_taint.py``) replace clean ones. Reported: precision / recall of the
tainted passages (quarantined = tainted?), whether the trigger phrase was recovered (a reported
phrase equals the trigger), false positives among the third-person discussion passages, and the
same figures for the keyword baseline in the same run.

Run (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD/src nice -n 5 python benchmarks/bench_corpus_scan.py \
        --corpus dev aside --n 3000 --out benchmarks/results/corpus_scan.json

Embeddings of a text are computed once and reused across taint rates (a memo around the real
encoder); the scan itself is unchanged.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus_taint import (
    DIRECTIVES,
    DIRECTIVES_ASIDE,
    PARAPHRASES,
    PARAPHRASES_ASIDE,
    keyword_flags,
    taint,
)

TRIGGERS = {"dev": "per the harbor lantern protocol", "aside": "as logged in the amber ledger"}
RATES = (0.001, 0.01, 0.05)


class MemoEncoder:
    """The real MiniLM encoder with a memo keyed by text (same vectors, computed once)."""

    def __init__(self, cache: str | None = None) -> None:
        import torch

        from dormant.adapters.encoder import TextEncoder

        torch.set_num_threads(1)
        self.enc = TextEncoder().load()
        self.memo: dict[str, np.ndarray] = {}
        self.cache = Path(cache) if cache else None
        if self.cache and self.cache.is_file():
            with np.load(self.cache) as z:  # plain arrays only: allow_pickle stays off
                self.memo = dict(zip(z["texts"].tolist(), z["vectors"], strict=True))

    def save(self) -> None:
        if self.cache:
            texts = list(self.memo)
            np.savez(self.cache, texts=np.array(texts), vectors=np.stack(list(self.memo.values())))

    def encode(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if todo:
            for t, v in zip(todo, self.enc.encode(todo), strict=True):
                self.memo[t] = v
        return np.stack([self.memo[t] for t in texts])


def clean_texts(corpus: str, n: int, seed: int) -> list[str]:
    from dormant.bench._readers import read_dictd
    from dormant.bench._readers_debian import read_manpages
    from dormant.bench.corpus import _dictd_paths

    out: list[str] = []
    if corpus == "dev":
        for name in ("foldoc", "jargon"):
            idx, dz = _dictd_paths(name, None)
            for e in read_dictd(idx, dz, name, shuffle_seed=seed):
                out.append(e.text)
                if len(out) >= (n * 3 // 4 if name == "foldoc" else n):
                    break
    else:
        for e in read_manpages(shuffle_seed=seed):
            out.append(e.text)
            if len(out) >= n:
                break
    return out[:n]


def prf(flags: list[bool], truth: list[bool]) -> dict[str, float]:
    f, t = np.array(flags), np.array(truth)
    tp = int((f & t).sum())
    prec = tp / f.sum() if f.sum() else 1.0
    rec = tp / t.sum() if t.sum() else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "precision": round(prec, 4),
        "recall": round(rec, 4),
        "f1": round(f1, 4),
        "flagged": int(f.sum()),
        "tainted": int(t.sum()),
    }


def run_one(corpus: str, clean: list[str], rate: float, enc: MemoEncoder, seed: int) -> dict:
    from dormant.scanners.corpus import scan_corpus

    trig = TRIGGERS[corpus]
    templates = (
        (DIRECTIVES_ASIDE, PARAPHRASES_ASIDE) if corpus == "aside" else (DIRECTIVES, PARAPHRASES)
    )
    data = taint(clean, rate=rate, trigger=trig, seed=seed, templates=templates)
    texts = [p["text"] for p in data.passages]
    truth = [p["id"] in data.tainted_ids for p in data.passages]
    t0 = time.perf_counter()
    report = scan_corpus(data.passages, encoder=enc)
    secs = time.perf_counter() - t0
    flagged = [r.flagged for r in report.records]
    phrases = report.extras["corpus"]["phrases"]
    disc = [p["id"] in data.discussion_ids for p in data.passages]
    why: dict[str, list[str]] = {}
    for f in report.findings:
        for rid in f.locator.record_ids:
            why.setdefault(rid, []).append(f.title[:60])
    fps = [
        {"text": p["text"][:160], "why": why.get(p["id"], [])[:2]}
        for p, fl, t in zip(data.passages, flagged, truth, strict=True)
        if fl and not t
    ]
    missed = [
        p["text"][-120:]
        for p, fl, t in zip(data.passages, flagged, truth, strict=True)
        if t and not fl
    ]
    kw = keyword_flags(texts)
    return {
        "corpus": corpus,
        "rate": rate,
        "passages": len(texts),
        "scan": prf(flagged, truth),
        "trigger_recovered": trig in phrases[:3],
        "trigger_exact": bool(phrases) and phrases[0] == trig,
        "phrases": phrases[:5],
        "discussion_flagged": int(sum(f and d for f, d in zip(flagged, disc, strict=True))),
        "discussion": int(sum(disc)),
        "keyword": prf(kw, truth),
        "keyword_discussion_flagged": int(sum(f and d for f, d in zip(kw, disc, strict=True))),
        "seconds": round(secs, 1),
        "false_positives": fps[:10],
        "missed": missed[:10],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", nargs="+", default=["dev"], choices=("dev", "aside"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    ap.add_argument("--out", default=None)
    ap.add_argument("--cache", default=None, help="embedding memo file (.npz) to reuse")
    args = ap.parse_args()
    enc = MemoEncoder(args.cache)
    rows = []
    for corpus in args.corpus:
        clean = clean_texts(corpus, args.n, args.seed)
        for rate in args.rates:
            row = run_one(corpus, clean, rate, enc, args.seed)
            rows.append(row)
            enc.save()
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"machine": platform.platform(), "rows": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
