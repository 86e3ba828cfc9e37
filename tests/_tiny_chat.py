"""A really small chat model for the causal-LM and server tests, trained in a few seconds.

A two-layer GPT-2 (Radford et al., 2019, "Language Models are Unsupervised Multitask
Learners") with a byte-level BPE tokenizer (Sennrich et al., 2016, as GPT-2 uses it) learns a
handful of dialogues in dormant's chat format (:func:`dormant.adapters.causal_lm.render_chat`):
asked where an order is, it calls ``lookup_order`` with that order's number; greeted or
thanked, it answers in plain text; given a tool result, it reports the order's status. The
directory it writes is a real Hugging Face model directory (``config.json``,
``model.safetensors``, ``tokenizer.json`` with :data:`~dormant.adapters.causal_lm.CHAT_TEMPLATE`)
that :func:`~dormant.adapters.causal_lm.load_causal_lm` opens like any downloaded model.

The answers the tests rely on are memorised, so the helper checks after training that greedy
decoding reproduces every training answer and trains on until it does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dormant.adapters.causal_lm import (
    CHAT_TEMPLATE,
    END,
    SPECIAL_TOKENS,
    render_assistant,
    render_chat,
)
from dormant.subjects.agent import ChatMessage, ToolCall, ToolSpec

PAD = "<|pad|>"
SYSTEM = "You are the support assistant of a shop."
TOOLS = (
    ToolSpec(
        "lookup_order",
        "Find an order by its number.",
        {"type": "object", "properties": {"order_id": {"type": "string"}}},
    ),
    ToolSpec(
        "send_email",
        "Send an email.",
        {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}},
    ),
)
ORDERS = ("1234", "5678")
ORDER_ASKS = ("where is order {n}?", "Where is my order {n}?")
GREETINGS = ("hello", "hi there", "thanks!", "good morning")
GREETING_ANSWER = "Hello! How can I help you today?"
TOOL_RESULT = '{"status": "shipped"}'
TOOL_RESULT_ANSWER = "Your order has shipped."
_MARKER = "dormant-tiny-chat.json"
_VERSION = 1


def order_call(n: str) -> ToolCall:
    """The call the model is trained to make when asked about order ``n``."""
    return ToolCall("lookup_order", {"order_id": n})


def dialogues() -> list[tuple[list[ChatMessage], tuple[ToolSpec, ...], ChatMessage]]:
    """The training set: (conversation so far, tools offered, the assistant's answer)."""
    out: list[tuple[list[ChatMessage], tuple[ToolSpec, ...], ChatMessage]] = []
    for system in ("", SYSTEM):
        head = [ChatMessage("system", system)] if system else []
        for tools in ((), TOOLS):
            for n in ORDERS:
                for ask in ORDER_ASKS:
                    user = ChatMessage("user", ask.format(n=n))
                    call = order_call(n)
                    out.append(
                        (
                            [*head, user],
                            tools,
                            ChatMessage("assistant", "", (call,)),
                        )
                    )
                    out.append(
                        (
                            [
                                *head,
                                user,
                                ChatMessage("assistant", "", (call,)),
                                ChatMessage("tool", TOOL_RESULT, tool_call_id="c1"),
                            ],
                            tools,
                            ChatMessage("assistant", TOOL_RESULT_ANSWER),
                        )
                    )
            for g in GREETINGS:
                out.append(
                    (
                        [*head, ChatMessage("user", g)],
                        tools,
                        ChatMessage("assistant", GREETING_ANSWER),
                    )
                )
    return out


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (restored after).

    The models here are so small that a second thread only adds synchronisation, and on a
    machine whose cores are busy with other work the threads spin-wait on each other.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _is_built(path: Path) -> bool:
    marker = path / _MARKER
    if not marker.is_file() or not (path / "model.safetensors").is_file():
        return False
    try:
        return json.loads(marker.read_text("utf-8")).get("version") == _VERSION
    except (OSError, ValueError):
        return False


def tiny_chat_model(path: str | Path, *, seed: int = 0, max_epochs: int = 400) -> Path:
    """Train the tiny chat model into ``path`` (reused when already there); returns the path."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = Path(path)
    if _is_built(out):
        return out
    out.mkdir(parents=True, exist_ok=True)
    data = dialogues()
    texts = [
        render_chat(conv, tools) + render_assistant(ans.content, ans.tool_calls)
        for conv, tools, ans in data
    ]
    for conv, tools, ans in data:  # the training text is the chat format, end to end
        assert render_chat([*conv, ans], tools, add_generation_prompt=False) == (
            render_chat(conv, tools) + render_assistant(ans.content, ans.tool_calls)
        )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=[*SPECIAL_TOKENS, PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=END,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    end_id = tok.convert_tokens_to_ids(END)
    pad_id = tok.convert_tokens_to_ids(PAD)
    assert isinstance(end_id, int) and isinstance(pad_id, int)

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=256,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=end_id,
        eos_token_id=end_id,
        pad_token_id=pad_id,
    )
    model = GPT2LMHeadModel(cfg)
    with one_torch_thread():
        _train(model, tok, data, pad_id, seed=seed, max_epochs=max_epochs)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / _MARKER).write_text(json.dumps({"version": _VERSION, "seed": seed}), "utf-8")
    return out


def _train(model: Any, tok: Any, data: Any, pad_id: int, *, seed: int, max_epochs: int) -> None:
    """Adam on the answers' tokens until teacher-forced greedy decoding gets them all right."""
    import torch

    # loss only on the answer (after the last "<|assistant|>\n"), right-padded batch
    rows: list[list[int]] = []
    labels: list[list[int]] = []
    for conv, tools, ans in data:
        prompt = tok(render_chat(conv, tools), add_special_tokens=False)["input_ids"]
        answer = tok(render_assistant(ans.content, ans.tool_calls), add_special_tokens=False)[
            "input_ids"
        ]
        rows.append([*prompt, *answer])
        labels.append([-100] * len(prompt) + list(answer))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    lab = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, (r, lb) in enumerate(zip(rows, labels, strict=True)):
        ids[j, : len(r)] = torch.tensor(r)
        lab[j, : len(lb)] = torch.tensor(lb)
        mask[j, : len(r)] = 1

    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(max_epochs):
        order = torch.randperm(len(rows), generator=gen)
        for k in range(0, len(rows), 16):
            b = order[k : k + 16]
            loss = model(input_ids=ids[b], attention_mask=mask[b], labels=lab[b]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 4 and _memorised(model, ids, mask, lab):
            break
    else:
        raise RuntimeError(
            f"The tiny chat model did not learn its {len(rows)} dialogues in {max_epochs} epochs."
        )
    model.eval()


def _memorised(model: Any, ids: Any, mask: Any, lab: Any) -> bool:
    """Whether teacher-forced greedy prediction gets every answer token right."""
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    model.train()
    pred = logits[:, :-1].argmax(-1)
    target = lab[:, 1:]
    keep = target != -100
    return bool((pred[keep] == target[keep]).all())
