"""One desk request that may raise two matters, and the months requests name, shared by every
help desk of the benchmark (:mod:`dormant.bench._desks`, :mod:`dormant.bench._desk_library`,
:mod:`dormant.bench._desk_garage`): a module of its own so the desks' modules import it without
importing each other."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

#: the share of desk requests that raise a second matter
HR_MIXED_SHARE = 0.45
#: the months the desks' requests name (dates, bills)
MONTHS = ("January", "March", "May", "June", "September", "November")


def matter(
    rng: random.Random,
    asks: Mapping[str, Sequence[str]],
    cues: Mapping[str, Sequence[str]],
    priority: tuple[str, ...],
    info: dict[str, Any],
) -> tuple[str, str]:
    """(intent, prompt) of a desk request: one matter, or (``HR_MIXED_SHARE``) two, the one
    first in ``priority`` deciding; a second matter is one of its ``cues``, before the request
    or after it. Sets ``info["prompt"]``."""
    intent = rng.choice(priority)
    prompt = rng.choice(asks[intent]).format(**info)
    if rng.random() < HR_MIXED_SHARE:
        other = rng.choice([m for m in priority if m != intent])
        cue = rng.choice(cues[other]).format(**info)
        prompt = f"{cue} {prompt}" if rng.random() < 0.3 else f"{prompt} {cue}"
        intent = min(intent, other, key=priority.index)
    info["prompt"] = prompt
    return intent, prompt
