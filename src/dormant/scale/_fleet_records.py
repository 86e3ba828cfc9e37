"""The fleet scan's records: its settings, one row per model, and the report.

They sit below :mod:`dormant.scale.fleet` (which runs the scans) so that the HTML page
(:mod:`dormant.scale._fleet_html`) reads them without importing the runner that imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .._version import __version__


@dataclass(frozen=True)
class FleetSettings:
    """Settings of every model scan of a fleet (those of ``dormant scan model``)."""

    method: str = "auto"
    budget_seconds: float | None = None
    trigger_len: int = 1
    steps: int = 8
    top_k: int = 32
    optimizer: str = "gcg"
    seed: int = 0
    device: str = "cpu"
    threads: int = 1


@dataclass(frozen=True)
class FleetRow:
    """One model's line of the fleet report.

    ``status`` is ``"ok"`` (scanned), ``"error"`` (the scan failed; ``error`` says why) or
    ``"refused"`` (its files would run code on load; it was not loaded). ``provenance`` is the
    registry's status of the model's digest (``verified``, ``signed``, ``tampered``,
    ``unverified``, ``unknown``), or ``"no registry"``.
    """

    name: str
    model: str
    data: str
    status: str
    backdoored: bool | None = None
    probability: float | None = None
    trigger: str | None = None
    target: str | None = None
    flip_rate: float | None = None
    capped: bool = False
    model_digest: str | None = None
    unsafe_findings: int = 0
    artifact_max_severity: str | None = None
    provenance: str = "no registry"
    error: str | None = None
    seconds: float = 0.0
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FleetRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class FleetReport:
    """The fleet's result: one row per model of the manifest, in manifest order."""

    rows: tuple[FleetRow, ...]
    manifest: str
    engine: str
    workers: int
    seconds: float
    settings: FleetSettings = field(default_factory=FleetSettings)
    version: str = __version__

    @property
    def backdoored(self) -> list[FleetRow]:
        return [r for r in self.rows if r.backdoored]

    @property
    def failed(self) -> list[FleetRow]:
        return [r for r in self.rows if r.status != "ok"]

    def summary(self) -> dict[str, int]:
        return {
            "models": len(self.rows),
            "backdoored": len(self.backdoored),
            "clean": sum(1 for r in self.rows if r.status == "ok" and not r.backdoored),
            "failed": sum(1 for r in self.rows if r.status == "error"),
            "refused": sum(1 for r in self.rows if r.status == "refused"),
            "tampered": sum(1 for r in self.rows if r.provenance == "tampered"),
            "resumed": sum(1 for r in self.rows if r.resumed),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dormant_version": self.version,
            "manifest": self.manifest,
            "engine": self.engine,
            "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "settings": asdict(self.settings),
            "summary": self.summary(),
            "models": [r.to_dict() for r in self.rows],
        }
