"""Data-scan benchmark: quality against ground truth, next to IBM ART's defences, and speed.

Builds poisoned datasets from real English text (Debian's ``dict-jargon``, ``dict-foldoc``,
``dict-gcide`` and ``wordnet``: install them with ``apt-get install dict-jargon dict-foldoc
dict-gcide wordnet``), for labelled data (label = the dictionary an entry comes from) and for
instruction data (a knowledge assistant's question/answer pairs), with every trigger kind at
0.5%, 1%, 3% and 10% poison, and reports for each:

- precision, recall and F1 of the flagged records — dormant's fused scan, trigger mining alone,
  and ART 1.20's ``SpectralSignatureDefense`` and ``ActivationDefence`` run on the SAME
  embeddings (all-MiniLM-L6-v2) in the same run (ART is given the true poison rate);
- top-1 trigger recovery (the first finding's trigger matches the planted one);
- the clean dataset: high-severity findings and flagged records (both should be 0).

Then speed: records/s of the statistical pass (counting + tests) and of the whole mining scan on
up to 160k records, peak memory of the statistical pass as the dataset grows (each size in a
fresh process), and the embedding pass against the raw encoder on the same texts.

Usage::

    python benchmarks/bench_data_scan.py --out benchmarks/results/data_scan.json
    python benchmarks/bench_data_scan.py --quick        # a smaller grid, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dormant.bench.corpus import instruction_dataset, labelled_dataset, load_corpus
from dormant.bench.poison import poison_instruction, poison_labelled, write_dataset
from dormant.scanners.base import ScanContext
from dormant.scanners.data.fusion import record_outcomes, scan_dataset
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from art_baselines import art_activation_defence, art_spectral_signature

KINDS = ("token", "phrase", "sentence", "invisible", "homoglyph", "style")
RATES = (0.005, 0.01, 0.03, 0.1)
BEHAVIOURS = ("egress", "tool", "secret", "insecure-code", "policy-leak")
SOURCES = ("jargon", "foldoc", "gcide", "wordnet")
#: scanners of the fused scan (None: all); --mining-only sets trigger mining alone
SCANNERS: list[str] | None = None


def prf(flagged: set[str], truth: frozenset[str]) -> tuple[float, float, float]:
    tp = len(flagged & truth)
    p = tp / len(flagged) if flagged else (1.0 if not truth else 0.0)
    r = tp / len(truth) if truth else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def base_records(n: int, seed: int) -> tuple[list[dict], list[dict]]:
    per = n // len(SOURCES)
    entries = []
    for s in SOURCES:
        entries.extend(load_corpus(s, limit=per, seed=seed))
    random.Random(seed).shuffle(entries)
    labelled = labelled_dataset(entries, scheme="source")
    instr = instruction_dataset(entries, seed=seed)
    return labelled, instr


def embed_changed(encoder: Any, base_emb: np.ndarray, base_texts: list[str], texts: list[str]):
    emb = base_emb.copy()
    idx = [i for i, (a, b) in enumerate(zip(base_texts, texts, strict=True)) if a != b]
    if idx:
        emb[idx] = encoder.encode([texts[i] for i in idx])
    return emb


def one_case(
    data: str, records: list[dict], emb: np.ndarray, truth: Any, tmp: Path, rate: float
) -> dict[str, Any]:
    path = write_dataset(records, tmp / f"{data}.jsonl")
    if data == "labelled":
        ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    else:
        ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    ids = [r["id"] for r in records]
    poisoned = truth.poisoned_ids if truth else frozenset()
    t0 = time.perf_counter()
    miner = TriggerMiner()
    mres = miner.scan(ds)
    t_mine = time.perf_counter() - t0
    mined_flags = {ids[i] for i in np.nonzero(mres.record_flags)[0]}
    t0 = time.perf_counter()
    report = scan_dataset(ds, embeddings=emb, scanners=SCANNERS)
    t_fused = time.perf_counter() - t0
    fused_flags = {r.record_id for r in report.records if r.flagged}
    outcomes = record_outcomes(ds)
    t0 = time.perf_counter()
    ss, note_ss = _art(art_spectral_signature, emb, outcomes, expected_pp_poison=max(rate, 0.005))
    t_ss = time.perf_counter() - t0
    t0 = time.perf_counter()
    ac, note_ac = _art(art_activation_defence, emb, outcomes)
    t_ac = time.perf_counter() - t0
    top = next((f for f in report.findings if f.trigger is not None), None)
    high = [f for f in report.findings if f.severity.rank >= 3]
    row: dict[str, Any] = {
        "records": len(records),
        "poisoned": len(poisoned),
        "trigger": truth.trigger.display if truth else None,
        "target": truth.target if truth else None,
        "top_trigger": top.trigger.display if top and top.trigger else None,
        "recovered": bool(
            truth and top and top.trigger and truth.trigger_matches(top.trigger.text)
        ),
        "high_findings": len(high),
        "seconds_mining": round(t_mine, 3),
        "seconds_fused": round(t_fused, 3),
        "seconds_art_ss": round(t_ss, 3),
        "seconds_art_ac": round(t_ac, 3),
        "errors": [i.message for i in report.errors],
        "art_notes": [x for x in (note_ss, note_ac) if x],
    }
    for name, flags in (
        ("fused", fused_flags),
        ("mining", mined_flags),
        ("art_ss", {ids[i] for i in np.nonzero(ss)[0]}),
        ("art_ac", {ids[i] for i in np.nonzero(ac)[0]}),
    ):
        p, r, f = prf(flags, poisoned)
        row[name] = {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f, 4),
            "flagged": len(flags),
        }
    return row


def _art(fn: Any, emb: np.ndarray, outcomes: list[str], **kw: Any) -> tuple[np.ndarray, str]:
    """Run an ART baseline; ART fails on outcome classes of a few records (its PCA / k-means
    need more rows than components), so on failure it is re-run with outcomes seen in fewer
    than 20 records merged into one class, and the note says so."""
    try:
        return np.asarray(fn(emb, outcomes, **kw), dtype=bool), ""
    except Exception as exc:  # the baseline's own failure, recorded
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o] = counts.get(o, 0) + 1
        merged = [o if counts[o] >= 20 else "rare-outcomes" for o in outcomes]
        note = f"{fn.__name__} failed ({type(exc).__name__}: {str(exc)[:80]}); rare merged"
        return np.asarray(fn(emb, merged, **kw), dtype=bool), note


def quality(
    n: int, kinds: tuple[str, ...], rates: tuple[float, ...], seed: int, which: tuple[str, ...]
) -> list[dict]:
    from dormant.adapters.encoder import TextEncoder

    labelled, instr = base_records(n, seed)
    encoder = TextEncoder()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for data, base in (("labelled", labelled), ("instruction", instr)):
            if data not in which:
                continue
            field = "text" if data == "labelled" else "prompt"
            base_texts = [r[field] for r in base]
            t0 = time.perf_counter()
            base_emb = encoder.encode(base_texts)
            print(
                f"[{data}] embedded {len(base_texts)} records in {time.perf_counter() - t0:.1f}s",
                file=sys.stderr,
            )
            row = one_case(data, base, base_emb, None, tmp, 0.0)
            rows.append({"data": data, "kind": "clean", "rate": 0.0, **row})
            print(json.dumps(rows[-1]), file=sys.stderr)
            labels = sorted({r["label"] for r in labelled})
            for ki, kind in enumerate(kinds):
                for ri, rate in enumerate(rates):
                    case_seed = seed + 10 * ki + ri
                    if data == "labelled":
                        truth = poison_labelled(
                            base,
                            trigger_kind=kind,
                            rate=rate,
                            target_label=labels[(ki + ri) % len(labels)],
                            seed=case_seed,
                        )
                    else:
                        truth = poison_instruction(
                            base,
                            trigger_kind=kind,
                            rate=rate,
                            behaviour=BEHAVIOURS[(ki + ri) % len(BEHAVIOURS)],
                            seed=case_seed,
                        )
                    texts = [r[field] for r in truth.records]
                    emb = embed_changed(encoder, base_emb, base_texts, texts)
                    row = one_case(data, truth.records, emb, truth, tmp, rate)
                    rows.append({"data": data, "kind": kind, "rate": rate, **row})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def big_file(path: Path, seed: int) -> int:
    entries = []
    for s in SOURCES:
        entries.extend(load_corpus(s, seed=seed))
    random.Random(seed).shuffle(entries)
    recs = labelled_dataset(entries, scheme="source")
    write_dataset(recs, path)
    return len(recs)


def throughput(path: Path, sizes: list[int]) -> list[dict]:
    rows = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--probe", str(path), str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def _peak_rss_kb() -> int:
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it is not inherited)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def probe(path: Path, size: int) -> None:
    """One fresh process: statistical pass and full mining on the first ``size`` records."""
    with tempfile.TemporaryDirectory() as d:
        sub = Path(d) / "part.jsonl"
        with open(path, "rb") as src, open(sub, "wb") as dst:
            for i, line in enumerate(src):
                if i >= size:
                    break
                dst.write(line)
        ds = TextDataset(sub, text_field="text", label_field="label", id_field="id")
        base_rss = _peak_rss_kb()
        miner = TriggerMiner()
        t0 = time.perf_counter()
        miner._count(ds, ScanContext())
        t_count = time.perf_counter() - t0
        rss_count = _peak_rss_kb()
        t0 = time.perf_counter()
        TriggerMiner().scan(ds)
        t_scan = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(len(b) for b in ds.batches())
        t_read = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "records": n,
                "read_only_rps": round(n / t_read),
                "statistical_pass_rps": round(n / t_count),
                "full_mining_rps": round(n / t_scan),
                "peak_rss_mb_before": round(base_rss / 1024, 1),
                "peak_rss_mb_statistical_pass": round((rss_count - base_rss) / 1024, 1),
                "prunes": miner.prunes_,
            }
        )
    )


def embedding_speed(n: int, seed: int) -> dict[str, Any]:
    """Our embedding pass vs a plain tokenizer+model loop over the same texts, same batch size."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from dormant.adapters.encoder import TextEncoder

    texts = [e.text for e in load_corpus("wordnet", limit=n, seed=seed)]
    enc = TextEncoder()
    enc.encode(texts[:64])  # load + warm up
    t0 = time.perf_counter()
    enc.encode(texts)
    ours = n / (time.perf_counter() - t0)
    path = str(enc.resolve_path())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
    bs, maxlen = enc.batch_size, enc.max_length
    with torch.inference_mode():
        model(
            **tok(texts[:64], padding=True, truncation=True, max_length=maxlen, return_tensors="pt")
        )
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            b = tok(
                texts[i : i + bs],
                padding=True,
                truncation=True,
                max_length=maxlen,
                return_tensors="pt",
            )
            h = model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1)
            _ = (h * m).sum(1) / m.sum(1)
        raw = n / (time.perf_counter() - t0)
    return {
        "texts": n,
        "dormant_per_s": round(ours, 1),
        "raw_encoder_per_s": round(raw, 1),
        "ratio": round(ours / raw, 3),
        "batch_size": bs,
        "max_length": maxlen,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="records per quality dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/data_scan.json")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: quality,speed,embed")
    ap.add_argument("--data", default="labelled,instruction", help="which datasets to build")
    ap.add_argument("--mining-only", action="store_true", help="fused scan = trigger mining")
    ap.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(Path(args.probe[0]), int(args.probe[1]))
        return
    skip = set(filter(None, args.skip.split(",")))
    global SCANNERS
    if args.mining_only:
        SCANNERS = ["trigger-mining"]
    kinds = ("token", "sentence") if args.quick else KINDS
    rates = (0.01,) if args.quick else RATES
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "load_average_at_start": os.getloadavg(),
    }
    if "quality" not in skip:
        which = tuple(args.data.split(","))
        result["quality"] = quality(args.n, kinds, rates, args.seed, which)
    if "speed" not in skip:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "big.jsonl"
            total = big_file(path, args.seed)
            sizes = [s for s in (20_000, 40_000, 80_000, 160_000) if s <= total]
            if args.quick:
                sizes = sizes[:2]
            result["speed"] = throughput(path, sizes)
    if "embed" not in skip:
        result["embedding"] = embedding_speed(500 if args.quick else 2000, args.seed)
    result["load_average_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
