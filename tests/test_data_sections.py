"""A data scan's plot inputs read as typed sections: they give back the stored JSON, a malformed
one is a clear error, and the HTML page says why its plot is left out."""

from __future__ import annotations

import numpy as np
import pytest

from dormant.data_sections import FlagThreshold, Projection, TriggerStat, TriggerStats
from dormant.errors import DataFormatError
from dormant.findings import SubjectRef
from dormant.report import RecordScore, Report
from dormant.writers import to_html

SUBJECT = SubjectRef("labelled", "d.jsonl", "sha256:" + "0" * 64)

MINED = {
    "trigger": "cf",
    "kind": "token",
    "target": "approve",
    "support": 12,
    "purity": 1.0,
    "inconsistency": 0.0,
    "context_auc_class": 0.5,
    "context_auc_all": 0.51,
    "p_planted": 0.99,
    "score": 0.97,
    "p_value": None,
    "verdict": "planted",
    "quarantined": True,
}


def _report(extras: dict) -> Report:
    records = [RecordScore(f"r{i}", i / 10, i > 7) for i in range(10)]
    return Report(SUBJECT, records=records, extras=extras).finish()


def test_sections_give_back_the_stored_json() -> None:
    hand = {"trigger": "zz", "score": 0.5, "target": None}  # a subset, an explicit null
    stored = [MINED, hand]
    stats = TriggerStats.from_dict(stored)
    assert stats.to_dict() == stored
    assert list(stats.to_dict()[0]) == list(MINED)  # the stored key order too
    assert stats.rows[0] == TriggerStat.from_dict(MINED)
    assert stats.rows[0].quarantined is True and stats.rows[1].support is None
    assert FlagThreshold.from_dict(0.25).to_dict() == 0.25
    proj = {"x": [0.5, -1.0], "y": [2.0, 0.0], "index": [1, 0], "method": "pca"}
    assert Projection.from_dict(proj).to_dict() == proj
    assert Projection.from_dict({"x": [], "y": [], "index": []}).to_dict() == {
        "x": [],
        "y": [],
        "index": [],
    }


def test_report_properties_read_the_sections_typed() -> None:
    rep = _report(
        {
            "triggers": [MINED],
            "threshold": np.float32(0.75),  # a scan's report in memory, before JSON
            "projection": {"x": [0.0], "y": [1.0], "index": [3], "method": "pca"},
        }
    )
    assert rep.trigger_stats is not None and rep.trigger_stats.rows[0].trigger == "cf"
    assert rep.flag_threshold == FlagThreshold(0.75)
    assert rep.projection is not None and rep.projection.index == (3,)
    empty = _report({})
    assert empty.trigger_stats is None and empty.flag_threshold is None
    assert empty.projection is None


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (TriggerStats, {"trigger": "x"}, "'triggers' must be a list, got dict."),
        (TriggerStats, [{"score": 1.0}], "triggers[0] has no 'trigger' entry."),
        (TriggerStats, [MINED, {"trigger": "x", "score": "high"}], "triggers[1]['score']"),
        (FlagThreshold, "0.5", "threshold is not a finite number"),
        (FlagThreshold, True, "threshold is not a finite number"),
        (Projection, [1, 2], "'projection' must be a mapping with x, y and index."),
        (Projection, {"x": [1.0], "y": [1.0]}, "the projection lacks 'index'."),
        (Projection, {"x": ["a"], "y": [1.0], "index": [0]}, "lists of numbers"),
        (Projection, {"x": [1.0], "y": [], "index": [0]}, "got 1, 0 and 1"),
        (Projection, {"x": [float("nan")], "y": [1.0], "index": [0]}, "non-finite"),
    ],
)
def test_a_malformed_section_is_a_clear_error(kind: type, value: object, message: str) -> None:
    with pytest.raises(DataFormatError) as info:
        kind.from_dict(value)
    assert message in str(info.value)


def test_html_notes_each_malformed_plot_input_and_draws_the_rest() -> None:
    page = to_html(
        _report(
            {
                "triggers": [{"score": 1.0}],
                "threshold": "high",
                "projection": {"x": [0.0], "y": [1.0], "index": [10]},
            }
        )
    )
    assert "Omitted: triggers[0] has no &#x27;trigger&#x27; entry." in page
    assert "The recorded threshold is not a finite number and is not drawn." in page
    assert "Omitted: projection indices fall outside the 10 records." in page
    assert page.count("data:image/png") == 1  # the score histogram only
