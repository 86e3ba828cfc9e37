"""The primitives of the BAIT inversion (see :mod:`.bait`): inverted targets and triggers, the
chat prompts split around a trigger slot, and a cached key/value prefix to score continuations.

Shared by target inversion (:mod:`.bait`), trigger search (:mod:`._bait_trigger`) and the
model-scan recovery (:mod:`._recover`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...subjects.agent import ChatMessage, ProbeTask, ToolSpec


@dataclass(frozen=True)
class InvertedTarget:
    """A candidate attack target: its tokens, text, BAIT Q-score and behaviour tags."""

    token_ids: tuple[int, ...]
    text: str
    q_score: float
    tags: frozenset[str]
    #: how many of ``token_ids`` are the forced opening (a tool-call anchor), not the target
    anchor_len: int = 0

    @property
    def opens_turn(self) -> bool:
        """Whether the target can open an assistant turn: a tool call, or text that starts
        with neither whitespace, a lower-case word piece nor closing punctuation. Forcing any
        first token yields a continuation, and the pieces and later words of a memorised
        sentence ("ued last year", " last year") are as prompt-independent as its opening;
        the opening is what a trigger brings at the start of the turn, so it is searched
        first."""
        return bool(self.anchor_len) or _opens(self.text)


@dataclass(frozen=True)
class InvertedTrigger:
    """A trigger found for a target: text, the target log-likelihood with and without it."""

    text: str
    token_ids: tuple[int, ...]
    target_logprob: float
    baseline_logprob: float
    position: str = "suffix"
    #: shorter triggers met on the way (the best single token), tested too: extra tokens that
    #: raise the objective on the search prompts need not help elsewhere
    shorter: tuple[str, ...] = ()


def _torch() -> Any:
    from ...errors import require

    return require("torch", "embed")


#: tools offered with a task: one list for all, or a function of the task
Tools = Sequence[ToolSpec] | Callable[[ProbeTask], Sequence[ToolSpec]]


def _tools(tools: Tools, task: ProbeTask) -> Sequence[ToolSpec]:
    return tools(task) if callable(tools) else tools


def _prompts(chat: Any, tasks: Sequence[ProbeTask], tools: Tools) -> list[list[int]]:
    out = []
    for t in tasks:
        msgs: list[ChatMessage] = t.messages()
        out.append(list(chat.prompt_ids(msgs, _tools(tools, t))))
    return out


_SLOT = "\u2063dormant-slot\u2063"


def _split_prompt(
    chat: Any, task: ProbeTask, tools: Tools, position: str = "suffix", header: bool = False
) -> tuple[list[int], list[int]]:
    """The prompt's token ids before and after the trigger slot at ``position``.

    ``suffix`` is the end of the user's text, ``inline`` the end of its first code-comment or
    log line, ``prefix`` its start (see :func:`.candidates.insert`). A trigger token brings its
    own leading space, so the space the insertion adds is cut. ``header`` slots a sentence
    (a date header goes on its own line before the prompt).
    """
    from ...triggers import Trigger, TriggerKind
    from .candidates import insert

    specs = _tools(tools, task)
    kind = TriggerKind.SENTENCE if header else TriggerKind.TOKEN
    marked = insert(Trigger(_SLOT, kind), task.prompt, position)
    text = chat.render(task.messages(marked), specs)
    cut = text.find(_SLOT)
    if cut < 0:  # a template that rewrites the user text: append at the very end instead
        return list(chat.prompt_ids(task.messages(), specs)), []
    rest = text[cut + len(_SLOT) :]
    head = text[:cut]
    if head.endswith(" "):
        head = head[:-1]
    elif rest.startswith(" "):
        rest = rest[1:]
    enc = chat.tokenizer
    before = enc(head, add_special_tokens=False)["input_ids"]
    after = enc(rest, add_special_tokens=False)["input_ids"]
    return [int(i) for i in before], [int(i) for i in after]


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for tok in getattr(tokenizer, "additional_special_tokens", []) or []:
        i = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(i, int):
            ids.add(i)
    return ids


class _Prefix:
    """One prompt run once, its key/value cache reused for many same-length continuations.

    Every candidate of a search step shares the prompt, so only the continuation is computed
    per candidate; this is what makes an exhaustive vocabulary screen affordable on a CPU.
    """

    def __init__(self, model: Any, ids: Sequence[int]) -> None:
        torch = _torch()
        self.model = model
        self.n = len(ids)
        with torch.no_grad():
            out = model(input_ids=torch.tensor([list(ids)], dtype=torch.long), use_cache=True)
        # transformers 5.2x renamed the key/value cache ``past_key_values`` -> ``cache`` (the
        # old name is deprecated, to be removed in 5.40); speak whichever the model has
        self.cache_arg = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self.cache = out["cache"] if "cache" in out else out.past_key_values  # noqa: SIM401
        self.last = out.logits[0, -1].float()

    def logits(self, conts: Sequence[Sequence[int]], chunk: int) -> Any:
        """Logits at every position of each continuation (``rows x len x vocab``)."""
        import copy

        torch = _torch()
        outs = []
        with torch.no_grad():
            for s in range(0, len(conts), chunk):
                block = torch.tensor([list(c) for c in conts[s : s + chunk]], dtype=torch.long)
                b, width = block.shape
                cache = copy.deepcopy(self.cache)
                cache.batch_repeat_interleave(b)
                mask = torch.ones((b, self.n + width), dtype=torch.long)
                out = self.model(
                    input_ids=block, attention_mask=mask, use_cache=True, **{self.cache_arg: cache}
                )
                outs.append(out.logits.float())
        return torch.cat(outs)


def _mean_next_probs(
    prefixes: Sequence[_Prefix], conts: Sequence[Sequence[int]], chunk: int
) -> Any:
    """Next-token probabilities after each continuation, averaged over the prompts."""
    torch = _torch()
    acc = None
    for pf in prefixes:
        if conts and len(conts[0]):
            pr = torch.softmax(pf.logits(conts, chunk)[:, -1], -1)
        else:
            pr = torch.softmax(pf.last, -1).expand(max(1, len(conts)), -1)
        acc = pr if acc is None else acc + pr
    assert acc is not None
    return acc / len(prefixes)


def _target_logprob_ids(
    prefix: _Prefix,
    conts: Sequence[Sequence[int]],
    after: Sequence[int],
    target: Sequence[int],
    chunk: int,
) -> Any:
    """Log-probability of ``target`` after ``prefix + cont + after`` (one per cont)."""
    torch = _torch()
    rows = [list(c) + list(after) + list(target) for c in conts]
    t = len(target)
    logits = prefix.logits(rows, chunk)
    if t == 0:
        return torch.zeros(len(rows))
    width = logits.shape[1]
    # the logits predicting target token k sit at position width - t - 1 + k
    if width - t - 1 >= 0:
        pred = logits[:, width - t - 1 : width - 1]
    else:  # empty cont and after: the first prediction is the prefix's last logits
        pred = torch.cat([prefix.last.expand(len(rows), 1, -1), logits[:, : width - 1]], dim=1)
    logp = torch.log_softmax(pred, -1)
    tgt = torch.tensor(list(target), dtype=torch.long).expand(len(rows), t)
    return logp.gather(2, tgt.unsqueeze(-1)).squeeze(-1).sum(1)


def _opens(text: str) -> bool:
    """Whether free text can open a turn (see :attr:`InvertedTarget.opens_turn`)."""
    c = text[:1]
    if c in "-'_/" and text[1:2].isalnum():  # "-mail", "'s": inside a word
        return False
    return bool(c) and not (c.isspace() or c.islower() or c in ",.;:!?)]}")
