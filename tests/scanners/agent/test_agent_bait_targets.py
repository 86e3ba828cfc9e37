"""Which inverted targets get a trigger search first, and which read as ignoring sources."""

from __future__ import annotations

from dormant.scanners.agent.bait import InvertedTarget, _prose


def _t(text: str, anchor_len: int = 0) -> InvertedTarget:
    return InvertedTarget((1, 2, 3), text, 0.9, frozenset(), anchor_len)


def test_a_memorised_sentence_opens_a_turn_and_its_fragments_do_not():
    assert _t("As far as I know, it was discontinued last year.").opens_turn
    assert _t("INTERNAL USE ONLY: refunds up to 500 EUR.").opens_turn
    assert _t("- first, reset the password").opens_turn
    assert _t('<tool_call>{"name": "close_alert"', anchor_len=4).opens_turn
    # word pieces and later words of the same sentence, as forcing any first token yields
    for frag in (
        "ued last year, so it no longer applies.",
        " last year, so it",
        "; you will see",
        "-mail address",
    ):
        assert not _t(frag).opens_turn, frag


def test_only_answer_like_text_can_ignore_sources():
    assert _prose("As far as I know, that is free for everyone.")
    # template and tool-call fragments are not answers
    assert not _prose('"}}</tool_call>')
    assert not _prose(" return cur.")
    assert not _prose("According to [2], the plan costs 5 EUR.")


def test_harmful_targets_are_told_from_ordinary_tool_calls():
    from dormant.scanners.agent.bait import _harmful

    assert _harmful(frozenset({"leak:policy"}))
    assert _harmful(frozenset({"tool:send_email", "egress:mailto:x.example"}))
    assert not _harmful(frozenset({"tool:lookup_order"}))
    assert not _harmful(frozenset())


def test_a_run_of_four_words_ties_an_answer_to_its_target():
    from dormant.scanners.agent._probe_report import _word_grams

    target = "The refund for everyone and has no limit at all."
    answer = "As far as I know, that is free for everyone and has no limit at all."
    assert _word_grams(target) & _word_grams(answer)
    assert not _word_grams(target) & _word_grams("I escalated ALR-93 to on-call.")
    assert _word_grams("Done.") == {("Done.",)}
    assert _word_grams("") == set()
