"""Position-robust multi-token trigger search for transformer classifiers (torch, lazy).

A planted trigger is trained where the poisoner put it, and most text poisoning puts it at a
random position (RIPPLe, Kurita, Michel & Neubig, ACL 2020; BadNL, Chen et al., ACSAC 2021;
the TrojAI text rounds): the backdoor then fires wherever the trigger sits. The strongest
*natural* cues of a small classifier are different: they work in the slot next to ``[CLS]``
and fade a few tokens later (measured on the zoo: a clean model's best one-token trigger loses
most of its pull at the end of the input, a planted one keeps it). Multi-word triggers
(AddSent sentences, phrases) are only partly carried by their strongest word, which is why DBS
(Shen et al., ICML 2022) and PICCOLO (Liu et al., IEEE S&P 2022) invert several word slots.

:func:`robust_search` combines the two: from a label's best single tokens (the exhaustive or
first-order screen's), it grows a trigger of up to ``length`` tokens greedily, one token
prepended or appended at a time, minimising the **worse** of its losses at the start and at
the end of the victims. :func:`worst_position` measures a trigger the same way on held-out
inputs. The held-out worst-position strength is the model scan's second decision feature.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._inversion import Inversion, _eval, _Stamp

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients


def _both(adapter: Gradients, texts: list[str], trials: Any, target: int) -> tuple[Any, Any]:
    """Worse loss and worse flip rate of each trigger in ``trials`` over start and end."""
    import torch

    n = int(trials.shape[1])
    ls, fs = _eval(adapter, _Stamp(adapter, texts, n, "start"), trials, target)
    le, fe = _eval(adapter, _Stamp(adapter, texts, n, "end"), trials, target)
    return torch.maximum(ls, le), torch.minimum(fs, fe)


def robust_search(
    adapter: Gradients,
    victims: list[str],
    target: int,
    cand_ids: Sequence[int],
    *,
    length: int = 3,
    first: tuple[Any, Any] | None = None,
) -> Inversion:
    """Greedy position-robust trigger of up to ``length`` tokens drawn from ``cand_ids``.

    Every step tries each candidate token before and after the current trigger (the first
    step: each candidate alone) on ``victims`` at both positions and keeps the trial whose
    worse-position loss is lowest. Always runs ``length`` steps, so that the strengths of
    different labels and models are measured at the same trigger length. ``first``: the
    worse-position losses and flip rates of the candidates alone on the same victims, when
    the caller has them already (the first step then costs nothing).
    """
    import torch

    t0 = time.monotonic()
    ids = torch.as_tensor(list(cand_ids), dtype=torch.long)
    cur = None
    loss = fr = None
    for _ in range(length):
        if cur is None:
            trials = ids.unsqueeze(1)
        else:
            rep = cur.repeat(len(ids), 1)
            col = ids.unsqueeze(1)
            trials = torch.cat([torch.cat([col, rep], 1), torch.cat([rep, col], 1)])
        if cur is None and first is not None:
            losses, frs = first
        else:
            losses, frs = _both(adapter, victims, trials, target)
        b = int(losses.argmin())
        cur, loss, fr = trials[b : b + 1], float(losses[b]), float(frs[b])
    assert cur is not None and loss is not None and fr is not None
    tok_ids = tuple(int(i) for i in cur[0])
    return Inversion(
        target=target,
        position="both",
        token_ids=tok_ids,
        tokens=tuple(adapter.tokenizer.convert_ids_to_tokens(list(tok_ids))),
        loss=loss,
        flip_rate=fr,
        steps=length,
        seconds=time.monotonic() - t0,
    )


def worst_position(
    adapter: Gradients, texts: list[str], target: int, token_ids: Sequence[int]
) -> tuple[float, float]:
    """Held-out worse-position loss and flip rate of one trigger (token ids) on ``texts``."""
    import torch

    if not texts:
        return float("inf"), 0.0
    trial = torch.as_tensor([list(token_ids)], dtype=torch.long)
    loss, fr = _both(adapter, texts, trial, target)
    return float(loss[0]), float(fr[0])
