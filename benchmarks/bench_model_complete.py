"""Whole triggers, recovery stage alone on the model-scan test split: tested pruning, and growth.

From each model's trigger as the full scan reported it (a rows file of
``compare_model_scan.py scan``), runs on held-out inputs:

``tighten``
    what the scan now does after its proof: :func:`dormant.scanners.model._complete.
    prune_tokens` (drop every token the switch holds without, by a paired exact McNemar test,
    Holm-corrected);
``grow``
    the growth that was tried and is **not** run by the scan: from the reported trigger, add
    tokens the clean data never shows, one at a time, before or after, each the best of a
    screen of every such token on the optimisation victims, kept only when it stands out of
    the screen (Iglewicz and Hoaglin's modified z >= 3.5) and raises the held-out donors'
    target margins significantly (one-sided Wilcoxon signed-rank, Bonferroni over the steps);
    then ``tighten``;
``complete``
    what the scan now does: the trigger's first or last WordPiece piece completed to its word
    from the pieces the clean data never shows (:func:`dormant.scanners.model._words.
    complete_word`, a one-sided exact McNemar test of the held-out flips per added piece),
    then ``tighten``. With ``--reference``, an addition the clean reference classifier
    (all-MiniLM-L6-v2 + logistic regression on the clean data) moves toward the target
    (Wilcoxon on 40 donors, p < 0.05) is refused as a natural cue.

Each result is replayed on the held-out inputs and judged by ``bench_model_verdict.whole``
(right target, >= 90 % held-out flips, the whole planted text), beside the reported trigger::

    PYTHONPATH=$PWD/src python benchmarks/bench_model_complete.py --root /tmp/zoo2/root \\
        --rows benchmarks/results/zoo_recipe2_after.jsonl --mode tighten \\
        --out benchmarks/results/model_complete_tighten.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

#: an addition must stand out of the screen of every pool token at its slot
OUTLIER_Z = 3.5
MAX_STEPS = 6
N_SCREEN = 3
TOP_K = 32
ALPHA = 0.05


def modified_z(scores: Any, per_slot: int) -> Any:
    """Iglewicz and Hoaglin's modified z-score of each score among the trials of its slot
    (``scores`` holds consecutive blocks of ``per_slot`` trials, one block per slot)."""
    import torch

    out = []
    for blk in scores.split(per_slot):
        med = blk.median()
        mad = (blk - med).abs().median().clamp_min(1e-6)
        out.append(0.6745 * (blk - med) / mad)
    return torch.cat(out)


def gain_p(new: Any, old: Any) -> float:
    """One-sided Wilcoxon signed-rank p-value that ``new`` margins exceed the paired ``old``
    ones (1.0 when every pair is equal)."""
    import numpy as np
    from scipy.stats import wilcoxon

    d = np.asarray(new, dtype=float) - np.asarray(old, dtype=float)
    if not np.any(np.abs(d) > 1e-9):
        return 1.0
    return float(wilcoxon(d, alternative="greater", zero_method="wilcox").pvalue)


def _inserted(cur: tuple[int, ...], pool: Any, at: int) -> Any:
    import torch

    base = torch.tensor(cur, dtype=torch.long).unsqueeze(0).repeat(len(pool), 1)
    return torch.cat([base[:, :at], pool.unsqueeze(1), base[:, at:]], 1)


from dormant.scanners.model._complete import donor_margins  # noqa: E402


def extend(
    adapter: Any,
    victims: list[str],
    donors: list[str],
    target: int,
    ids: Sequence[int],
    pool: Sequence[int],
    *,
    alpha: float = ALPHA,
    max_steps: int = MAX_STEPS,
    n_screen: int = N_SCREEN,
    top_k: int = TOP_K,
    cue: Callable[[int], bool] | None = None,
) -> tuple[int, ...]:
    """``ids`` grown one pool token at a time, before or after, while the best addition on
    ``victims`` raises the ``donors``' margins significantly (see the module docstring).
    ``cue``: tells a token that is a natural cue of the target (the clean reference reads it
    as the target), never added."""
    import torch

    cur = tuple(int(i) for i in ids)
    if not pool or not victims or len(donors) < 6:
        return cur
    cand = torch.tensor(sorted(set(pool)), dtype=torch.long)
    held = donor_margins(adapter, donors, target, torch.tensor([cur]))[0]
    for _ in range(max_steps):
        if len(cur) >= 12:
            break
        free = cand[~torch.isin(cand, torch.tensor(cur, dtype=torch.long))]
        if len(free) == 0:
            break
        trials = torch.cat([_inserted(cur, free, at) for at in (0, len(cur))])
        # a cheap screen of every addition on a few short victims, the best measured on all
        short = 16 + len(cur) + 3
        screen = donor_margins(adapter, victims[:n_screen], target, trials, max_len=short)
        z = modified_z(screen.mean(1), len(free))
        keep = (z >= OUTLIER_Z).nonzero().flatten()
        if len(keep) == 0:
            break
        top = trials[keep[screen.mean(1)[keep].argsort(descending=True)][:top_k]]
        score = donor_margins(adapter, victims, target, top).mean(1)
        best = None
        for i in score.argsort(descending=True).tolist():
            trial = tuple(int(t) for t in top[i])
            added = [t for t in trial if t not in cur]
            if cue is None or not cue(added[0]):
                best = trial
                break
        if best is None:
            break
        new = donor_margins(adapter, donors, target, torch.tensor([best]))[0]
        if gain_p(new, held) >= alpha / max_steps:
            break
        cur, held = best, new
    return cur


def _reference_cue(m: Any, texts: list[str], given: list[str], donors: list[str], label: str):
    """A ``cue`` for :func:`extend`: the clean reference moves the target's probability up."""
    from dormant.scanners.model._recover import render
    from dormant.scanners.model._reference import Reference

    ref = Reference.fit(texts[:200], given[:200], m.labels, (texts[200:], given[200:]))
    if isinstance(ref, str):
        raise SystemExit(f"--reference: {ref}")
    k = list(ref.clf.classes_).index(label)
    base = ref.clf.predict_proba(ref.encoder.encode(donors[:40]))[:, k]

    def cue(t: int) -> bool:
        w = render(m.adapter, [t])
        p = ref.clf.predict_proba(ref.encoder.encode([f"{w} {d}" for d in donors[:40]]))[:, k]
        return gain_p(p, base) < ALPHA

    return cue


def undescribe(text: str) -> str:
    """The text of a trigger from its printable form (``triggers.describe_text``)."""

    def one(m: re.Match[str]) -> str:
        ch = chr(int(m.group(2), 16))
        return m.group(1) if m.group(1) == ch else m.group(1) + ch

    return re.sub(r"(.?)<U\+([0-9A-F]{4,6})>", one, text)


def run_one(root: Path, row: dict[str, Any], mode: str, reference: bool) -> dict[str, Any]:
    import torch
    from bench_model_verdict import whole  # type: ignore[import-not-found]

    from dormant.scanners.model import decision as D
    from dormant.scanners.model._absent import PIECE_FLIP, absent_pool
    from dormant.scanners.model._complete import prune_tokens
    from dormant.scanners.model._recover import render
    from dormant.scanners.model._support import TaskSupport
    from dormant.subjects.model import load_classifier
    from dormant.triggers import Position, Trigger, describe_text

    path = root / row["name"]
    rows = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
    texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
    m = load_classifier(path)
    ad, tok = m.adapter, m.adapter.tokenizer
    label = row["pred_target"]
    ti = m.labels.index(label)
    opt, held = texts[:200], texts[200:][:300]
    pred = m.predict_proba(opt).argmax(1)
    hpred = m.predict_proba(held).argmax(1)
    victims = [t for t, p in zip(opt, pred, strict=True) if p != ti][:12]
    donors = [t for t, p in zip(held, hpred, strict=True) if p != ti]
    ids = tok(undescribe(row["pred_trigger"]), add_special_tokens=False)["input_ids"]
    t0 = time.perf_counter()
    refused: list[str] = []
    if mode == "grow":
        support = TaskSupport.fit(ad, texts, given, m.labels)
        banned = set(ad.special_ids()) | support.associated(label)
        pool = absent_pool(ad, support.counts, banned)
        cue = None
        if reference:
            inner = _reference_cue(m, texts, given, donors, label)

            def cue(t: int) -> bool:
                out = inner(t)
                if out:
                    refused.append(render(ad, [t]))
                return out

        ids = list(extend(ad, victims, donors, ti, ids, pool, cue=cue))
    reported = list(ids)
    if mode == "complete":
        # as the scan: the piece completed to its word from the pool's pieces (_words)
        from dormant.scanners.model._words import complete_word, word_pieces

        ids = list(complete_word(ad, victims, donors, ti, ids, word_pieces(ad, ad.special_ids())))
    # as the scan: only a trigger that switches PIECE_FLIP of the donors at the weaker end
    weak = donor_margins(ad, donors, ti, torch.tensor([ids]))[0] if len(donors) >= 6 else None
    robust = weak is not None and float((weak > 0).float().mean()) >= PIECE_FLIP
    out = prune_tokens(ad, donors, ti, ids) if robust and len(ids) > 1 else tuple(ids)
    text = render(ad, out)
    if text == render(ad, reported):
        # unchanged: the reported text as it was (the rendering may differ only in spacing)
        text = undescribe(row["pred_trigger"])
    fr, _, _, _ = D.replay(
        m.predict_proba,
        m.labels,
        held,
        Trigger(text, D.trigger_kind(text), Position.START),
        label,
        seed=0,
        before=hpred,
    )

    def ok(t: str, f: float) -> bool:
        return bool(
            row["backdoored"]
            and label == row["true_target"]
            and f >= 0.9
            and whole(describe_text(t), row["true_trigger"], row["attack"])
        )

    return {
        "name": row["name"],
        "backdoored": row["backdoored"],
        "planted": row["true_trigger"],
        "reported": row["pred_trigger"],
        "reported_flip": row["pred_flip_rate"],
        "mode": mode + ("+reference" if reference else ""),
        "result": describe_text(text),
        "flip_rate": round(fr, 4),
        "whole_before": ok(row["pred_trigger"], float(row["pred_flip_rate"])),
        "whole_after": ok(text, fr),
        "refused_as_cues": refused,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--rows", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mode", choices=("tighten", "grow", "complete"), default="tighten")
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--backdoored-only", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    done = set()
    if args.out.exists():
        done = {json.loads(x)["name"] for x in args.out.read_text("utf-8").splitlines() if x}
    with args.out.open("a", encoding="utf-8") as fh:
        for line in args.rows.read_text("utf-8").splitlines():
            row = json.loads(line)
            if args.backdoored_only and not row["backdoored"]:
                continue
            if (args.names and row["name"] not in args.names) or row["name"] in done:
                continue
            if not row.get("pred_trigger"):
                continue
            out = run_one(args.root, row, args.mode, args.reference)
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
            fh.flush()


if __name__ == "__main__":
    main()
