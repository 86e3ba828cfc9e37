"""The model scan's absent-token screen: the two-end rule against the staged screen.

For each organism directory given (a zoo organism: ``organism.json``, ``clean_eval.jsonl`` and
the model), the tokens that flip at least ``SCREEN_FLIP`` of six victims at both ends, by the
two-end rule (:func:`dormant.scanners.model._absent.both_ends` on every token) and by the
staged :func:`dormant.scanners.model._absent.screen`, with the CPU seconds of each::

    OMP_NUM_THREADS=1 python benchmarks/screen_staged_check.py /tmp/zoo2/root/test1-rare-word7
    OMP_NUM_THREADS=1 python benchmarks/screen_staged_check.py --sample 2000 DIR  # MiniLM

Without ``--sample`` the whole vocabulary is screened; with it, a random sample (seed 0) of the
tokens the organism's clean records never show (the pool the scan screens).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("organisms", nargs="+", type=Path)
    ap.add_argument("--sample", type=int, default=0, help="tokens of the absent pool (0: all)")
    args = ap.parse_args()

    import torch

    from dormant.scanners.model._absent import SCREEN_FLIP, absent_pool, both_ends, screen
    from dormant.scanners.model._support import TaskSupport
    from dormant.subjects.model import load_classifier

    torch.set_num_threads(1)
    for d in args.organisms:
        m = load_classifier(d)
        ad = m.adapter
        spec = json.loads((d / "organism.json").read_text("utf-8"))["spec"]
        target = spec.get("target")
        ti = m.labels.index(target) if target in m.labels else 0
        rows = [json.loads(x) for x in (d / "clean_eval.jsonl").read_text("utf-8").splitlines()]
        texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
        pred = m.predict_proba(texts[:200]).argmax(1)
        victims = [t for t, p in zip(texts[:200], pred, strict=True) if p != ti][:6]
        if args.sample:
            support = TaskSupport.fit(ad, texts, given, m.labels)
            banned = set(ad.special_ids()) | support.associated(m.labels[ti])
            pool = torch.tensor(absent_pool(ad, support.counts, banned))
            pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
            tokens = pool[pick[: args.sample]].unsqueeze(1)
            what = f"{len(tokens)} of {len(pool)} absent"
        else:
            tokens = torch.arange(int(ad.embedding_matrix().shape[0])).unsqueeze(1)
            what = f"all {len(tokens)}"
        t0 = time.process_time()
        flip, _ = both_ends(ad, victims, ti, tokens)
        rule = set((flip >= SCREEN_FLIP - 1e-6).nonzero().flatten().tolist())
        t1 = time.process_time()
        staged = set(screen(ad, victims, ti, tokens).tolist())
        t2 = time.process_time()
        print(
            json.dumps(
                {
                    "organism": d.name,
                    "tokens": what,
                    "passed_rule": len(rule),
                    "passed_staged": len(staged),
                    "equal": rule == staged,
                    "cpu_rule_s": round(t1 - t0, 1),
                    "cpu_staged_s": round(t2 - t1, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
