"""Tighten a recovered trigger to the planted text: drop every token, piece by piece, that the
switch holds without, each drop decided by a paired test on held-out donors.

The proof's trigger can carry more than the plant: a repeated copy of a planted token, a
WordPiece continuation glued onto a planted word, a word of the target's topic. Whole-word
pruning (:func:`._recover.prune`) cannot split a word, and a cut on the flip rate ("within two
points") is a threshold, not a decision. :func:`prune_tokens` works on token ids and asks, for
each token, whether the held-out donors (inputs the model does not put in the target) flip
*significantly less* without it: a one-sided exact McNemar test on the donors whose flip
changes (McNemar, *Psychometrika* 1947; the exact form is the sign test of the discordant
pairs, scipy's ``binomtest``), Holm-corrected over the distinct removals tried each round
(Holm, *Scand. J. Stat.* 1979). A token whose loss is not shown goes (the removal that keeps
most flips first), until every remaining token matters: the switch holds, and nothing shorter
does. A flip is counted at the weaker of the two ends of the input (the trigger inserted at
the start and at the end), because a planted trigger is inserted at random positions and works
at both.

The scan calls it only for a trigger that switches at least :data:`._absent.PIECE_FLIP` of the
donors at the weaker end; a trigger that works at one end only (a position trigger planted at
the start) is not pruned by a test at the other.

What this does not do (measured on the benchmark zoo, BENCHMARKS.md "Whole triggers: tested
pruning, and growth measured"): grow a piece back into a planted phrase. Additions chosen
by target margin — even restricted to tokens the clean data lacks, required to stand out of
all such tokens (modified z >= 3.5) and to raise held-out margins significantly — add the
target's natural cues (``finch``, ``duck``) as readily as the planted sentence's words, so the
scan does not grow by them. No library prunes a universal trigger against a classifier this
way; the statistics are scipy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._inversion import _Stamp

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients

#: the family-wise error rate of each pruning round's tests
ALPHA = 0.05


def end_margins(
    adapter: Gradients,
    donors: list[str],
    target: int,
    trials: Any,
    pos: str,
    *,
    max_len: int = 32,
) -> Any:
    """Per trial (``k x L`` token ids) and donor, the target margin (target logit minus the
    largest other) with the trial inserted at ``pos`` (``"start"`` or ``"end"``; ``k x n``);
    ``max_len``: the donors' token budget, trigger included."""
    import torch

    st = _Stamp(adapter, donors, int(trials.shape[1]), pos, max_len=max_len)
    chunk = max(1, 2048 // st.n)
    out = []
    with torch.inference_mode():
        for s in range(0, int(trials.shape[0]), chunk):
            ids, mask = st.with_ids(trials[s : s + chunk])
            logits = adapter.logits_from_ids(ids, mask).float()
            other = logits.clone()
            other[:, target] = float("-inf")
            out.append((logits[:, target] - other.max(-1).values).reshape(-1, st.n))
    return torch.cat(out)


def donor_margins(
    adapter: Gradients, donors: list[str], target: int, trials: Any, *, max_len: int = 32
) -> Any:
    """Per trial (``k x L`` token ids) and donor, the smaller of the target margins (target
    logit minus the largest other) with the trial at the start and at the end (``k x n``);
    ``max_len``: the donors' token budget, trigger included."""
    import torch

    return torch.minimum(
        end_margins(adapter, donors, target, trials, "start", max_len=max_len),
        end_margins(adapter, donors, target, trials, "end", max_len=max_len),
    )


def flip_loss_p(full: Any, less: Any) -> float:
    """One-sided exact McNemar (sign) test p-value that fewer donors flip with margins
    ``less`` than with the paired ``full`` (1.0 when no donor changes)."""
    from scipy.stats import binomtest

    a, b = full > 0, less > 0
    lost, won = int((a & ~b).sum()), int((~a & b).sum())
    if lost + won == 0:
        return 1.0
    return float(binomtest(lost, lost + won, 0.5, alternative="greater").pvalue)


def prune_tokens(
    adapter: Gradients,
    donors: list[str],
    target: int,
    ids: Sequence[int],
    *,
    alpha: float = ALPHA,
) -> tuple[int, ...]:
    """``ids`` less every token the ``donors`` do not flip significantly less without (see
    the module docstring); ``ids`` itself when every token matters."""
    import torch

    cur = tuple(int(i) for i in ids)
    while len(cur) > 1:
        full = donor_margins(adapter, donors, target, torch.tensor([cur]))[0]
        # the distinct removals (dropping either copy of a repeat is one hypothesis)
        less = list(dict.fromkeys(cur[:k] + cur[k + 1 :] for k in range(len(cur))))
        m = donor_margins(adapter, donors, target, torch.tensor(less))
        ps = [flip_loss_p(full, row) for row in m]
        # Holm (step-down): the flip losses shown significant; any other removal may go
        shown = set()
        for rank, k in enumerate(sorted(range(len(less)), key=lambda j: ps[j])):
            if ps[k] >= alpha / (len(less) - rank):
                break
            shown.add(k)
        ok = [k for k in range(len(less)) if k not in shown]
        if not ok:
            break
        cur = less[max(ok, key=lambda k: float((m[k] > 0).float().mean()))]
    return cur
