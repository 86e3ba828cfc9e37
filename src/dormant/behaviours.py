"""Behaviour detectors shared by every stage (placeholder: being implemented)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BehaviourHit:
    """One behaviour found in an output: its tag, character span and a short detail."""

    tag: str
    span: tuple[int, int]
    detail: str = ""


def behaviour_tags(text: str) -> frozenset[str]:
    """The set of behaviour tags in ``text`` (e.g. ``egress:evil.example``)."""
    return frozenset()
