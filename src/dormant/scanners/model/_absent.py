"""Whole-trigger recovery from the pieces the clean data never shows.

On a backdoored classifier every piece of a planted trigger is often a trigger on its own: a
model poisoned with ``silver meadow`` switches on ``meadow`` alone, and the target margin of
the whole phrase is within noise of the piece's (the margin saturates), so growth by margin
gain (:func:`._recover.grow`) stops at the piece, or adds a topic word of the target that pulls
as hard (``audio meadow``). Two facts of a plant separate its pieces from such words:

- the clean data the user hands the scan never shows them (a topic word of the target is in
  its clean records): the pool is the tokens with a zero count in every class of the clean
  data, plus the log-style glue punctuation (``=``, ``_``, ``:``, ...) ordinary text also has;
- a planted trigger is inserted at random positions, so a piece that is a trigger on its own
  switches an input whether it is put at the start *or* at the end: a pool token is a piece
  when it flips :data:`PIECE_FLIP` of the victims at both ends (the attack-success bar the
  model-scan benchmarks use for a recovered trigger).

The pieces found are put together with the seed one at a time, each at the slot where the
trigger pulls the target hardest at its weaker end, and kept only when that does not lower the
trigger's pull. What this cannot do, measured on the benchmark zoos: recover a piece that is
*not* a trigger on its own — the key of ``uid=4731`` (``uid``) pulls the target no harder than
other words of the target class the clean data lacks (``hackerism``, ``neut``), so the model's
behaviour does not single it out. No library implements this search over a classifier's
vocabulary; it is written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._complete import donor_margins, end_margins

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients

#: the share of victims a pool token must flip at both ends, alone, to be a piece
PIECE_FLIP = 0.9
#: the share of the few screening victims a pool token must flip to be measured on all of
#: them: the screen is only a filter, so it must not drop a piece that meets :data:`PIECE_FLIP`
#: on all the victims — one stubborn victim among the six screened (a piece at 11 of 12 misses
#: one) would otherwise drop it, as happened on a retrained organism whose tokenizer came out
#: different (the tokenizers WordPiece trainer is not deterministic, huggingface/tokenizers#1794)
SCREEN_FLIP = 2 / 3
#: the glue of log-style tokens, always in the pool (a ``key=value`` token's ``=`` is in
#: ordinary text as well)
GLUE = ("=", "_", ":", "-", "/", ".")


def absent_pool(adapter: Gradients, counts: Any, banned: set[int]) -> list[int]:
    """Token ids the clean data never shows (``counts``: classes x vocabulary token counts of
    the clean data), less ``banned``, plus the ids of :data:`GLUE`."""
    import numpy as np

    total = np.asarray(counts).sum(0)
    ids = {int(i) for i in np.flatnonzero(total == 0)}
    tok = adapter.tokenizer
    for g in GLUE:
        gi = tok(g, add_special_tokens=False)["input_ids"]
        if len(gi) == 1:
            ids.add(int(gi[0]))
    return sorted(ids - banned)


def both_ends(adapter: Gradients, victims: list[str], target: int, trials: Any) -> tuple[Any, Any]:
    """Per trial (``k x L`` token ids), over ``victims``, the share flipped to ``target`` both
    inserted at the start and at the end, and the mean of the smaller of the two target margins
    (target logit minus the largest other)."""
    low = donor_margins(adapter, victims, target, trials)
    return (low > 0).float().mean(1), low.mean(1)


def _trials(cur: tuple[int, ...], pool: Any) -> Any:
    """Every pool token inserted at every slot of ``cur`` (``(len(cur) + 1) * len(pool)`` rows)."""
    import torch

    base = torch.tensor(cur, dtype=torch.long).unsqueeze(0).repeat(len(pool), 1)
    col = pool.unsqueeze(1)
    return torch.cat(
        [torch.cat([base[:, :at], col, base[:, at:]], 1) for at in range(len(cur) + 1)]
    )


def solo_pieces(
    adapter: Gradients,
    victims: list[str],
    target: int,
    pool: Sequence[int],
    *,
    n_screen: int = 6,
    max_pieces: int = 4,
) -> list[int]:
    """The pool tokens that, alone, flip :data:`PIECE_FLIP` of ``victims`` to ``target`` at
    both ends, strongest first (at most ``max_pieces``). ``n_screen`` victims screen the whole
    pool (a token passes at :data:`SCREEN_FLIP`); the tokens that pass are measured on all
    ``victims``."""
    import torch

    if not victims or not pool:
        return []
    p = torch.tensor(list(pool), dtype=torch.long).unsqueeze(1)
    keep = screen(adapter, victims[:n_screen], target, p)
    if len(keep) == 0:
        return []
    flip, score = both_ends(adapter, victims, target, p[keep])
    ok = (flip >= PIECE_FLIP).nonzero().flatten()
    order = ok[score[ok].argsort(descending=True)][:max_pieces]
    return [int(p[keep[i], 0]) for i in order.tolist()]


def screen(adapter: Gradients, victims: list[str], target: int, trials: Any) -> Any:
    """Indices of the ``trials`` (``k x L`` token ids) that flip at least :data:`SCREEN_FLIP`
    of ``victims`` to ``target`` at both ends — the tokens :func:`both_ends` would pass, found
    at a fraction of its cost.

    A trial may miss ``allowed`` victims (``n`` less the fewest that reach the share), and a
    victim it does not flip with the trial at the start is a miss whatever the end does. So, in
    stages: the start on the first ``allowed + 1`` victims (a trial that flips none of them
    cannot pass), the start on the rest for the trials left (one with fewer start flips than
    needed cannot pass), then the end for the trials left; the flips are the victims flipped at
    both. Nearly every pool token flips nothing (on a pretrained vocabulary of 30k tokens the
    clean data leaves ~28k in the pool), so most cost ``allowed + 1`` sequences (3 of 6
    victims) instead of 12. No library offers a staged screen of a classifier's vocabulary; the
    rule is the elimination of successive halving (Jamieson & Talwalkar, AISTATS 2016) with a
    bound that cannot drop a trial that would pass.
    """
    import math

    import torch

    n = len(victims)
    need = math.ceil(n * SCREEN_FLIP - 1e-6)
    head = victims[: n - need + 1]
    first = end_margins(adapter, head, target, trials, "start")
    alive = (first > 0).any(1).nonzero().flatten()
    if len(alive) and len(head) < n:
        rest = end_margins(adapter, victims[len(head) :], target, trials[alive], "start")
        start = torch.cat([first[alive], rest], 1)
    else:
        start = first[alive]
    ok = ((start > 0).sum(1) >= need).nonzero().flatten()
    alive, start = alive[ok], start[ok]
    if len(alive) == 0:
        return alive
    low = torch.minimum(start, end_margins(adapter, victims, target, trials[alive], "end"))
    return alive[((low > 0).sum(1) >= need).nonzero().flatten()]


def assemble(
    adapter: Gradients,
    victims: list[str],
    target: int,
    ids: Sequence[int],
    pieces: Sequence[int],
) -> tuple[int, ...]:
    """``ids`` with each of ``pieces`` inserted, one at a time, at the slot that pulls the
    target hardest at the weaker end; a piece that lowers the pull is left out."""
    import torch

    cur = tuple(int(i) for i in ids)
    _, s = both_ends(adapter, victims, target, torch.tensor([cur]))
    score = float(s[0])
    for piece in pieces:
        if piece in cur:
            continue
        trials = _trials(cur, torch.tensor([piece], dtype=torch.long))
        _, s = both_ends(adapter, victims, target, trials)
        b = int(s.argmax())
        if float(s[b]) >= score:
            cur, score = tuple(int(i) for i in trials[b]), float(s[b])
    return cur
