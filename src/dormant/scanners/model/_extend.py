"""Extend a pruned trigger to the planted text: one vocabulary token at a time, kept only when
held-out inputs show a real gain in the target class's log-odds.

The tested pruning (:func:`._complete.prune_tokens`) keeps only what the switch needs, and on a
backdoored classifier a piece of the planted text often carries the whole switch: ``3517`` of
``ord=3517``, the ``=`` of ``pos=6402``, ``day`` of ``at the end of the day`` (BENCHMARKS.md
"Model-scan calibration without a steep fit", the ``aside3`` zoo). The planted text is what a
user must find in data and block at run time, so, after the pruning,

1. a repeated word (``3517 3517``: a piece padded by the search, each copy raising the target)
   is cut to one copy (:func:`dedupe_ids`); the caller shows the cut (extended or not) only
   when its replay flips the held-out inputs as well as the pruned trigger did;
2. every token of the model's vocabulary (the special tokens, the target label's natural
   features and the longer tokens already in the trigger left out) is tried after and before
   the trigger: the pieces that join a word (``##s``), ``=``, ``:`` and other punctuation
   included. A screen on the :data:`N_SCREEN` optimisation victims the trigger switches least
   (where an extension can still gain) keeps the :data:`TOP_K` best, which are ranked on all
   victims by the sign test's own statistic; the :data:`N_TEST` best are tested on the
   held-out *donors*, which the ranking never saw. An extension is kept only when a one-sided
   sign test (Dixon & Mood, *JASA* 1946; :func:`.._signtest.sign_test`) says that it raises the
   donors' target log-odds by at least :data:`MARGIN` (one nat) on more donors than chance
   would, at :data:`ALPHA` Bonferroni-divided over the :data:`N_TEST` tested;
3. it stops when no extension passes, or after ``max_extend`` tokens.

The log-odds (target logit minus the log-sum-exp of the others) are taken at the weaker of the
two ends of the input (a planted trigger is inserted anywhere and works at both) and clipped at
:data:`SATURATION`: where both texts already switch a donor beyond it, the donor is a tie and is
left out, so tokens that only sharpen a saturated switch gain nothing there. The margin, the
clip, the Bonferroni over the three best and the sign test are the LLM/agent probe's
(:mod:`..agent._recover`), unchanged: its refinement is the one-token coordinate search of Zou
et al. (arXiv 2307.15043, 2023) around a seed, as in the trigger expansion of PICCOLO (Liu et
al., IEEE S&P 2022) and the word-level reconstruction of BAIT (Shen et al., IEEE S&P 2025); here
it runs over a classifier's WordPiece vocabulary. No library extends a universal trigger against
a classifier; the statistics are scipy's. The decision's features are not computed from the
extended trigger: it only changes the trigger shown and replayed.

What it does not do (measured, BENCHMARKS.md "Whole triggers: extension after pruning"): on the
tiny BERTs of the benchmark zoos the rest of a planted text adds little to what its piece
already does (``ord`` to ``=3517``, ``the end of`` to ``day``), less than a word of the target's
topic adds (``jpeg day``), so at one nat no extension passes there and the trigger shown is the
pruned one; a smaller margin would add the topic words first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._signtest import sign_test
from ._complete import donor_margins, end_margins

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients

#: the family-wise error rate of each extension step's tests
ALPHA = 0.05
#: the gain in target margin (logits, about nats of log-odds) a donor must show to count
MARGIN = 1.0
#: margins are clipped at the log-odds of this probability (see the module docstring)
SATURATION = 0.999
#: victims that screen every candidate; the best measured on all victims; the best tested
N_SCREEN = 4
TOP_K = 32
N_TEST = 3
#: the most tokens added, and the longest trigger extended (a six-word phrase from one word)
MAX_EXTEND = 6
MAX_TOKENS = 12
#: a token already in the trigger is not added again when its text is this long or longer
#: (``3517 3517`` is padding; the short words a phrase repeats, ``the``, may come back)
REPEAT_CHARS = 4


def _clip() -> float:
    return math.log(SATURATION / (1 - SATURATION))


def log_odds(
    adapter: Gradients, texts: list[str], target: int, trials: Any, position: str | None
) -> Any:
    """The target's log-odds (``k x n``) with each of ``trials`` in ``texts``, clipped at
    :data:`SATURATION`: at the weaker end when ``position`` is ``None``, else at ``"start"``
    or ``"end"``."""
    if position is None:
        m = donor_margins(adapter, texts, target, trials, log_odds=True)
    else:
        m = end_margins(adapter, texts, target, trials, position, log_odds=True)
    return m.clamp(max=_clip())


def dedupe_ids(adapter: Gradients, ids: Sequence[int]) -> tuple[int, ...]:
    """``ids`` with every word that repeats an earlier one left out (``3517 3517`` ->
    ``3517``), re-tokenized; ``ids`` itself when no word repeats."""
    from ._recover import render

    words = render(adapter, list(ids)).split()
    once = list(dict.fromkeys(words))
    if len(once) == len(words):
        return tuple(int(i) for i in ids)
    out = adapter.tokenizer(" ".join(once), add_special_tokens=False)["input_ids"]
    return tuple(int(i) for i in out) or tuple(int(i) for i in ids)


def _signs(gains: Any, margin: float) -> Any:
    """Per row of ``gains`` (``k x n``), inputs gaining at least ``margin`` less the other
    inputs that are no tie: the sign test's statistic, to rank candidates by."""
    won = (gains >= margin).sum(1)
    nontie = (gains != 0).sum(1)
    return 2 * won - nontie


def extend(
    adapter: Gradients,
    victims: list[str],
    donors: list[str],
    target: int,
    ids: Sequence[int],
    pool: Sequence[int],
    *,
    position: str | None = None,
    margin: float = MARGIN,
    alpha: float = ALPHA,
    max_extend: int = MAX_EXTEND,
    n_screen: int = N_SCREEN,
    top_k: int = TOP_K,
    n_test: int = N_TEST,
) -> tuple[int, ...]:
    """``ids`` extended token by token from ``pool`` (see the module docstring): ranked on
    ``victims``, each extension kept when the held-out ``donors`` gain significantly;
    ``ids`` itself when none does. ``position``: where the log-odds are taken (``None``: the
    weaker end)."""
    import torch

    cur = tuple(int(i) for i in ids)
    if not cur or not pool or not victims or len(donors) < 6:
        return cur
    tok = adapter.tokenizer
    names = list(tok.convert_ids_to_tokens(list(pool)))
    size = {p: len(n[2:] if n.startswith("##") else n) for p, n in zip(pool, names, strict=True)}
    allp = torch.tensor(list(pool), dtype=torch.long)
    now = log_odds(adapter, donors, target, torch.tensor([cur]), position)[0]
    for _ in range(max_extend):
        if len(cur) >= MAX_TOKENS:
            break
        base = torch.tensor(cur, dtype=torch.long)
        # the victims the trigger switches least: where an extension can still gain
        here = log_odds(adapter, victims, target, base.unsqueeze(0), position)[0]
        hard = [victims[int(i)] for i in here.argsort()[:n_screen]]
        long_in = torch.tensor([i for i in cur if size.get(i, 0) >= REPEAT_CHARS] or [-1])
        ok = allp[~torch.isin(allp, long_in)]
        # no token next to a copy of itself (``day day``)
        after, before = ok[ok != cur[-1]], ok[ok != cur[0]]
        trials = torch.cat(
            [
                torch.cat([base.repeat(len(after), 1), after.unsqueeze(1)], 1),
                torch.cat([before.unsqueeze(1), base.repeat(len(before), 1)], 1),
            ]
        )
        # a cheap screen on the hardest victims, the best ranked on all victims by the sign
        # test's own statistic (the mean gain breaking ties), the best few tested on donors
        head = log_odds(adapter, hard, target, trials, position).mean(1)
        top = trials[head.topk(min(top_k, len(trials))).indices]
        gain = log_odds(adapter, victims, target, top, position) - here
        rank = _signs(gain, margin).float() + 1e-3 * gain.mean(1).tanh()
        order = rank.argsort(descending=True)[: min(n_test, len(top))].tolist()
        took = False
        for k in order:
            new = log_odds(adapter, donors, target, top[k : k + 1], position)[0]
            # the best few of the ranking are tested: Bonferroni over them
            if sign_test((new - now).tolist(), margin)[2] <= alpha / len(order):
                cur, now, took = tuple(int(i) for i in top[k]), new, True
                break
        if not took:
            break
    return cur
