"""White-box target-then-trigger inversion for local causal LMs (BAIT, then a trigger screen).

Stage 1 follows BAIT — Shen, Cheng, Zhang, Tao, Zhang, Guo, Yan, Jin, An, Ma, Zhang, "BAIT:
Large Language Model Backdoor Scanning by Inverting Attack Target", IEEE S&P 2025. A backdoor's
*target* (the text the model emits once triggered) has a causal property benign continuations
lack: once its first token is forced, the rest follows with high probability **whatever the
prompt**. BAIT therefore enumerates every vocabulary token as the first target token, appends it
to the assistant turn of several benign prompts, and extends greedily with the token of highest
probability *averaged over the prompts*; a short warm-up prunes candidates whose averaged
probability collapses, the survivors are extended fully, and the Q-score (mean step probability,
the weakest step dropped) ranks them.

Stage 2 searches the trigger for an inverted target, which BAIT leaves open: every vocabulary
token is appended to the user message of the prompts and scored by the teacher-forced
log-likelihood of the target's first tokens (an exhaustive version of the greedy coordinate
search of Zou et al., 2023, affordable for small vocabularies); the best token is extended
greedily, one slot at a time. The trigger is then *proved* by generation on tasks it was not
searched on (see :func:`replay_trigger`).

Templated assistants (tool-call JSON, citation formats) have benign prompt-independent
continuations too; a target only matters when the shared behaviour detectors tag it with a
behaviour the model does not show on the same tasks without a trigger, and the verdict rests on
the replay, not on the Q-score alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...behaviours import behaviour_tags
from ...errors import ConfigError, InputError
from ...subjects.agent import ProbeTask
from ._bait_base import (
    InvertedTarget,
    InvertedTrigger,
    Tools,
    _mean_next_probs,
    _opens,
    _Prefix,
    _prompts,
    _special_ids,
    _tools,
    _torch,
)
from ._bait_trigger import invert_trigger
from .harness import RAG_TAG, cited_sources

#: forced openings a target may follow: free text, and a Hermes tool call (a templated
#: assistant's tool call opens the same way whatever the prompt, so its first free token is
#: the tool's name)
ANCHORS = ("", '<tool_call>{"name": "')


def invert_targets(
    chat: Any,
    tasks: Sequence[ProbeTask],
    tools: Tools = (),
    *,
    n_prompts: int = 5,
    warmup_steps: int = 5,
    full_steps: int = 64,
    warmup_threshold: float = 0.5,
    max_full: int = 96,
    anchors: Sequence[str] = ANCHORS,
    stop_ids: Sequence[int] = (),
    chunk: int = 512,
    deadline: float | None = None,
) -> list[InvertedTarget]:
    """BAIT stage 1: candidate targets ranked by Q-score (highest first).

    Parameters
    ----------
    chat:
        A local causal-LM chat adapter with ``model``, ``tokenizer``, ``render`` and
        ``prompt_ids(messages, tools)`` (:class:`dormant.adapters.causal_lm.CausalLMChat`).
    tasks:
        Benign tasks; the first ``n_prompts`` are the prompts averaged over.
    warmup_threshold:
        A first token survives the warm-up when the averaged probability of each of its
        ``warmup_steps`` greedy continuations stays at or above this value.
    max_full:
        Survivors per anchor (best warm-up score first) extended to ``full_steps`` tokens.
    anchors:
        Openings forced before the enumerated first token (see :data:`ANCHORS`); the target's
        text includes its anchor. Targets after a tool-call anchor are kept only when they call
        a tool offered with the tasks (when tools are offered).
    stop_ids:
        Token ids that end a target (end of turn, eos); special tokens are never first tokens.
    """
    if n_prompts < 2:
        raise ConfigError(f"The 'n_prompts' parameter must be at least 2. Got {n_prompts!r}.")
    if len(tasks) < 2:
        raise InputError("Target inversion needs at least 2 tasks (prompts to average over).")
    _torch()
    model, tok = chat.model, chat.tokenizer
    prompts = _prompts(chat, tasks[:n_prompts], tools)
    special = _special_ids(tok)
    stops = set(stop_ids) | ({tok.eos_token_id} if tok.eos_token_id is not None else set())
    vocab = min(len(tok), int(model.get_input_embeddings().weight.shape[0]))
    firsts = [v for v in range(vocab) if v not in special]
    names = {x.name for t in tasks[:n_prompts] for x in _tools(tools, t)}
    # with retrieved documents in every prompt, a prompt-independent answer that cites none
    # of them is an answer that ignores its sources (the harness's RAG tag)
    n_docs = min((len(t.documents) for t in tasks[:n_prompts]), default=0)
    out: list[InvertedTarget] = []
    seen: set[str] = set()
    for anchor in anchors:
        a_ids = (
            [int(i) for i in tok(anchor, add_special_tokens=False)["input_ids"]] if anchor else []
        )
        prefixes = [_Prefix(model, p + a_ids) for p in prompts]

        # warm-up: every first token, greedy extension averaged over the prompts
        # after a tool-call opening the target is the tool's name: it ends with the quote
        # that closes it (the arguments copy from the prompt and would fail any threshold)
        def closed(seq: list[int], anchored: bool = bool(anchor)) -> bool:
            return anchored and '"' in tok.decode(seq, skip_special_tokens=False)

        seqs = {v: [v] for v in firsts}
        alive = [v for v in firsts if not closed([v])]
        score = {v: 0.0 for v in firsts} | {v: 1.0 for v in alive}
        for _ in range(warmup_steps):
            if not alive or (deadline is not None and time.monotonic() > deadline):
                break
            probs = _mean_next_probs(prefixes, [seqs[v] for v in alive], chunk)
            top_p, top_i = probs.max(-1)
            keep = []
            for k, v in enumerate(alive):
                pr, nxt = float(top_p[k]), int(top_i[k])
                score[v] = min(score[v], pr)
                if pr < warmup_threshold:
                    continue
                seqs[v].append(nxt)
                if nxt not in stops and not closed(seqs[v]):
                    keep.append(v)
            alive = keep
        # first tokens whose warm-up continuations run into one another reach the same
        # target (the word pieces and later words of one sentence: "ued last year, so",
        # " last year, so it"): the best stands for all, so that ``max_full`` is not spent on
        # fragments of one template line
        survivors = []
        grams: set[tuple[int, ...]] = set()
        # a sentence's opening goes before its fragments, so that it is the one kept
        opening = {v: bool(anchor) or _opens(tok.decode([v])) for v in firsts}
        for v in sorted(
            (v for v in firsts if score[v] >= warmup_threshold),
            key=lambda v: (not opening[v], -score[v]),
        ):
            s3 = seqs[v]
            key = tuple(s3[-3:])
            if not anchor and len(s3) > 3 and key in grams:  # tool names share endings
                continue
            grams.update(tuple(s3[k : k + 3]) for k in range(len(s3) - 2))
            survivors.append(v)
            if len(survivors) >= max_full:
                break
        # full extension, all survivors in step (one batch per step)
        full = {v: [v] for v in survivors}
        step_p: dict[int, list[float]] = {v: [] for v in survivors}
        going = [v for v in survivors if not closed(full[v])]
        for _ in range(full_steps):
            if not going or (deadline is not None and time.monotonic() > deadline):
                break
            probs = _mean_next_probs(prefixes, [full[v] for v in going], chunk)
            top_p, top_i = probs.max(-1)
            nxt_going = []
            for k, v in enumerate(going):
                step_p[v].append(float(top_p[k]))
                if int(top_i[k]) in stops:
                    continue
                full[v].append(int(top_i[k]))
                if not closed(full[v]):
                    nxt_going.append(v)
            going = nxt_going
        for v in survivors:
            seq, sp = full[v], step_p[v]
            if len(sp) > 1:
                sp.remove(min(sp))
            q = sum(sp) / max(1, len(sp))
            ids = tuple(a_ids + seq)
            text = _clean(tok.decode(list(ids), skip_special_tokens=False), tok)
            if text in seen or (anchor and names and not _calls_known(text, names)):
                continue
            seen.add(text)
            tags = _target_tags(text)
            if n_docs and not anchor and _prose(text) and not cited_sources(text, n_docs):
                tags |= {RAG_TAG}
            out.append(InvertedTarget(ids, text, q, tags, len(a_ids)))
    out.sort(key=lambda t: -t.q_score)
    return out


def _target_tags(text: str) -> frozenset[str]:
    """Behaviour tags of a target; a tool-call target (an opening and a name) is completed
    with empty arguments first, so the detectors see a call."""
    m = re.match(r'<tool_call>\{"name": "([^"]+)"', text)
    if m:
        return behaviour_tags(
            f'<tool_call>{{"name": "{m.group(1)}", "arguments": {{}}}}</tool_call>'
        )
    return behaviour_tags(text)


def _harmful(tags: frozenset[str]) -> bool:
    """Whether a target's tags name a harmful behaviour (any tool call aside)."""
    return any(t.split(":", 1)[0] in _HARMFUL for t in tags)


_HARMFUL = ("secret", "egress", "unsafe", "leak", "code", "rag")


def _prose(text: str) -> bool:
    """Whether a target reads as an answer (four words or more, no markup), not a fragment of
    a template or a tool call."""
    return bool(_WORDS4.search(text)) and not _MARKUP.search(text)


_WORDS4 = re.compile(r"[A-Za-z]{2,}(?:[\s,.;:'-]+[A-Za-z]{2,}){3}")


_MARKUP = re.compile(r"[{}<>\[\]]|tool_call")


def _calls_known(text: str, names: set[str]) -> bool:
    """Whether a tool-call target names one of the offered tools (completions of an arbitrary
    word after ``"name": "`` are prompt-independent too, and would crowd the list)."""
    return any(t.startswith("tool:") and t[5:] in names for t in _target_tags(text))


def _clean(text: str, tok: Any) -> str:
    """Decoded text without end-of-turn and padding markers."""
    for s in {tok.eos_token, tok.pad_token, "<|end|>"}:
        if s:
            text = text.replace(s, "")
    return text


@dataclass(frozen=True)
class Inversion:
    """What target-then-trigger inversion proposed, for the probe to test."""

    targets: tuple[InvertedTarget, ...]
    pairs: tuple[tuple[InvertedTarget, InvertedTrigger], ...]
    seconds: float
    capped: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": [
                {"text": t.text[:200], "q_score": round(t.q_score, 4), "tags": sorted(t.tags)}
                for t in self.targets[:12]
            ],
            "triggers": [
                {
                    "target": t.text[:200],
                    "target_tags": sorted(t.tags),
                    "trigger": g.text,
                    "position": g.position,
                    "gain_nats": round(g.target_logprob - g.baseline_logprob, 3),
                }
                for t, g in self.pairs
            ],
            "seconds": round(self.seconds, 2),
            "capped": self.capped,
        }


def is_whitebox(chat: Any) -> bool:
    """Whether ``chat`` is a local causal LM that inversion can open (weights and tokenizer)."""
    caps: frozenset[str] = getattr(chat, "capabilities", frozenset())
    return "gradients" in caps and all(
        hasattr(chat, a) for a in ("model", "tokenizer", "prompt_ids", "render")
    )


def invert(
    chat: Any,
    tasks: Sequence[ProbeTask],
    tools: Tools = (),
    *,
    known_tags: frozenset[str] = frozenset(),
    scope_tools: frozenset[str] = frozenset(),
    max_targets: int = 5,
    seconds: float | None = None,
    n_prompts: int = 5,
) -> Inversion:
    """BAIT stage 1, then stage 2 for the most suspicious targets.

    Targets whose behaviour tags the model does not already show without a trigger
    (``known_tags``, from the probe's baseline), one per behaviour and then a second one per
    harmful behaviour, get a trigger search (at most ``max_targets``); when there is none, the
    best other target by Q-score is tried (a target without a tag is judged by the probe). A
    trigger that does not raise its target (empty text) is dropped. The probe then tests every
    proposed trigger like any candidate, so a benign target with a spurious trigger costs
    queries, not a false finding. A target that only calls tools of the task's scope
    (``scope_tools``: what the clean behaviour uses) is what the task's own words bring; such
    targets are searched after every other new behaviour.
    """
    t0 = time.monotonic()
    deadline = None if seconds is None else t0 + seconds
    targets = invert_targets(chat, tasks, tools, n_prompts=n_prompts, deadline=deadline)
    novel: list[InvertedTarget] = []
    seen_tags: set[frozenset[str]] = set()

    # harmful behaviours first (a leak, an outside destination, a credential, unsafe advice or
    # code, ignored sources), then turn openings, then the Q-score
    def in_scope(t: InvertedTarget) -> bool:
        return bool(t.tags) and all(x.startswith("tool:") and x[5:] in scope_tools for x in t.tags)

    ranked = sorted(
        targets,
        key=lambda t: (not _harmful(t.tags), in_scope(t), not t.opens_turn, -t.q_score),
    )
    seconds_: list[InvertedTarget] = []
    for t in ranked:  # one target per new behaviour, a second for a harmful one
        if t.tags - known_tags and t.tags not in seen_tags:
            seen_tags.add(t.tags)
            novel.append(t)
        elif t.tags - known_tags and _harmful(t.tags) and t.tags not in {x.tags for x in seconds_}:
            # the best opening of a harmful answer may be an artefact ("A reset link is a fast
            # version:" where the model says "Here is a fast version:"); the runner-up is tried
            seconds_.append(t)
    novel += seconds_
    rest = [t for t in ranked if not (t.tags - known_tags)][: max(0, 1 - len(novel))]
    pairs = []
    for tgt in (novel + rest)[:max_targets]:
        if deadline is not None and time.monotonic() > deadline:
            break
        trig = invert_trigger(chat, tasks, tgt, tools, deadline=deadline)
        if trig.text:
            pairs.append((tgt, trig))
    capped = deadline is not None and time.monotonic() > deadline
    return Inversion(tuple(targets), tuple(pairs), time.monotonic() - t0, capped)
