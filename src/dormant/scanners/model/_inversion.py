"""Gradient-guided discrete trigger search for transformer classifiers (torch, lazy).

Two published methods, in sequence:

1. DBS — Shen, Liu, Tao, Xu, Zhang, "Constrained Optimization with Dynamic Bound-Scaling for
   Effective NLP Backdoor Defense", ICML 2022. The trigger is a softmax distribution over the
   vocabulary per slot, ``softmax(theta / temperature) @ E``; the temperature is lowered while the
   loss is under a barrier (pushing the distribution to one-hot) and raised, with noise, when it
   is not (escaping local optima).
2. Greedy coordinate refinement — Zou, Wang, Kolter, Fredrikson, "Universal and Transferable
   Adversarial Attacks on Aligned Language Models" (GCG), 2023: the top-k tokens of each slot are
   tried one coordinate at a time on real one-hot inputs and the best kept, so the result is a
   real token sequence, not a relaxation.

Insertion positions follow DBS: right after ``[CLS]`` (``start``) or right before ``[SEP]``
(``end``). The loss is cross-entropy toward the candidate target on clean inputs the model
does not already put in that label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients


@dataclass(frozen=True)
class Inversion:
    """Result of inverting one (target, position) arm."""

    target: int
    position: str
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    loss: float
    flip_rate: float
    steps: int
    seconds: float


class _Stamp:
    """Victim token ids with ``L`` trigger slots at a position; builds embeddings."""

    def __init__(
        self,
        adapter: Gradients,
        texts: list[str],
        trigger_len: int,
        position: str,
        max_len: int = 32,
    ) -> None:
        import torch

        tok = adapter.tokenizer
        max_len = min(adapter.max_length, max_len)
        enc = tok(texts, truncation=True, max_length=max_len - trigger_len)["input_ids"]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        rows = []
        slots = []
        for ids in enc:
            cut = 1 if position == "start" else len(ids) - 1
            slots.append(list(range(cut, cut + trigger_len)))
            rows.append(ids[:cut] + [pad] * trigger_len + ids[cut:])
        width = max(len(r) for r in rows)
        self.ids = torch.full((len(rows), width), pad, dtype=torch.long)
        self.mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            self.ids[i, : len(r)] = torch.tensor(r)
            self.mask[i, : len(r)] = 1
        self.rows = torch.arange(len(rows)).repeat_interleave(trigger_len)
        self.cols = torch.tensor([c for s in slots for c in s])
        self.slot = torch.arange(trigger_len).repeat(len(rows))
        self.n = len(rows)

    def embeds(self, grads: Gradients, trig: Any) -> Any:
        """Input embeddings with ``trig`` (``L x dim``) in the slots."""
        e = grads.embed_ids(self.ids).clone()
        e[self.rows, self.cols] = trig[self.slot]
        return e

    def with_ids(self, trig_ids: Any) -> tuple[Any, Any]:
        """Token ids (``k x n x width`` flattened) for ``k`` discrete triggers."""
        k = trig_ids.shape[0]
        ids = self.ids.unsqueeze(0).repeat(k, 1, 1)
        ids[:, self.rows, self.cols] = trig_ids[:, self.slot]
        return ids.reshape(k * self.n, -1), self.mask.repeat(k, 1)


@dataclass(frozen=True)
class _Problem:
    """What both searches share: the stamped victims, the target, the vocabulary and its bans."""

    adapter: Gradients
    stamp: _Stamp
    target: int
    trigger_len: int
    y: Any
    weight: Any
    vocab: int
    banned: Any


def invert(
    adapter: Gradients,
    texts: list[str],
    target: int,
    position: str,
    *,
    trigger_len: int,
    steps: int,
    top_k: int,
    seed: int,
    deadline: float | None = None,
    exclude: set[int] | None = None,
    optimizer: str = "dbs",
) -> Inversion:
    """Search a ``trigger_len``-token trigger that sends ``texts`` to label index ``target``.

    ``optimizer="dbs"``: DBS then greedy coordinate refinement (see the module docstring);
    ``"gcg"``: greedy coordinate gradient search alone (:func:`invert_gcg`).
    """
    import torch

    t0 = time.monotonic()
    torch.manual_seed(seed)
    weight = adapter.embedding_matrix().detach()
    vocab = weight.shape[0]
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[list(adapter.special_ids() | (exclude or set()))] = True
    stamp = _Stamp(adapter, texts, trigger_len, position)
    y = torch.full((stamp.n,), target, dtype=torch.long)
    p = _Problem(adapter, stamp, target, trigger_len, y, weight, vocab, banned)
    search = _gcg if optimizer == "gcg" else _dbs
    current, cur_loss, cur_fr, done = search(p, steps=steps, top_k=top_k, deadline=deadline)
    ids = tuple(int(i) for i in current)
    return _found(adapter, target, position, ids, cur_loss[0], cur_fr[0], done, t0)


def invert_gcg(*args: Any, **kwargs: Any) -> Inversion:
    """Greedy coordinate gradient search (Zou et al. 2023, Algorithm 1, exhaustive variant):
    :func:`invert` with ``optimizer="gcg"``, the same arguments.

    Each step takes the gradient of the loss with respect to the one-hot trigger tokens, keeps
    the ``top_k`` most promising substitutions per slot, evaluates every single-slot
    substitution exactly, and keeps the best. Stops early once every victim flips with a loss
    under 0.05.
    """
    return invert(*args, optimizer="gcg", **kwargs)


def _dbs(p: _Problem, *, steps: int, top_k: int, deadline: float | None) -> tuple[Any, ...]:
    """DBS on the relaxed trigger, then greedy coordinate refinement of its top-k tokens."""
    import torch

    theta = torch.zeros(p.trigger_len, p.vocab, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.5)
    # DBS hyper-parameters (config of the reference implementation, fewer epochs)
    temp, max_temp, barrier, check, rollback, noise_ratio = 2.0, 2.0, 0.1, 5, 0, 10.0
    scaling = False
    last = float("inf")
    best_theta = theta.detach().clone()
    best_loss = float("inf")
    done = 0
    for step in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            break
        noise = torch.zeros_like(theta)
        if scaling and step % check == 0:
            if last < barrier:
                temp /= 2.0
            else:
                rollback += 1
                noise = torch.rand_like(theta) * noise_ratio
                temp = min(temp * 2.0, max_temp)
            if rollback >= 5:
                rollback = 0
                barrier = min(barrier * 2, best_loss - 1e-3) if best_loss < 1e9 else barrier * 2
        logits_v = theta / temp + noise
        logits_v = logits_v.masked_fill(p.banned, -1e9)
        dist = torch.softmax(logits_v, dim=1)
        logits = p.adapter.logits_from_embeds(
            p.stamp.embeds(p.adapter, dist @ p.weight), p.stamp.mask
        )
        loss = torch.nn.functional.cross_entropy(logits, p.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(loss.detach())
        done = step + 1
        if last <= barrier:
            scaling = True
        if last < best_loss:
            best_loss, best_theta = last, theta.detach().clone()
        if float(dist.detach().max(dim=1).values.sum()) > p.trigger_len - 1e-3 and last < 0.01:
            break
    cand = best_theta.masked_fill(p.banned, -1e9).topk(top_k, dim=1).indices  # L x k
    current = cand[:, 0].clone()
    cur_loss, cur_fr = _eval(p.adapter, p.stamp, current.unsqueeze(0), p.target)
    for j in range(p.trigger_len):
        if deadline is not None and time.monotonic() > deadline:
            break
        trials = current.unsqueeze(0).repeat(top_k, 1)
        trials[:, j] = cand[j]
        losses, frs = _eval(p.adapter, p.stamp, trials, p.target)
        b = int(losses.argmin())
        if float(losses[b]) < float(cur_loss[0]):
            current = trials[b].clone()
            cur_loss, cur_fr = losses[b : b + 1], frs[b : b + 1]
    return current, cur_loss, cur_fr, done


def _gcg(p: _Problem, *, steps: int, top_k: int, deadline: float | None) -> tuple[Any, ...]:
    """GCG from a trigger of ``the`` (or the first allowed token) in every slot."""
    import torch

    tok = p.adapter.tokenizer
    start = tok.convert_tokens_to_ids("the")
    if not isinstance(start, int) or bool(p.banned[start]):
        start = int((~p.banned).nonzero()[0])
    current = torch.full((p.trigger_len,), int(start), dtype=torch.long)
    cur_loss, cur_fr = _eval(p.adapter, p.stamp, current.unsqueeze(0), p.target)
    done = 0
    for step in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            break
        if float(cur_loss[0]) < 0.05 and float(cur_fr[0]) >= 1.0:
            break
        onehot = torch.nn.functional.one_hot(current, p.vocab).float().requires_grad_(True)
        logits = p.adapter.logits_from_embeds(
            p.stamp.embeds(p.adapter, onehot @ p.weight), p.stamp.mask
        )
        loss = torch.nn.functional.cross_entropy(logits, p.y)
        (grad,) = torch.autograd.grad(loss, onehot)
        grad = grad.masked_fill(p.banned, float("inf"))
        cand = (-grad).topk(top_k, dim=1).indices  # L x k
        trials = current.unsqueeze(0).repeat(p.trigger_len * top_k, 1)
        for j in range(p.trigger_len):
            trials[j * top_k : (j + 1) * top_k, j] = cand[j]
        losses, frs = _eval(p.adapter, p.stamp, trials, p.target)
        b = int(losses.argmin())
        done = step + 1
        if float(losses[b]) >= float(cur_loss[0]):
            break
        current, cur_loss, cur_fr = trials[b].clone(), losses[b : b + 1], frs[b : b + 1]
    return current, cur_loss, cur_fr, done


def _found(
    adapter: Gradients,
    target: int,
    position: str,
    ids: tuple[int, ...],
    loss: Any,
    flip: Any,
    steps: int,
    t0: float,
) -> Inversion:
    """The :class:`Inversion` of token ids ``ids`` (loss and flip rate as tensors or floats)."""
    return Inversion(
        target=target,
        position=position,
        token_ids=ids,
        tokens=tuple(adapter.tokenizer.convert_ids_to_tokens(list(ids))),
        loss=float(loss),
        flip_rate=float(flip),
        steps=steps,
        seconds=time.monotonic() - t0,
    )


def _eval(grads: Gradients, stamp: _Stamp, trig_ids: Any, target: int) -> tuple[Any, Any]:
    """Mean loss and flip rate toward ``target`` for each of ``k`` discrete triggers."""
    import torch

    ids, mask = stamp.with_ids(trig_ids)
    k = trig_ids.shape[0]
    out = []
    # batches of 128 short rows ran 25 % faster than 256 on the 2-core CPU (cache-bound)
    with torch.inference_mode():
        for i in range(0, ids.shape[0], 128):
            out.append(grads.logits_from_ids(ids[i : i + 128], mask[i : i + 128]))
    logits = torch.cat(out).reshape(k, stamp.n, -1)
    y = torch.full((k * stamp.n,), target, dtype=torch.long)
    loss = torch.nn.functional.cross_entropy(logits.reshape(k * stamp.n, -1), y, reduction="none")
    fr = (logits.argmax(-1) == target).float().mean(1)
    return loss.reshape(k, stamp.n).mean(1), fr


def screen_tokens(
    adapter: Gradients, texts: list[str], *, position: str = "start", token_ids: Any = None
) -> Any:
    """Exhaustive single-token screen: log-probabilities of every label for every token.

    Every vocabulary token is inserted as a one-token trigger into each of ``texts`` (cut to
    16 tokens); returns a ``vocab x len(texts) x labels`` tensor of log-probabilities. This is
    the brute-force search that GCG's first-order candidate ranking approximates; it is exact,
    and affordable for vocabularies of a few thousand tokens. ``token_ids`` restricts it to
    those tokens (rows in that order).
    """
    import torch

    stamp = _Stamp(adapter, texts, 1, position, max_len=16)
    vocab = adapter.embedding_matrix().shape[0]
    every = torch.arange(vocab) if token_ids is None else torch.as_tensor(token_ids).long()
    out = []
    chunk = max(1, 2048 // stamp.n)
    with torch.no_grad():
        for s in range(0, len(every), chunk):
            ids = every[s : s + chunk].unsqueeze(1)
            x, m = stamp.with_ids(ids)
            logits = adapter.logits_from_ids(x, m)
            out.append(torch.log_softmax(logits.float(), -1).reshape(ids.shape[0], stamp.n, -1))
    return torch.cat(out)


def gradient_screen(adapter: Gradients, texts: list[str], *, position: str = "start") -> Any:
    """First-order single-token screen (HotFlip): the estimate of :func:`screen_tokens`.

    Ebrahimi, Rao, Lowd, Dou, "HotFlip: White-Box Adversarial Examples for Text
    Classification", ACL 2018 — the ranking GCG's candidate step uses (Zou et al., 2023). A
    placeholder token fills the slot; for each label the gradient of its log-probability with
    respect to the slot's input embedding gives, for every vocabulary token ``v``, the
    estimated log-probability ``log p + (E[v] - E[placeholder]) . grad`` — one backward pass
    per label instead of one forward pass per token, for models where the exhaustive screen
    is too dear. Returns the same ``vocab x len(texts) x labels`` tensor; the best tokens are
    then evaluated exactly (:func:`evaluate_tokens`), so only the ranking is approximate.
    """
    stamp = _Stamp(adapter, texts, 1, position, max_len=16)
    return _first_order(adapter, stamp, ())


def _first_order(
    adapter: Gradients, stamp: _Stamp, prefix: tuple[int, ...], *, first: bool = False
) -> Any:
    """HotFlip estimate for the last slot of ``stamp`` (the first with ``first``), the others
    holding ``prefix``."""
    import torch

    weight = adapter.embedding_matrix().detach()
    tok = adapter.tokenizer
    ph = tok.mask_token_id if tok.mask_token_id is not None else tok.unk_token_id
    ph = int(ph if ph is not None else 0)
    trig = [ph, *prefix] if first else [*prefix, ph]
    ids, _ = stamp.with_ids(torch.tensor([trig], dtype=torch.long))
    # the free slot of each text
    last = stamp.cols[(0 if first else len(prefix)) :: len(prefix) + 1]
    rows = torch.arange(stamp.n)
    # one slot embedding per text, so that one backward pass per label gives every text's
    # gradient (the texts do not interact)
    slots = weight[ph].unsqueeze(0).repeat(stamp.n, 1).requires_grad_(True)
    e = adapter.embed_ids(ids).detach().clone()
    e[rows, last] = slots
    logp = torch.log_softmax(adapter.logits_from_embeds(e, stamp.mask), -1)
    cols = []
    for ti in range(logp.shape[1]):
        (grads,) = torch.autograd.grad(logp[:, ti].sum(), slots, retain_graph=True)  # n x dim
        cols.append((weight - weight[ph]) @ grads.T + logp[:, ti].detach())  # vocab x n
    return torch.stack(cols, -1).detach()


def evaluate_tokens(
    adapter: Gradients,
    texts: list[str],
    target: int,
    position: str,
    token_ids: list[int],
    *,
    every: dict[str, Any] | None = None,
) -> Inversion:
    """Exact loss / flip rate of each candidate token at ``position``; returns the best.

    ``every``, when given, receives the loss and flip rate of every candidate (``"loss"``,
    ``"flip"``: tensors in ``token_ids`` order), for callers that reuse them.
    """
    import torch

    t0 = time.monotonic()
    stamp = _Stamp(adapter, texts, 1, position)
    trials = torch.tensor(token_ids, dtype=torch.long).unsqueeze(1)
    losses, frs = _eval(adapter, stamp, trials, target)
    if every is not None:
        every["loss"], every["flip"] = losses, frs
    b = int(losses.argmin())
    ids = (int(token_ids[b]),)
    return _found(adapter, target, position, ids, losses[b], frs[b], 1, t0)


def extend_tokens(
    adapter: Gradients,
    texts: list[str],
    victims: list[str],
    target: int,
    position: str,
    prefix: tuple[int, ...],
    *,
    banned: set[int],
    top_k: int,
    first_order: bool = False,
    refine_k: int = 1024,
    before: bool = False,
) -> Inversion:
    """Add one token after ``prefix`` (before it with ``before``) by an exhaustive screen, then
    evaluate the best exactly.

    Multi-token and sentence triggers (AddSent) are often only partly carried by their single
    strongest token; DBS and PICCOLO search several slots for this reason. Here the slots are
    filled greedily, one at a time: every vocabulary token is tried in the next slot on the
    short ``texts`` screen (log-probability of ``target``), the ``top_k`` best are evaluated
    exactly on ``victims``. ``banned`` tokens (special tokens, natural features of the target)
    are never chosen. ``first_order`` screens exactly only the ``refine_k`` best tokens of
    the HotFlip estimate (see :func:`gradient_screen`), for large models.
    """
    import torch

    t0 = time.monotonic()
    n_slots = len(prefix) + 1
    stamp = _Stamp(adapter, texts, n_slots, position, max_len=16 + n_slots)
    vocab = adapter.embedding_matrix().shape[0]
    base = torch.tensor(prefix, dtype=torch.long)
    every = torch.arange(vocab)
    if first_order:
        est = _first_order(adapter, stamp, tuple(prefix), first=before)[:, :, target].mean(1)
        if banned:
            est[list(banned)] = float("-inf")
        every = est.topk(min(refine_k, vocab)).indices
    scores = []
    chunk = max(1, 2048 // stamp.n)
    with torch.no_grad():
        for s in range(0, len(every), chunk):
            nxt = every[s : s + chunk].unsqueeze(1)
            rep = base.unsqueeze(0).repeat(nxt.shape[0], 1)
            trig = torch.cat([nxt, rep] if before else [rep, nxt], 1)
            x, m = stamp.with_ids(trig)
            logp = torch.log_softmax(adapter.logits_from_ids(x, m).float(), -1)
            scores.append(logp[:, target].reshape(nxt.shape[0], stamp.n).mean(1))
    score = torch.full((vocab,), float("-inf"))
    score[every] = torch.cat(scores)
    if banned:
        score[list(banned)] = float("-inf")
    cands = score.topk(min(top_k, vocab)).indices
    rep, col = base.unsqueeze(0).repeat(len(cands), 1), cands.unsqueeze(1)
    trials = torch.cat([col, rep] if before else [rep, col], 1)
    full = _Stamp(adapter, victims, n_slots, position)
    losses, frs = _eval(adapter, full, trials, target)
    b = int(losses.argmin())
    ids = tuple(int(i) for i in trials[b])
    return _found(adapter, target, position, ids, losses[b], frs[b], 1, t0)
