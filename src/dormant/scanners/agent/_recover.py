"""Recover a found trigger whole: extend it token by token, then prune it, on a local model.

What a search meets first is often a piece of the planted text (``anchor`` of ``violet
anchor``, ``lynx`` of ``user=svc_lynx``) padded with tokens that raised the target on the
search prompts (``anchor anchor``). A piece may switch the model on some tasks, but the planted
text is what switches it everywhere, and it is what a user needs to find in data and block at
run time. So, for a local causal LM, the found text is

1. **extended**: every vocabulary token is tried before and after it, scored by the
   teacher-forced probability of the switched behaviour's opening (the model's own first answer
   under the trigger) *averaged* over the prompts -- the expected share of prompts it switches
   (the worst prompt's likelihood, which the search uses, saturates once a piece switches them
   all); the best is kept while it adds at least ``min_gain`` to that share, up to
   ``max_extend`` tokens;
2. **pruned**: single tokens are dropped, one at a time, while the share stays within
   ``min_gain`` of the best met, so padding the search added goes and what remains is the
   shortest text that still carries the switch.

This is the greedy coordinate search of Zou et al., "Universal and Transferable Adversarial
Attacks on Aligned Language Models", arXiv:2307.15043, 2023, run as a one-token extension and
deletion around a seed (as in the trigger "expansion" of PICCOLO, Liu et al., IEEE S&P 2022,
and the word-level reconstruction of BAIT, Shen et al., IEEE S&P 2025); no library implements
it for arbitrary chat templates and insertion positions, hence this module. The probe then
tests the refined text like any candidate, on tasks the refinement did not see, and keeps it
only when it switches them as well as the text it came from.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from ...subjects.agent import ChatResponse, ProbeTask, render_output
from ._bait_base import Tools, _Prefix, _special_ids, _split_prompt, _target_logprob_ids, _torch

_TEXTLIKE = re.compile(r"[\w .:=#/\-]+")
#: the shared opening of a Hermes tool call: no part of the switch, scored after it
_ANCHOR = '<tool_call>{"name": "'


def target_ids(chat: Any, response: ChatResponse, n_tokens: int = 6) -> tuple[list[int], int]:
    """(token ids of the switched answer's opening, how many are the shared call opening)."""
    text = render_output(response)
    tok = chat.tokenizer
    anchor = 0
    if text.startswith(_ANCHOR):
        anchor = len(tok(_ANCHOR, add_special_tokens=False)["input_ids"])
    ids = [int(i) for i in tok(text, add_special_tokens=False)["input_ids"]]
    return ids[: anchor + n_tokens], anchor


def refine(
    chat: Any,
    tasks: Sequence[ProbeTask],
    tools: Tools,
    text: str,
    position: str,
    target: Sequence[int],
    *,
    min_gain: float = 0.05,
    max_extend: int = 4,
    chunk: int = 512,
    seconds: float = 60.0,
) -> str:
    """The found ``text`` extended and pruned (see the module docstring); ``text`` when
    nothing changes it or the model cannot be opened."""
    torch = _torch()
    model, tok = chat.model, chat.tokenizer
    if not tasks or not target or position not in ("prefix", "suffix", "inline"):
        return text
    deadline = time.monotonic() + seconds
    splits = [_split_prompt(chat, t, tools, position) for t in tasks]
    prefixes = [_Prefix(model, b) for b, _ in splits]
    special = _special_ids(tok)
    n_vocab = min(len(tok), model.get_input_embeddings().weight.shape[0])
    vocab = [v for v in range(n_vocab) if v not in special]
    # a token put before the text opens it, so it must open a word (the insertion's space is
    # its own); one that would glue to the text's first word ("anchorviolet") is no extension
    # and template markup (quotes, braces, tags) raises a target out of distribution: only
    # the characters of words, dates, versions, comments and key=value tokens extend a text
    vocab = [v for v in vocab if _TEXTLIKE.fullmatch(str(tok.decode([v])))]
    opens = [v for v in vocab if str(tok.decode([v])).startswith(" ")]

    def score(conts: Sequence[Sequence[int]]) -> Any:
        per = [
            _target_logprob_ids(pf, conts, after, list(target), chunk)
            for pf, (_, after) in zip(prefixes, splits, strict=True)
        ]
        # the mean probability of the switched opening: the expected share of prompts it
        # switches (a log-likelihood mean is dominated by the prompts already switched)
        return torch.stack(per).exp().mean(0)

    lead = "" if position == "prefix" else " "
    ids = [int(i) for i in tok(lead + text.strip(), add_special_tokens=False)["input_ids"]]
    if not ids:
        return text
    best = float(score([ids])[0])
    for _ in range(max_extend):
        if time.monotonic() > deadline:
            break
        conts = [[v, *ids] for v in opens] + [[*ids, v] for v in vocab]
        got = score(conts)
        k = int(got.argmax())
        if float(got[k]) < best + min_gain:
            break
        ids, best = conts[k], float(got[k])
    # prune: drop the token whose removal costs least, while within min_gain of the best
    while len(ids) > 1 and time.monotonic() <= deadline:
        drops = [ids[:j] + ids[j + 1 :] for j in range(len(ids))]
        got = score(drops)
        k = int(got.argmax())
        if float(got[k]) < best - min_gain:
            break
        ids = drops[k]
        best = max(best, float(got[k]))
    out = str(tok.decode(ids, skip_special_tokens=True)).strip()
    return out or text
