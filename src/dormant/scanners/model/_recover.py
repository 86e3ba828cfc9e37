"""Whole-trigger recovery: grow an inverted piece to the whole planted token, word or phrase.

Trigger inversion finds the single token (or few tokens) that flips a model most; a planted
trigger is often several tokens of the model's tokenizer — a rare token split into WordPiece
pieces (``q ##z ##v``), a ``key=value`` log token (``uid``, ``=``, ``47``, ``##31``), a word
with a Cyrillic look-alike letter (``p``, ``##а``, ``##yment``), a phrase or a sentence — and the
piece found alone is only part of it. As DBS (Shen et al., ICML 2022) and PICCOLO (Liu et al.,
IEEE S&P 2022) search several slots for the same reason, :func:`grow` adds tokens one at a time,
before or after the current trigger (an exhaustive screen of the next slot,
:func:`._inversion.extend_tokens`), while each addition at least halves the loss toward the
target on the optimisation victims; :func:`prune` then keeps the shortest contiguous run of
whole words that flips as many held-out inputs and pulls them at least half as hard (extend
until the flip holds and nothing shorter does). :func:`render` writes the token ids as the text
a user would insert: WordPiece pieces joined into words, no space around punctuation when the
tokenizer reads the compact form the same (``uid=4731``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ...triggers import Trigger
from . import decision as D
from ._inversion import _eval, _Stamp, extend_tokens

#: an added token must at least halve the victims' loss to be kept (and a shorter run of
#: words must keep at least half the pull, see :func:`prune`)
GAIN = 0.5
#: below this loss the model's probability of the target is saturated (> 99.9 %)
SATURATED = 1e-3
#: the longest trigger grown, in tokens
MAX_TOKENS = 12


def render(adapter: Any, token_ids: Sequence[int]) -> str:
    """The text of ``token_ids`` as a user would type it (see the module docstring)."""
    tok = adapter.tokenizer
    toks = list(tok.convert_ids_to_tokens(list(token_ids)))
    if toks and toks[0].startswith("##"):
        toks[0] = toks[0][2:]
    text = str(tok.convert_tokens_to_string(toks)).strip() or "".join(toks)
    compact = re.sub(r"\s*([^\w\s])\s*", r"\1", text)
    if compact != text and _ids(tok, compact) == _ids(tok, text):
        return compact
    return text


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def victim_loss(adapter: Any, victims: list[str], target: int, position: str, ids: Any) -> float:
    """Mean cross-entropy toward ``target`` of ``victims`` with trigger ``ids`` at ``position``."""
    import torch

    stamp = _Stamp(adapter, victims, len(ids), position)
    loss, _ = _eval(adapter.model, stamp, torch.tensor([list(ids)], dtype=torch.long), target)
    return float(loss[0])


def grow(
    adapter: Any,
    screen: list[str],
    victims: list[str],
    target: int,
    position: str,
    ids: Sequence[int],
    *,
    banned: set[int],
    top_k: int,
    max_steps: int,
    first_order: bool = False,
    refine_k: int = 1024,
) -> tuple[tuple[int, ...], float, float]:
    """Grow ``ids`` one token at a time (appended or prepended) while the loss halves.

    Returns the grown ids, their victims' loss and the starting loss. ``screen``: the short
    inputs of the exhaustive next-slot screen; ``victims``: the optimisation inputs the loss is
    measured on; ``banned``: tokens never added (special tokens, the target's task features).
    """
    cur = tuple(int(i) for i in ids)
    start = loss = victim_loss(adapter, victims, target, position, cur)
    for _ in range(max_steps):
        if loss < SATURATED or len(cur) >= MAX_TOKENS:
            break
        tried = [
            extend_tokens(
                adapter,
                screen,
                victims,
                target,
                position,
                cur,
                banned=banned | set(cur),
                top_k=top_k,
                first_order=first_order,
                refine_k=refine_k,
                before=before,
            )
            for before in (False, True)
        ]
        best = min(tried, key=lambda inv: inv.loss)
        if best.loss > GAIN * loss:
            break
        cur, loss = best.token_ids, best.loss
    return cur, loss, start


def prune(
    predict: Any,
    labels: Sequence[str],
    held: list[str],
    hpred: Any,
    r: D.LabelResult,
    seed: int,
) -> D.LabelResult:
    """The shortest contiguous run of ``r``'s words that flips as many held-out inputs (within
    two points) with a held-out loss at most ``1 / GAIN`` times as high; ``r`` if none."""
    if r.trigger is None:
        return r
    words = r.trigger.text.split()
    if len(words) < 2:
        return r
    for n in range(1, len(words)):
        best: D.LabelResult | None = None
        for i in range(len(words) - n + 1):
            text = " ".join(words[i : i + n])
            trig = Trigger(text, D.trigger_kind(text), r.trigger.position)
            fr, k, _, loss = D.replay(predict, labels, held, trig, r.label, seed=seed, before=hpred)
            ok = fr >= r.flip_rate - 0.02 and loss <= max(r.loss, SATURATED) / GAIN
            if ok and (best is None or loss < best.loss):
                best = D.LabelResult(r.label, trig, loss, fr, k, r.opt_loss)
        if best is not None:
            return best
    return r
