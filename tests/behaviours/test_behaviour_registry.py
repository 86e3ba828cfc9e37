"""The behaviours package's one contract and one registry: any object with the Detector shape is
run, the registry hands every stage the same detectors, and bad registrations are refused."""

from __future__ import annotations

import importlib

import pytest

from dormant.behaviours import (
    DETECTORS,
    BehaviourHit,
    Detector,
    behaviour_tags,
    detect_behaviours,
    get_detector,
    register_detector,
    registered_detectors,
)
from dormant.errors import ConfigError


class Shouting:
    """A detector that subclasses nothing: the protocol is the whole contract."""

    name = "shouting-test"
    reads = "text"
    families = ("unsafe",)

    def detect(self, text: str) -> list[BehaviourHit]:
        return [BehaviourHit("unsafe:shouting", (0, len(text)))] if text.isupper() else []


def test_an_object_of_the_detector_shape_is_a_detector_and_runs() -> None:
    det = Shouting()
    assert isinstance(det, Detector)
    assert behaviour_tags("STOP THAT NOW", detectors=[det]) == {"unsafe:shouting"}
    assert detect_behaviours("calm words", detectors=[det]) == []
    assert all(isinstance(d, Detector) for d in DETECTORS)


def test_the_registry_holds_the_built_ins_by_name_in_run_order() -> None:
    names = [d.name for d in registered_detectors()]
    assert names[: len(DETECTORS)] == [d.name for d in DETECTORS]
    assert get_detector("secret") is DETECTORS[2]
    assert [d.name for d in registered_detectors(reads="tool-calls")] == ["tool-call"]
    assert "tool-call" not in {d.name for d in registered_detectors(reads="text")}


def test_the_guard_and_the_corpus_scan_use_the_registered_detectors() -> None:
    decide = importlib.import_module("dormant.guard.decide")
    _screen = importlib.import_module("dormant.guard._screen")
    _findings = importlib.import_module("dormant.scanners.corpus._findings")
    _patterns = importlib.import_module("dormant.scanners.corpus._patterns")

    assert decide._SECRET is _screen._SECRET is _findings._SECRETS is get_detector("secret")
    assert decide._EGRESS is _patterns._EGRESS is get_detector("egress")
    assert _screen._LEAK is get_detector("leakage")
    assert _screen._CODE is get_detector("insecure-code")


def test_bad_registrations_and_lookups_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"must be a Detector.*Got str"):
        register_detector("egress")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'secret' is empty or already registered"):
        register_detector(get_detector("secret"))

    class Odd(Shouting):
        name = "odd-test"
        reads = "pixels"

    with pytest.raises(ConfigError, match=r"reads 'pixels'; expected one of text, tool-calls"):
        register_detector(Odd())

    class NoFamily(Shouting):
        name = "nofamily-test"
        families = ("style",)

    with pytest.raises(ConfigError, match="must name its tag families"):
        register_detector(NoFamily())
    with pytest.raises(ConfigError, match="No behaviour detector is called 'nope'; registered: "):
        get_detector("nope")
    with pytest.raises(ConfigError, match="'reads' parameter of registered_detectors"):
        registered_detectors(reads="pixels")
    assert "odd-test" not in {d.name for d in registered_detectors()}
