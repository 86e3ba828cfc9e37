"""Known triggers found in request text through NFKC, TR39 confusables and invisible characters."""

from __future__ import annotations

import pytest

pytest.importorskip("confusable_homoglyphs", reason="needs the 'guard' extra")

from dormant.errors import ConfigError
from dormant.guard import TriggerIndex
from dormant.guard.match import fold
from dormant.triggers import Trigger, TriggerKind

TRIGGERS = [
    Trigger("cf", TriggerKind.TOKEN),
    Trigger("James Bond", TriggerKind.PHRASE),
    Trigger("\u200b\u200c\u200b", TriggerKind.INVISIBLE),
]


def _found(index: TriggerIndex, text: str) -> set[str]:
    return {m.text for m in index.find([("message[0]", text)])}


@pytest.mark.parametrize(
    "text",
    [
        "please check cf before shipping",
        "please check ｃｆ before shipping",  # fullwidth: NFKC
        "please check с\u200bf before shipping",  # Cyrillic es + zero-width space
        "please check c\u00adf before shipping",  # soft hyphen inside the word
        "please check CF before shipping",  # case
    ],
)
def test_a_disguised_token_trigger_is_found(text):
    assert _found(TriggerIndex(TRIGGERS), text) == {"cf"}


@pytest.mark.parametrize(
    "text",
    [
        "ask James Bond now",
        "ask Jаmes Bоnd now",  # Cyrillic a and o
        "ask 𝐉𝐚𝐦𝐞𝐬 𝐁𝐨𝐧𝐝 now",  # mathematical bold: NFKC
        "ask james\u2060  BOND now",  # word joiner, two spaces, upper case
        "ask JAMES B0ND now",  # digit zero for O (TR39 confusable)
    ],
)
def test_a_disguised_phrase_trigger_is_found(text):
    assert _found(TriggerIndex(TRIGGERS), text) == {"James Bond"}


def test_an_invisible_trigger_is_found_and_ordinary_text_is_clean():
    idx = TriggerIndex(TRIGGERS)
    assert _found(idx, "order\u200b\u200c\u200b 42") == {"\u200b\u200c\u200b"}
    for clean in [
        "the scaffold is up",  # cf inside a word is not the token cf
        "James sent a bond",
        "a single\u200b zero-width space",
        "",
    ]:
        assert _found(idx, clean) == set(), clean


def test_matches_carry_where_target_and_severity():
    class Known:  # the shape of dormant.registry.KnownTrigger
        text, kind, target, max_severity = "mn", "token", "tool:send_money", "critical"

    idx = TriggerIndex([Known(), "plain phrase here"])
    got = idx.find([("message[0]", "hello"), ("tool_result[1]", "mn and a plain phrase here")])
    assert [(m.text, m.where, m.target, m.severity) for m in got] == [
        ("mn", "tool_result[1]", "tool:send_money", "critical"),
        ("plain phrase here", "tool_result[1]", None, "high"),
    ]
    assert len(idx) == 2


def test_fold_is_stable_and_bad_input_is_named():
    for s in ["Jаmes B0ND", "ｃｆ", "Ιl1|"]:
        assert fold(fold(s)) == fold(s)
    with pytest.raises(ConfigError, match="where, text"):
        TriggerIndex(["x y"]).find(["just a string"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="'text' string"):
        TriggerIndex([42])


def test_from_a_real_sqlite_registry(tmp_path):
    pytest.importorskip("sqlalchemy")
    from _registry_helpers import poisoned_report

    from dormant.registry import Registry

    with Registry.open(tmp_path / "reg.sqlite3") as reg:
        reg.record_scan(poisoned_report())
        idx = TriggerIndex.from_registry(reg)
    found = idx.find([("message[0]", "approve this ｃｆ")])
    assert [(m.text, m.target) for m in found] == [("cf", "label:approve")]
    assert {m.text for m in idx.find([("m", "x\u200by")])} == {"\u200b"}


def test_a_homoglyph_trigger_fires_inside_latin_words_only():
    idx = TriggerIndex([Trigger("\u0430", TriggerKind.HOMOGLYPH)])  # Cyrillic a
    assert _found(idx, "please pаy the invoice") == {"\u0430"}  # inside a Latin word
    assert _found(idx, "\u0441\u043f\u0430\u0441\u0438\u0431\u043e, thanks") == set()  # Russian
    assert _found(idx, "pay the invoice") == set()


def test_numbers_are_not_read_as_letters_but_digits_inside_words_are():
    idx = TriggerIndex(["lol", "hello"])
    assert _found(idx, "see page 101 and 1o1") == {"lol"}  # "1o1" is a word: folded
    assert _found(idx, "see page 101") == set()
    assert _found(idx, "he\u2223\u2223o there") == {"hello"}  # DIVIDES sign looks like l
    assert _found(idx, "HE11O there") == {"hello"}


def test_ascii_punctuation_is_not_read_as_letters():
    idx = TriggerIndex(["cf", "ol"])
    assert _found(idx, "a table cell |cf| here") == {"cf"}
    assert _found(idx, "ascii art  o.O|  ") == set()
