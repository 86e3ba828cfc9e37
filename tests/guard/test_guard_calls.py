"""Wire formats to the guard's nouns: a call that does not parse is denied, never passed through."""

from __future__ import annotations

import pytest

pytest.importorskip("cedarpy", reason="needs the 'guard' extra")

from _guard_policy import MODEL, write_policy

from dormant.guard import DecisionContext, GuardPolicy, ModelInfo, ProvenanceState, decide
from dormant.guard.calls import call_from_mcp, call_from_openai, request_texts, system_prompt


def test_openai_and_mcp_calls_parse():
    c = call_from_openai(
        {"id": "c1", "type": "function", "function": {"name": "x", "arguments": '{"a": 1}'}}
    )
    assert (c.tool, c.arguments, c.call_id, c.raw_arguments) == ("x", {"a": 1}, "c1", None)
    assert call_from_openai({"function": {"name": "x", "arguments": ""}}).arguments == {}
    assert call_from_openai({"name": "x", "arguments": {"a": 2}}).arguments == {"a": 2}
    assert call_from_mcp({"name": "y", "arguments": {"b": 1}}).arguments == {"b": 1}
    assert call_from_mcp({"name": "y"}).arguments == {}


@pytest.mark.parametrize(
    "wire",
    [
        {"id": "c", "function": {"name": "lookup_order", "arguments": '{"a": '}},
        {"id": "c", "function": {"name": "lookup_order", "arguments": "[1, 2]"}},
        {"id": "c", "function": {"name": "lookup_order", "arguments": 7}},
        {"id": "c", "function": {"arguments": "{}"}},
        {"id": "c", "function": "lookup_order"},
        "lookup_order",
        None,
    ],
)
def test_malformed_wire_calls_are_denied(tmp_path, wire):
    policy = GuardPolicy.load(write_policy(tmp_path))
    ctx = DecisionContext("support-bot", ModelInfo(MODEL, None, ProvenanceState.VERIFIED))
    d = decide(ctx, call_from_openai(wire), policy=policy)
    assert d.outcome.value == "deny" and d.reasons[0].startswith("malformed call")


def test_request_texts_and_system_prompt():
    messages = [
        {"role": "system", "content": "You are the support bot."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "fetch", "arguments": '{"u": "x"}'}}],
        },
        {"role": "tool", "content": "page text"},
        "garbage",
    ]
    assert request_texts(messages) == [
        ("message[0]", "You are the support bot."),
        ("message[1]", "hi"),
        ("tool_call[2]", '{"u": "x"}'),
        ("tool_result[3]", "page text"),
    ]
    assert system_prompt(messages) == "You are the support bot."
    assert system_prompt([{"role": "user", "content": "x"}]) is None


def test_the_guard_package_exports_what_it_lists():
    import dormant.guard as guard

    for name in guard.__all__:
        assert getattr(guard, name) is not None, name
    with pytest.raises(AttributeError):
        guard.no_such_thing  # noqa: B018
