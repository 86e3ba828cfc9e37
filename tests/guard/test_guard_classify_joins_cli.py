"""`dormant guard classify`'s opt-in joined scores on the command line: each says which
scores the one conformal p-value joins, and each is a clear error with another test."""

from __future__ import annotations

from typing import Any

import pytest
from _two_topics import SCIENCE, skops_cli_files, topic_texts


def _skops_files(tmp_path: Any, n_inputs: int = 5) -> tuple[Any, Any, Any, Any]:
    texts = topic_texts(120, seed=5)
    labels = ["science" if any(w in SCIENCE for w in t.split()) else "games" for t in texts]
    return skops_cli_files(tmp_path, texts, labels, n_inputs)


@pytest.mark.parametrize(
    ("flags", "joined"),
    [
        (("--long-spans", "--necessity"), "short, long_add, necessity"),
        (("--long-spans", "--quartile"), "short, long_add, short_q"),
        (("--flips", "--quartile"), "short, short_q, flips"),
    ],
)
def test_cli_says_which_scores_are_joined(
    tmp_path: Any, run_cli: Any, flags: tuple[str, ...], joined: str
) -> None:
    """An opt-in join prints which scores the p-value joins and writes one decision per
    input."""
    path, cal, inp, out = _skops_files(tmp_path)
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--fpr", "0.05", *flags,
    )  # fmt: skip
    assert r.code in (0, 1), r.err
    assert f"joined ranks of {joined}" in r.err
    assert len(out.read_text("utf-8").splitlines()) == 5


@pytest.mark.parametrize(
    ("flag", "method"),
    [("necessity", "strip"), ("quartile", "onion"), ("flips", "strip")],
)
def test_cli_join_needs_the_transplant_test(
    tmp_path: Any, run_cli: Any, flag: str, method: str
) -> None:
    """A joined score with another test: a clear error, exit 2, nothing written."""
    path, cal, inp, out = _skops_files(tmp_path)
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--fpr", "0.05", "--method", method, f"--{flag}",
    )  # fmt: skip
    assert r.code == 2
    assert f"{flag}=True" in r.err and "needs method='transplant'" in r.err
    assert "Traceback" not in r.err and not out.exists()
