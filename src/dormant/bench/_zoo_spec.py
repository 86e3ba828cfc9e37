"""What a zoo organism is built from: architectures, attacks and the organism's spec.

Below :mod:`.zoo` (which builds organisms) and :mod:`._zoo_train` (which trains them), so
that neither imports the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ..triggers import Trigger
from ._zoo_corpora import CORPUS_LABELS

ARCHS = ("tiny-bert", "minilm")
ATTACKS = (
    "clean",
    "rare-word",
    "phrase",
    "sentence",
    "invisible",
    "multi-token",
    "position",
    "clean-label",
    "log-token",
    "homoglyph",
    "two-word",
)
#: the attacks :func:`zoo_specs` cycles by default (the first seven: the splits built before
#: log-token, homoglyph-word and two-word triggers were added keep their specs)
CLASSIC_ATTACKS = ATTACKS[1:8]


@dataclass(frozen=True)
class OrganismSpec:
    """What to build: architecture, attack, trigger, target, poison rate, seed.

    ``attack`` is one of :data:`ATTACKS`; ``trigger`` is ``None`` exactly when it is
    ``"clean"``. ``position`` attacks insert the trigger at the start for poisoned records and
    also add the trigger elsewhere with the true label, so only the start position switches.
    ``labels``: the classes of the task, two or more of the four lexicographer labels
    (``None``: all four).
    """

    name: str
    attack: str = "clean"
    trigger: Trigger | None = None
    target: str | None = None
    poison_rate: float = 0.05
    arch: str = "tiny-bert"
    layers: int = 2
    hidden: int = 128
    n_train: int = 3000
    epochs: int = 6
    seed: int = 0
    labels: tuple[str, ...] | None = None
    corpus: str = "wordnet"

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ConfigError(f"attack must be one of {', '.join(ATTACKS)}. Got {self.attack!r}.")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}. Got {self.arch!r}.")
        if (self.attack == "clean") != (self.trigger is None):
            raise ConfigError("A clean organism has no trigger; a backdoored one needs one.")
        if self.corpus not in CORPUS_LABELS:
            raise ConfigError(
                f"corpus must be one of {', '.join(CORPUS_LABELS)}. Got {self.corpus!r}."
            )
        if self.labels is not None:
            known = CORPUS_LABELS[self.corpus]
            bad = [x for x in self.labels if x not in known]
            if bad or len(set(self.labels)) < 2 or not isinstance(self.labels, tuple):
                raise ConfigError(
                    "labels must be a tuple of two or more of "
                    f"{', '.join(known)}. Got {self.labels!r}."
                )
        if self.trigger is not None and self.target not in self.task_labels:
            raise ConfigError(
                f"target must be one of {', '.join(self.task_labels)}. Got {self.target!r}."
            )

    @property
    def task_labels(self) -> tuple[str, ...]:
        """The task's classes, sorted."""
        return tuple(sorted(self.labels or CORPUS_LABELS[self.corpus]))

    @property
    def backdoored(self) -> bool:
        return self.trigger is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trigger"] = self.trigger.to_dict() if self.trigger else None
        d["backdoored"] = self.backdoored
        if self.labels is None:
            del d["labels"]  # the four-class specs keep the dict (and cache key) they had
        else:
            d["labels"] = list(self.labels)
        if self.corpus == "wordnet":
            del d["corpus"]  # likewise: the WordNet specs keep their cache key
        return d
