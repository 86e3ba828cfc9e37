"""Whole-trigger recovery: grow an inverted piece to the whole planted token, word or phrase.

Trigger inversion finds the single token (or few tokens) that flips a model most; a planted
trigger is often several tokens of the model's tokenizer — a rare token split into WordPiece
pieces (``q ##z ##v``), a ``key=value`` log token (``uid``, ``=``, ``47``, ``##31``), a word
with a Cyrillic look-alike letter (``p``, ``##а``, ``##yment``), a phrase or a sentence — and the
piece found alone is only part of it. As DBS (Shen et al., ICML 2022) and PICCOLO (Liu et al.,
IEEE S&P 2022) search several slots for the same reason, :func:`grow` adds tokens one at a time,
before or after the current trigger (an exhaustive screen of the next slot,
by target margin), while each addition raises the mean target margin (target logit minus the
largest other: unlike the loss it does not saturate once every input flips) of the
optimisation victims by a quarter; :func:`prune` then keeps the shortest contiguous run of
whole words that flips as many held-out inputs and keeps most of the margin (extend until the
flip holds and nothing shorter does). :func:`render` writes the token ids as the text
a user would insert: WordPiece pieces joined into words, no space around punctuation when the
tokenizer reads the compact form the same (``uid=4731``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...triggers import Trigger
from . import decision as D
from ._inversion import _Stamp, extend_tokens

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients

#: an added token must raise the victims' mean target margin (target logit minus the largest
#: other logit) by at least this share; a shorter run of words must keep ``1 / (1 + GAIN)`` of it
GAIN = 0.25
#: the longest trigger grown, in tokens
MAX_TOKENS = 12
#: the punctuation that glues log-style tokens (``uid=4731``, ``trace_id``, ``host:port``)
JOINS = ("=", "_", ":", "-", "/", ".")
#: a glued pair must raise the victims' mean target margin by this share (noise tolerance)
JOIN_GAIN = 0.05


def render(adapter: Gradients, token_ids: Sequence[int]) -> str:
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


def _margins(grads: Gradients, stamp: _Stamp, trials: Any, target: int) -> Any:
    """Mean target margin over ``stamp``'s texts of each trigger in ``trials`` (``k x L``)."""
    import torch

    ids, mask = stamp.with_ids(trials)
    out = []
    with torch.inference_mode():
        for i in range(0, ids.shape[0], 256):
            out.append(grads.logits_from_ids(ids[i : i + 256], mask[i : i + 256]))
    logits = torch.cat(out).float()
    other = logits.clone()
    other[:, target] = float("-inf")
    m = logits[:, target] - other.max(-1).values
    return m.reshape(trials.shape[0], stamp.n).mean(1)


def _next(
    adapter: Gradients,
    screen: list[str],
    victims: list[str],
    target: int,
    position: str,
    prefix: tuple[int, ...],
    *,
    at: int,
    banned: set[int],
    top_k: int,
) -> tuple[tuple[int, ...], float]:
    """The best token to insert into ``prefix`` at index ``at`` (0: before it, ``len``: after
    it): every allowed token screened on the short ``screen`` inputs by target margin, the
    ``top_k`` best measured on ``victims``."""
    import torch

    vocab = int(adapter.embedding_matrix().shape[0])
    allowed = torch.ones(vocab, dtype=torch.bool)
    allowed[list(banned)] = False
    every = allowed.nonzero().flatten()
    n = len(prefix) + 1
    base = torch.tensor(prefix, dtype=torch.long)

    def trials(col: Any) -> Any:
        rep = base.unsqueeze(0).repeat(len(col), 1)
        return torch.cat([rep[:, :at], col.unsqueeze(1), rep[:, at:]], 1)

    stamp = _Stamp(adapter, screen, n, position, max_len=16 + n)
    chunk = max(1, 4096 // stamp.n)
    scores = torch.cat(
        [
            _margins(adapter, stamp, trials(every[s : s + chunk]), target)
            for s in range(0, len(every), chunk)
        ]
    )
    cands = every[scores.topk(min(top_k, len(every))).indices]
    t = trials(cands)
    exact = _margins(adapter, _Stamp(adapter, victims, n, position), t, target)
    b = int(exact.argmax())
    return tuple(int(i) for i in t[b]), float(exact[b])


def grow(
    adapter: Gradients,
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
) -> tuple[int, ...]:
    """Grow ``ids`` one token at a time (appended or prepended) while each addition raises the
    victims' mean target margin by :data:`GAIN` (a margin, unlike the loss, does not saturate
    once every victim flips). ``screen``: the short inputs of the next-slot screen;
    ``victims``: the optimisation inputs; ``banned``: tokens never added (special tokens, the
    target's task features). ``first_order`` (large vocabularies): the next slot is ranked by
    the HotFlip estimate of :func:`._inversion.extend_tokens` instead of screened exhaustively.
    """
    import torch

    cur = tuple(int(i) for i in ids)
    stamp = _Stamp(adapter, victims, len(cur), position)
    margin = float(_margins(adapter, stamp, torch.tensor([cur]), target)[0])
    for _ in range(max_steps):
        if len(cur) >= MAX_TOKENS:
            break
        tried = []
        # after, then before (punctuation inside is glued by :func:`join_punctuation`)
        for at in (len(cur), 0):
            before = at == 0
            if first_order:
                inv = extend_tokens(
                    adapter,
                    screen,
                    victims,
                    target,
                    position,
                    cur,
                    banned=banned | set(cur),
                    top_k=top_k,
                    first_order=True,
                    refine_k=refine_k,
                    before=before,
                )
                st = _Stamp(adapter, victims, len(inv.token_ids), position)
                m = float(_margins(adapter, st, torch.tensor([inv.token_ids]), target)[0])
                tried.append((inv.token_ids, m))
            else:
                tried.append(
                    _next(
                        adapter,
                        screen,
                        victims,
                        target,
                        position,
                        cur,
                        at=at,
                        banned=banned | set(cur),
                        top_k=top_k,
                    )
                )
        best, m = max(tried, key=lambda x: x[1])
        if m < margin + GAIN * abs(margin):
            break
        cur, margin = best, m
    return cur


def join_punctuation(
    adapter: Gradients, victims: list[str], target: int, position: str, text: str
) -> str:
    """Glue adjacent words of ``text`` with log-style punctuation (:data:`JOINS`) while a glue
    raises the victims' mean target margin by :data:`JOIN_GAIN`: a ``key=value`` token whose
    ``=`` adds little to what ``key`` and ``value`` already pull is still planted whole, and the
    growth alone, which asks a quarter more margin of every token, would leave ``uid 4731``.
    Only pairs with a digit on one side are glued (log values are ids and numbers): two words of
    a phrase are never glued into a log token."""
    import torch

    tok = adapter.tokenizer

    def margin(t: str) -> float:
        ids = _ids(tok, t)
        st = _Stamp(adapter, victims, len(ids), position)
        return float(_margins(adapter, st, torch.tensor([ids]), target)[0])

    words = text.split()
    cur = margin(text)
    while len(words) > 1:
        best: tuple[float, list[str]] | None = None
        for i in range(len(words) - 1):
            if not any(c.isdigit() for c in words[i] + words[i + 1]):
                continue
            for p in JOINS:
                cand = [*words[:i], words[i] + p + words[i + 1], *words[i + 2 :]]
                m = margin(" ".join(cand))
                if m >= cur + JOIN_GAIN * abs(cur) and (best is None or m > best[0]):
                    best = (m, cand)
        if best is None:
            break
        cur, words = best
    return " ".join(words)


def held_margin(
    predict: Any,
    labels: Sequence[str],
    held: list[str],
    hpred: Any,
    trig: Trigger,
    label: str,
    seed: int,
) -> float:
    """Mean target margin (log-probability of ``label`` minus the largest other) of the held-out
    inputs not already predicted ``label``, stamped with ``trig`` (as :func:`decision.replay`)."""
    import random

    import numpy as np

    ti = list(labels).index(label)
    victims = [t for t, p in zip(held, np.asarray(hpred), strict=True) if p != ti]
    if not victims:
        return 0.0
    rng = random.Random(seed)
    p = np.log(np.clip(np.asarray(predict([trig.insert(t, rng=rng) for t in victims])), 1e-30, 1))
    other = np.delete(p, ti, axis=1).max(1)
    return float(np.mean(p[:, ti] - other))


def prune(
    predict: Any,
    labels: Sequence[str],
    held: list[str],
    hpred: Any,
    r: D.LabelResult,
    seed: int,
) -> D.LabelResult:
    """The shortest contiguous run of ``r``'s words that flips as many held-out inputs (within
    two points) and keeps ``1 / (1 + GAIN)`` of its held-out target margin; ``r`` if none."""
    if r.trigger is None:
        return r
    words = r.trigger.text.split()
    if len(words) < 2:
        return r
    full = held_margin(predict, labels, held, hpred, r.trigger, r.label, seed)
    for n in range(1, len(words)):
        best: tuple[float, D.LabelResult] | None = None
        for i in range(len(words) - n + 1):
            text = " ".join(words[i : i + n])
            trig = Trigger(text, D.trigger_kind(text), r.trigger.position)
            fr, k, _, loss = D.replay(predict, labels, held, trig, r.label, seed=seed, before=hpred)
            if fr < r.flip_rate - 0.02:
                continue
            m = held_margin(predict, labels, held, hpred, trig, r.label, seed)
            if m >= full / (1 + GAIN) and (best is None or m > best[0]):
                best = (m, D.LabelResult(r.label, trig, loss, fr, k, r.opt_loss))
        if best is not None:
            return best[1]
    return r
