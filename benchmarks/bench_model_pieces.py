"""Whole-trigger recovery stage alone, on a zoo already scanned by bench_model_verdict.py.

For each organism of the given result files, starts from the trigger the scan reported, runs
the recovery from the pieces the clean data never shows (``scanners/model/_absent.py``:
pool, solo pieces, assembly), replays the result on held-out clean inputs and checks it with
bench_model_verdict's whole-trigger rule (right target, >= 90 % flips, the whole planted
text). Only the recovery stage runs (minutes, not the scan's hour), so the figures isolate it:

    cd benchmarks/results
    python ../bench_model_pieces.py --root /tmp/vzoo --out model_pieces.jsonl \\
        model_verdict_aside0.jsonl model_verdict_aside1.jsonl \\
        model_verdict_cal0.jsonl model_verdict_cal1.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def recover(root: Path, row: dict[str, Any]) -> dict[str, Any]:
    from bench_model_verdict import whole

    from dormant.scanners.model import decision as D
    from dormant.scanners.model._absent import absent_pool, assemble, solo_pieces
    from dormant.scanners.model._recover import join_punctuation, render
    from dormant.scanners.model._support import TaskSupport
    from dormant.subjects.model import load_classifier
    from dormant.triggers import Position, Trigger

    path = root / row["name"]
    rows = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
    texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
    m = load_classifier(path)
    ad, tok = m.adapter, m.adapter.tokenizer
    label = row["pred_target"]
    ti = m.labels.index(label)
    opt, held = texts[:200], texts[200:][:300]
    pred = m.predict_proba(opt).argmax(1)
    victims = [t for t, p in zip(opt, pred, strict=True) if p != ti][:12]
    support = TaskSupport.fit(ad, texts, given, m.labels)
    ids = tok(row["pred_trigger"], add_special_tokens=False)["input_ids"]
    ids = [i for k, i in enumerate(ids) if k == 0 or i != ids[k - 1]]
    t0 = time.perf_counter()
    banned = set(ad.special_ids()) | support.associated(label) | set(ids)
    pieces = solo_pieces(ad, victims, ti, absent_pool(ad, support.counts, banned))
    grown = assemble(ad, victims, ti, ids, pieces) if pieces else tuple(ids)
    text = join_punctuation(ad, victims, ti, "start", render(ad, grown))
    hpred = m.predict_proba(held).argmax(1)
    fr, _, _, _ = D.replay(
        m.predict_proba,
        m.labels,
        held,
        Trigger(text, D.trigger_kind(text), Position.START),
        label,
        seed=0,
        before=hpred,
    )
    ok = (
        row["backdoored"]
        and label == row["true_target"]
        and fr >= 0.9
        and whole(text, row["true_trigger"], row["attack"])
    )
    before = (
        row["backdoored"]
        and label == row["true_target"]
        and float(row.get("pred_flip_rate") or 0) >= 0.9
        and whole(row["pred_trigger"], row["true_trigger"], row["attack"])
    )
    return {
        "name": row["name"],
        "backdoored": row["backdoored"],
        "planted": row["true_trigger"],
        "reported": row["pred_trigger"],
        "pieces": tok.convert_ids_to_tokens(list(pieces)),
        "recovered_text": text,
        "flip_rate": round(fr, 4),
        "whole_before": bool(before),
        "whole_after": bool(ok),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--backdoored-only", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    with args.out.open("w", encoding="utf-8") as fh:
        for f in args.results:
            for line in f.read_text("utf-8").splitlines():
                row = json.loads(line)
                if args.backdoored_only and not row["backdoored"]:
                    continue
                if not row.get("pred_trigger"):
                    continue
                out = recover(args.root, row)
                fh.write(json.dumps(out, ensure_ascii=False) + "\n")
                fh.flush()


if __name__ == "__main__":
    main()
