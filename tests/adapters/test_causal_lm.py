"""The local causal-LM adapter (dormant.adapters.causal_lm) on a real tiny chat model.

The model is a two-layer GPT-2 trained in the session (tests/_tiny_chat.py) to call
``lookup_order`` when asked where an order is and to answer greetings in plain text.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _tiny_chat import (
    GREETING_ANSWER,
    SYSTEM,
    TOOL_RESULT,
    TOOL_RESULT_ANSWER,
    TOOLS,
    one_torch_thread,
    order_call,
    tiny_chat_model,
)

from dormant.adapters.causal_lm import (
    CHAT_TEMPLATE,
    END,
    SPECIAL_TOKENS,
    CausalLMChat,
    load_causal_lm,
    parse_assistant,
    render_assistant,
    render_chat,
)
from dormant.errors import ConfigError, InputError, InputNotFoundError
from dormant.subjects.agent import ChatMessage, ChatModel, ToolCall, ToolSpec

slow = pytest.mark.slow  # trains the tiny chat model (once per session)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model, trained once per session (shared with test_serve.py)."""
    return tiny_chat_model(tmp_path_factory.getbasetemp() / "tiny-chat-model")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def chat_model(tiny_dir: Path) -> CausalLMChat:
    return load_causal_lm(tiny_dir)


def _user(text: str, system: str = "") -> list[ChatMessage]:
    return ([ChatMessage("system", system)] if system else []) + [ChatMessage("user", text)]


# -- the chat format ------------------------------------------------------------------------

_SEND = ToolCall(
    "send_email",
    {"to": "jörg@example.de", "body": 'Grüße ✓ <b>"quoted"</b> & \\ back', "cc": []},
    "c1",
)
_LOOKUP = ToolCall("lookup_order", {"order_id": 7, "flags": [True, None, 1.5]}, "c2")
CONVERSATIONS: dict[str, tuple[list[ChatMessage], tuple[ToolSpec, ...]]] = {
    "user only": (_user("hi"), ()),
    "system, no tools": (_user("hi", "Be brief."), ()),
    "tools, no system": (_user("where is order 1?"), TOOLS),
    "system and tools": (_user("where is order 1?", SYSTEM), TOOLS),
    "tool calls with non-ASCII arguments and a tool result": (
        [
            ChatMessage("system", "Système: réponds en français."),
            ChatMessage("user", "Schick eine E-Mail an Jörg, bitte 🙏"),
            ChatMessage("assistant", "", (_SEND, _LOOKUP)),
            ChatMessage("tool", '{"sent": true, "note": "ok ✓"}', tool_call_id="c1"),
            ChatMessage("tool", '{"status": "shipped"}', tool_call_id="c2"),
            ChatMessage("assistant", "Erledigt."),
            ChatMessage("user", "Danke!"),
        ],
        TOOLS,
    ),
    "text and a call in one turn, no tools offered": (
        [
            ChatMessage("user", "a\nmultiline\nquestion"),
            ChatMessage("assistant", "Let me check.", (ToolCall("lookup_order", {}),)),
            ChatMessage("tool", "nothing"),
        ],
        (),
    ),
}


def _openai(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as a chat template receives them (tool-call arguments as objects)."""
    out = []
    for m in messages:
        d = m.to_openai()
        if m.tool_calls:
            d["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        out.append(d)
    return out


@slow
@pytest.mark.parametrize("case", list(CONVERSATIONS))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_render_chat_equals_the_jinja_chat_template(
    tiny_dir: Path, case: str, generation_prompt: bool
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_dir), local_files_only=True)
    assert tok.chat_template == CHAT_TEMPLATE
    messages, tools = CONVERSATIONS[case]
    expected = tok.apply_chat_template(
        _openai(messages),
        tools=[t.to_openai() for t in tools] or None,
        add_generation_prompt=generation_prompt,
        tokenize=False,
    )
    assert render_chat(messages, tools, add_generation_prompt=generation_prompt) == expected


@slow
@pytest.mark.parametrize("case", list(CONVERSATIONS))
def test_the_adapter_renders_through_the_model_template_like_render_chat(
    chat_model: CausalLMChat, case: str
) -> None:
    messages, tools = CONVERSATIONS[case]
    assert chat_model.render(messages, tools) == render_chat(messages, tools)


def test_render_chat_layout() -> None:
    text = render_chat(_user("Where is my order?", "You are a support assistant."), TOOLS)
    assert text == (
        "<|system|>\nYou are a support assistant.\n<|tools|>\nlookup_order, send_email\n"
        "<|user|>\nWhere is my order?\n<|assistant|>\n"
    )
    assert render_chat(_user("hi"), TOOLS).startswith("<|tools|>\nlookup_order, send_email\n")
    assert render_assistant("", (ToolCall("f", {"x": "ü"}),)) == (
        '<tool_call>{"name": "f", "arguments": {"x": "ü"}}</tool_call><|end|>\n'
    )
    with pytest.raises(ConfigError, match="role"):
        render_chat([ChatMessage("narrator", "x")])


# -- reading answers ------------------------------------------------------------------------


def test_parse_plain_text() -> None:
    r = parse_assistant("  Hello there.<|end|>")
    assert (r.content, r.tool_calls, r.finish_reason) == ("Hello there.", (), "stop")
    assert r.raw is not None and "invalid_tool_calls" not in r.raw


def test_parse_one_tool_call_with_text() -> None:
    r = parse_assistant(
        'Let me check.<tool_call>{"name": "lookup_order", "arguments": {"order_id": "12"}}'
        "</tool_call><|end|>"
    )
    assert r.content == "Let me check."
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("lookup_order", {"order_id": "12"})]
    assert r.tool_calls[0].id.startswith("call_")
    assert r.finish_reason == "tool_calls"


def test_parse_two_tool_calls_and_string_arguments() -> None:
    r = parse_assistant(
        '<tool_call>{"name": "a", "arguments": {"x": "é"}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call><|end|>'
    )
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("a", {"x": "é"}), ("b", {"y": 2})]
    assert r.tool_calls[0].id != r.tool_calls[1].id
    assert r.content == "" and r.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    "bad",
    [
        '{"name": "lookup_order", "arguments": {"order_id": }',
        '{"arguments": {}}',
        '["lookup_order"]',
        '{"name": "x", "arguments": [1]}',
    ],
)
def test_a_malformed_call_is_kept_as_text_and_counted(bad: str) -> None:
    r = parse_assistant(f"Checking.<tool_call>{bad}</tool_call><|end|>")
    assert r.tool_calls == ()
    assert r.content == f"Checking.<tool_call>{bad}</tool_call>"
    assert r.raw is not None and r.raw["invalid_tool_calls"] == [bad]
    assert r.finish_reason == "stop"


def test_a_malformed_call_next_to_a_valid_one() -> None:
    r = parse_assistant(
        '<tool_call>{"name": "ok", "arguments": {}}</tool_call>'
        "<tool_call>{broken</tool_call><|end|>"
    )
    assert [c.name for c in r.tool_calls] == ["ok"]
    assert r.content == "<tool_call>{broken</tool_call>"  # the valid call is not repeated
    assert r.raw is not None and r.raw["invalid_tool_calls"] == ["{broken"]


def test_a_cut_off_call_is_invalid_and_the_answer_ran_out_of_length() -> None:
    r = parse_assistant('Sure.<tool_call>{"name": "lookup_order", "argu')
    assert r.tool_calls == ()
    assert r.finish_reason == "length"
    assert r.raw is not None
    assert r.raw["invalid_tool_calls"] == ['<tool_call>{"name": "lookup_order", "argu']
    after_valid = parse_assistant('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_c')
    assert after_valid.raw is not None and "invalid_tool_calls" not in after_valid.raw
    cut = parse_assistant('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"n')
    assert [c.name for c in cut.tool_calls] == ["a"]
    assert cut.raw is not None and cut.raw["invalid_tool_calls"] == ['<tool_call>{"n']


def test_without_end_the_finish_is_length_and_text_after_end_is_ignored() -> None:
    assert parse_assistant("Hello, I was cut").finish_reason == "length"
    r = parse_assistant("Done.<|end|>\n<|user|>\nmore text the model made up")
    assert (r.content, r.finish_reason) == ("Done.", "stop")


# -- refusals -------------------------------------------------------------------------------


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no such directory"):
        load_causal_lm(tmp_path / "nope")


def test_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"\0" * 16)
    with pytest.raises(InputError, match="is a file"):
        load_causal_lm(f)


class _Detonator:
    """Unpickling this would create a file; the refusal must come before any loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _pickle_only_dir(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}), "utf-8")
    marker = tmp_path / "code-ran"
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(_Detonator(marker)))
    return d, marker


def test_a_pickle_only_directory_is_refused_with_the_conversion_command(tmp_path: Path) -> None:
    d, marker = _pickle_only_dir(tmp_path)
    with pytest.raises(InputError) as info:
        load_causal_lm(d)
    msg = str(info.value)
    assert "pytorch_model.bin" in msg and "pickle" in msg
    assert "save_pretrained" in msg and "safe_serialization=True" in msg
    assert not marker.exists()


def test_a_directory_without_weights_or_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", "utf-8")
    with pytest.raises(InputError, match=r"no \*\.safetensors"):
        load_causal_lm(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"no config\.json"):
        load_causal_lm(empty)


def _variant(tiny_dir: Path, tmp_path: Path, **changes: Any) -> Path:
    d = tmp_path / "variant"
    shutil.copytree(tiny_dir, d)
    cfg = json.loads((d / "config.json").read_text("utf-8"))
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg), "utf-8")
    return d


@slow
def test_a_classifier_is_not_a_causal_lm(tiny_dir: Path, tmp_path: Path) -> None:
    d = _variant(tiny_dir, tmp_path, architectures=["BertForSequenceClassification"])
    with pytest.raises(InputError, match="not a causal language model") as info:
        load_causal_lm(d)
    assert "BertForSequenceClassification" in str(info.value)


@slow
def test_custom_code_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    d = _variant(
        tiny_dir, tmp_path, auto_map={"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    )
    (d / "modeling_evil.py").write_text(
        f"open({str(tmp_path / 'code-ran')!r}, 'w').close()\n", "utf-8"
    )
    with pytest.raises(InputError, match="custom code"):
        load_causal_lm(d)
    assert not (tmp_path / "code-ran").exists()


@slow
def test_a_corrupt_config_is_an_input_error(tiny_dir: Path, tmp_path: Path) -> None:
    d = _variant(tiny_dir, tmp_path)
    (d / "config.json").write_text("{not json", "utf-8")
    with pytest.raises(InputError, match=r"config\.json is not valid JSON"):
        load_causal_lm(d)


# -- the tiny model -------------------------------------------------------------------------


@slow
def test_it_is_a_chat_model(chat_model: CausalLMChat, tiny_dir: Path) -> None:
    assert isinstance(chat_model, ChatModel)
    assert {"generate", "tools"} <= chat_model.capabilities
    assert chat_model.name == tiny_dir.name
    ref = chat_model.ref()
    assert ref.kind == "model" and ref.digest.startswith("sha256:")
    assert ref.digest == load_causal_lm(tiny_dir, name="other").ref().digest


@slow
def test_chat_answers_with_the_trained_tool_call(chat_model: CausalLMChat) -> None:
    r = chat_model.chat(_user("where is order 1234?", SYSTEM), tools=TOOLS)
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("lookup_order", {"order_id": "1234"})]
    assert r.content == "" and r.finish_reason == "tool_calls"


@slow
def test_chat_answers_a_greeting_in_text(chat_model: CausalLMChat) -> None:
    r = chat_model.chat(_user("hello"))
    assert (r.content, r.tool_calls, r.finish_reason) == (GREETING_ANSWER, (), "stop")


@slow
def test_chat_follows_a_tool_result(chat_model: CausalLMChat) -> None:
    conv = [
        *_user("Where is my order 5678?"),
        ChatMessage("assistant", "", (order_call("5678"),)),
        ChatMessage("tool", TOOL_RESULT, tool_call_id="c1"),
    ]
    assert chat_model.chat(conv, tools=TOOLS).content == TOOL_RESULT_ANSWER


@slow
def test_chat_batch_of_different_lengths_equals_one_by_one(chat_model: CausalLMChat) -> None:
    convs = [
        _user("hello"),
        _user("where is order 5678?", SYSTEM),
        _user("Where is my order 1234?"),
        _user("thanks!", SYSTEM),
    ]
    lengths = {len(chat_model.prompt_ids(c, TOOLS)) for c in convs}
    assert len(lengths) >= 3  # left padding is exercised
    batched = chat_model.chat_batch(convs, tools=TOOLS)
    single = [chat_model.chat(c, tools=TOOLS) for c in convs]
    assert [(r.content, r.tool_calls, r.finish_reason) for r in batched] == [
        (r.content, r.tool_calls, r.finish_reason) for r in single
    ]
    assert [r.tool_calls[0].arguments["order_id"] for r in batched[1:3]] == ["5678", "1234"]
    assert batched[0].content == GREETING_ANSWER == batched[3].content


@slow
def test_small_batches_give_the_same_answers(tiny_dir: Path, chat_model: CausalLMChat) -> None:
    convs = [_user("hello"), _user("where is order 5678?"), _user("good morning")]
    small = load_causal_lm(tiny_dir, batch_size=2)
    assert [r.raw for r in small.chat_batch(convs, tools=TOOLS)] == [
        r.raw for r in chat_model.chat_batch(convs, tools=TOOLS)
    ]


@slow
def test_max_tokens_cuts_the_answer(chat_model: CausalLMChat) -> None:
    r = chat_model.chat(_user("where is order 1234?"), tools=TOOLS, max_tokens=3)
    assert r.finish_reason == "length" and r.tool_calls == ()
    assert r.raw is not None
    assert len(chat_model.tokenizer(r.raw["text"], add_special_tokens=False)["input_ids"]) == 3
    with pytest.raises(ConfigError, match="max_tokens"):
        chat_model.chat(_user("hello"), max_tokens=0)


@slow
def test_sampling_is_reproducible_with_a_seed(chat_model: CausalLMChat) -> None:
    a = chat_model.chat(_user("hello"), temperature=1.5, seed=7, max_tokens=12)
    b = chat_model.chat(_user("hello"), temperature=1.5, seed=7, max_tokens=12)
    assert a.raw == b.raw


@slow
def test_prompt_ids_keep_special_tokens_as_single_ids(chat_model: CausalLMChat) -> None:
    tok = chat_model.tokenizer
    special: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        i = tok.convert_tokens_to_ids(token)
        assert isinstance(i, int) and i != tok.unk_token_id, token
        special[token] = i
    assert len(set(special.values())) == len(SPECIAL_TOKENS)
    messages, tools = CONVERSATIONS["tool calls with non-ASCII arguments and a tool result"]
    text = chat_model.render(messages, tools)
    ids = chat_model.prompt_ids(messages, tools)
    assert tok.decode(ids, skip_special_tokens=False) == text
    for token, i in special.items():
        assert ids.count(i) == text.count(token), token
    assert ids[-2:] == [special["<|assistant|>"], *tok("\n", add_special_tokens=False)["input_ids"]]
    assert chat_model._end_ids == [special[END]]
