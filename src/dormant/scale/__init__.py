"""Scale-out: the data scan and the model scan on many workers.

* :mod:`dormant.scale.fleet` — ``dormant scan models MANIFEST``: one task per model of a
  manifest (a local process pool, or Ray tasks), results into the registry and one fleet report.
* :mod:`dormant.scale._ray_data` — ``dormant scan data --ray``: Ray Data reads the data, the
  trigger-mining counts run as map tasks whose partial counts merge by addition, and the
  embeddings run as ``map_batches`` on an actor pool; the report equals the single-process one.

Ray is an optional extra (``pip install 'dormant[ray]'``) imported only when asked for.
"""

from __future__ import annotations

from .fleet import FleetReport, FleetRow, scan_fleet
from .manifest import ModelEntry, read_manifest

__all__ = ["FleetReport", "FleetRow", "ModelEntry", "read_manifest", "scan_fleet"]
