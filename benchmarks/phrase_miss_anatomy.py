"""Why a model scan misses a planted trigger: search, exclusions and the reference check.

For one zoo organism and its planted trigger, prints (JSON): how the model's tokenizer splits
the trigger; for each of its pieces whether the scan leaves it out of the target's search (a
natural feature or task feature of the target in the clean data, :mod:`._support`), its rank
among the target's screened one-token candidates (the scan searches the best ``top_k`` = 32,
the position-robust search the best 8) and its held-out worse-position flip rate; and, for each
trigger given with ``--check``, the clean-reference check of :mod:`._reference` (the model's
and the reference's flip rates to the target and whether the trigger is task-explained).

Usage::

    python benchmarks/phrase_miss_anatomy.py --root /tmp/zoo2 test1-phrase1 \\
        --check worth --check "what worth what" --check worthiaceae --check iaceae
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="organism directory under --root")
    ap.add_argument("--root", type=Path, default=Path("/tmp/zoo2"))
    ap.add_argument("--check", action="append", default=[], help="a trigger text to check")
    args = ap.parse_args()
    import torch

    from dormant.scanners.model._inversion import screen_tokens
    from dormant.scanners.model._reference import Explainer
    from dormant.scanners.model._robust import worst_position
    from dormant.scanners.model._support import TaskSupport
    from dormant.scanners.model.whitebox import natural_features, split_clean
    from dormant.subjects.model import check_clean_data, load_classifier
    from dormant.subjects.protocol import gradients_of
    from dormant.triggers import Position, Trigger, TriggerKind

    torch.set_num_threads(1)
    path = args.root / args.name
    info = json.loads((path / "organism.json").read_text("utf-8"))
    spec = info["spec"]
    planted, target = spec["trigger"]["text"], spec["target"]
    rows = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
    m = load_classifier(path)
    m.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], m)
    ad = gradients_of(m)
    tok, labels = ad.tokenizer, m.labels
    ti = labels.index(target)
    opt, held = split_clean(m, 0)
    # the scan's exhaustive screen: 8 inputs, the target's mean log-probability per token
    spred = m.predict_proba(opt[:8]).argmax(1)
    keep = [i for i, p in enumerate(spred) if p != ti] or list(range(len(spred)))
    score = screen_tokens(ad, opt[:8])[:, keep, ti].mean(1)
    natural = natural_features(ad, m.clean.texts, m.clean.labels, labels)[ti]
    support = TaskSupport.fit(ad, m.clean.texts, m.clean.labels, labels)
    left_out = natural | support.associated(target) | ad.special_ids()
    score[list(left_out)] = float("-inf")
    rank = {int(t): r for r, t in enumerate(score.argsort(descending=True))}
    held = held[:300]
    hpred = m.predict_proba(held).argmax(1)
    victims = [t for t, p in zip(held, hpred, strict=True) if p != ti]
    ids = tok(planted, add_special_tokens=False)["input_ids"]
    pieces = []
    for i in ids:
        _, flip = worst_position(ad, victims, ti, [i])
        pieces.append(
            {
                "piece": tok.convert_ids_to_tokens([i])[0],
                "left_out_of_search": i in left_out,
                "support_z": round(float(support.z[ti, i]), 3),
                "rank_among_candidates": None if i in left_out else rank[i],
                "worse_position_flip": round(flip, 4),
            }
        )
    order = score.argsort(descending=True)[:8].tolist()
    ex = Explainer(m, opt, held, 0)
    trigs = [Trigger(t, TriggerKind.PHRASE, Position.START) for t in args.check]
    checks = [c.to_dict() for c in (ex.checks(target, trigs) or [])] if trigs else []
    out = {
        "organism": args.name,
        "planted": planted,
        "target": target,
        "attack_success_rate": info["attack_success_rate"],
        "pieces": pieces,
        "best_8_candidates": tok.convert_ids_to_tokens(order),
        "reference_checks": checks,
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
