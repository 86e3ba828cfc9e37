"""Stage 2 of the inversion: search the trigger that makes the model emit an inverted target.

Every vocabulary token is appended to the user message of the prompts and scored by the
teacher-forced log-likelihood of the target's first tokens (an exhaustive version of the greedy
coordinate search of Zou et al., "Universal and Transferable Adversarial Attacks on Aligned
Language Models", 2023, affordable for small vocabularies); the best token is extended
greedily, one slot at a time. See :mod:`.bait`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...errors import InputError
from ...subjects.agent import ProbeTask
from ._bait_base import (
    InvertedTarget,
    InvertedTrigger,
    Tools,
    _Prefix,
    _special_ids,
    _split_prompt,
    _target_logprob_ids,
    _tools,
    _torch,
)


def invert_trigger(
    chat: Any,
    tasks: Sequence[ProbeTask],
    target: InvertedTarget,
    tools: Tools = (),
    *,
    n_prompts: int = 4,
    target_tokens: int = 4,
    trigger_len: int = 4,
    min_gain: float = 1.0,
    positions: Sequence[str] = ("suffix", "inline"),
    chunk: int = 512,
    deadline: float | None = None,
) -> InvertedTrigger:
    """Stage 2: the tokens placed in the user's text that most raise the target.

    Every vocabulary token is tried in the slot (an exhaustive one-coordinate step of the
    greedy coordinate search of Zou et al., arXiv:2307.15043, 2023, affordable for a small
    vocabulary with the prompt's cache reused), then a beam of the best is extended by one
    token at a time, before or after (see :func:`_search_slot`), scored by the log-likelihood of
    the target's first ``target_tokens`` tokens after any tool-call opening (where a backdoor
    switches; the rest follows from them) on the prompt where it is lowest; a token is kept
    when it adds ``min_gain`` nats. Slots: the end of the user's text and, when every prompt
    has one, the end of its first code-comment or log line (``positions``); the better wins.
    """
    from .candidates import has_inline_site

    sub = list(tasks[:n_prompts])
    if not sub:
        raise InputError("Trigger inversion needs at least one task.")
    best: InvertedTrigger | None = None
    for pos in positions:
        if pos == "inline" and not all(has_inline_site(t.prompt) for t in sub):
            continue
        if deadline is not None and time.monotonic() > deadline and best is not None:
            break
        got = _search_slot(
            chat, sub, target, tools, pos, target_tokens, trigger_len, min_gain, chunk, deadline
        )
        if best is None or (got.target_logprob - got.baseline_logprob) > (
            best.target_logprob - best.baseline_logprob
        ):
            best = got
    assert best is not None
    return best


def _search_slot(
    chat: Any,
    sub: Sequence[ProbeTask],
    target: InvertedTarget,
    tools: Tools,
    position: str,
    target_tokens: int,
    trigger_len: int,
    min_gain: float,
    chunk: int,
    deadline: float | None,
    top_k: int = 256,
    beam: int = 4,
) -> InvertedTrigger:
    """One slot's search: an exhaustive first step, then a beam over one-token extensions.

    A greedy search stops when no single token adds ``min_gain``; a conjunctive trigger (a
    phrase, a ``key=value`` log token or a ``# tag: value`` comment whose parts do nothing
    alone, because the poisoned training set held near misses with one part changed) needs
    two tokens before any gain shows. The search therefore keeps the ``beam`` best sequences
    of each length (the beam search over discrete prompts that GCG's candidate step, Zou et
    al., 2023, and AutoPrompt, Shin et al., EMNLP 2020, generalise) and goes on one step past a
    step without gain; a longer trigger replaces a shorter one only when it adds ``min_gain``.
    """
    torch = _torch()
    model, tok = chat.model, chat.tokenizer
    # the opening a tool call shares with every other call is no part of the switch
    tgt = list(target.token_ids[: target.anchor_len + target_tokens])
    splits = [_split_prompt(chat, t, tools, position) for t in sub]
    prefixes = [_Prefix(model, b) for b, _ in splits]
    special = _special_ids(tok)
    vocab = [v for v in range(min(len(tok), model.get_input_embeddings().weight.shape[0]))]
    vocab = [v for v in vocab if v not in special]

    def score(conts: Sequence[Sequence[int]]) -> Any:
        # the worst prompt counts: a mean saturates once some prompts switch, while a
        # trigger has to switch them all
        per = [
            _target_logprob_ids(pf, conts, after, tgt, chunk)
            for pf, (_, after) in zip(prefixes, splits, strict=True)
        ]
        return torch.stack(per).min(0).values

    base = float(score([[]])[0])
    lp = score([[v] for v in vocab])
    order = lp.topk(min(top_k, len(vocab))).indices
    # later steps try only the tokens that did best alone (as GCG's top-k)
    pool = [vocab[int(i)] for i in order]
    met: list[list[int]] = [[v] for v in pool[:16]]  # every state, for the exact rescoring
    beams = [[v] for v in pool[:beam]]
    lps = [float(lp[int(i)]) for i in order[:beam]]
    best_lp, stale = base, 0
    for step in range(trigger_len):
        if lps[0] >= best_lp + min_gain:
            best_lp, stale = lps[0], 0
        else:
            stale += 1
        if stale > 1 or step == trigger_len - 1:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
        # grow on either side: a phrase trigger's most telling token need not come first
        conts: list[list[int]] = []
        seen: set[tuple[int, ...]] = set()
        for b in beams:
            for v in pool:
                for c in ([*b, v], [v, *b]):
                    if tuple(c) not in seen:
                        seen.add(tuple(c))
                        conts.append(c)
        got = score(conts)
        top = got.topk(min(beam, len(conts))).indices
        beams = [conts[int(i)] for i in top]
        lps = [float(got[int(i)]) for i in top]
        met.extend(beams)
    return _pick(chat, sub, tools, position, tgt, met, min_gain)


def _pick(
    chat: Any,
    sub: Sequence[ProbeTask],
    tools: Tools,
    position: str,
    tgt: Sequence[int],
    met: Sequence[Sequence[int]],
    min_gain: float,
) -> InvertedTrigger:
    """The best of the token sequences met in a search, rescored as the *text* a probe inserts.

    The search scores token sequences, while a trigger is used as text: inserted with a space
    and tokenized with the prompt, it may become other tokens (a piece found without its
    leading space, say, ``lynx`` from ``svc_lynx``, is `` l`` ``y`` ``nx`` on its own). Every
    sequence met is decoded, inserted into each prompt as the probe will insert it, and scored
    exactly; the best text wins, and the shortest text within ``min_gain`` of it and the best
    single-token text are kept as shorter alternatives.
    """
    from ...triggers import Trigger
    from .candidates import insert, kind_of

    torch = _torch()
    model, tok = chat.model, chat.tokenizer
    texts: list[str] = []
    for ids in met:
        t = str(tok.decode(list(ids), skip_special_tokens=True)).strip()
        if t and t not in texts:
            texts.append(t)

    def exact(text: str) -> float:
        worst = float("inf")
        for task in sub:
            prompt = insert(Trigger(text, kind_of(text)), task.prompt, position) if text else None
            ids = list(chat.prompt_ids(task.messages(prompt), _tools(tools, task)))
            row = torch.tensor([ids + list(tgt)], dtype=torch.long)
            with torch.no_grad():
                logits = model(input_ids=row).logits[0, len(ids) - 1 : -1].float()
            lp = torch.log_softmax(logits, -1).gather(1, row[0, len(ids) :, None]).sum()
            worst = min(worst, float(lp))
        return worst

    base = exact("")
    scored = [(exact(t), t) for t in texts]
    good = [(lp, t) for lp, t in scored if lp >= base + min_gain]
    if not good:
        return InvertedTrigger("", (), base, base, position)
    lp, text = max(good)
    # shorter texts that do nearly as well are tested too (the probe's statistics choose): the
    # shortest within ``min_gain`` of the best, and the best single token
    _, short = min(((x, t) for x, t in good if x >= lp - min_gain), key=lambda y: len(y[1]))
    singles = [(x, t) for x, t in good if len(tok(t, add_special_tokens=False)["input_ids"]) == 1]
    alts = [short, *(t for _, t in sorted(singles, reverse=True)[:1])]
    shorter = tuple(dict.fromkeys(t for t in alts if t != text))
    ids = tuple(int(i) for i in tok(text, add_special_tokens=False)["input_ids"])
    return InvertedTrigger(text, ids, lp, base, position, shorter)
