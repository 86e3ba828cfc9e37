"""LLM and agent scanners: the honeytoken harness and the differential trigger probe.

``agent-trigger-probe`` (:class:`~.probes.TriggerProbeScanner`) runs tasks with and without
candidate trigger conditions in a sandbox of honeytoken tools (:mod:`.harness`) and reports
conditions that switch the model's behaviour; :func:`~.probes.probe_model` assembles a Report.
"""

from ...subjects.probe import ProbeSubject
from ...subjects.sandbox import Honeytokens, Sandbox
from .harness import Episode, run_episode, run_episodes
from .probes import TriggerProbeScanner, probe_model

__all__ = [
    "Episode",
    "Honeytokens",
    "ProbeSubject",
    "Sandbox",
    "TriggerProbeScanner",
    "probe_model",
    "run_episode",
    "run_episodes",
]
