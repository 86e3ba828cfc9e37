"""Sizes inside trigger mining's grouping on real data (benchmark helper, not shipped code).

Runs ``scan data --no-embed``'s trigger mining with a working directory up to the grouping,
records the candidates' row counts, the grouping's peak resident set (VmHWM, reset on entry
through ``/proc/self/clear_refs``), the longest overlap query and every tie-break call's
sizes, and stops. Usage::

    PYTHONPATH=src python benchmarks/probe_data_grouping.py /tmp/ddisk/n3000000 out.json /tmp/work
"""

import json
import sys
import time
from pathlib import Path

from dormant.scanners.data import _mining_explain, _mining_rows, mining
from dormant.scanners.data._scan_work import ScanWork
from dormant.scanners.data.fusion import scan_dataset
from dormant.subjects import TextDataset

stats = {"first_met": [], "adds": 0, "merged_max": 0, "query_max": 0}


def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024


fm = _mining_explain._first_met


def first_met(rows, tied, held):
    stats["first_met"].append([len(rows), len(tied), [len(h) for h in held]])
    return fm(rows, tied, held)


_mining_explain._first_met = first_met
ov = _mining_rows.OverlapIndex.overlaps


def overlaps(self, rows):
    stats["query_max"] = max(stats["query_max"], len(rows))
    return ov(self, rows)


_mining_rows.OverlapIndex.overlaps = overlaps
gc = _mining_explain.group_candidates


def group(cands, **kw):
    stats["before_group_rss"] = rss()
    Path("/proc/self/clear_refs").write_text("5")
    stats["n_cands"] = len(cands)
    stats["rows_total"] = int(sum(len(c.rows) for c in cands))
    stats["target_total"] = int(sum(len(c.target_rows) for c in cands))
    stats["max_target"] = int(max(len(c.target_rows) for c in cands))
    t = time.process_time()
    out = gc(cands, **kw)
    stats["group_cpu"] = time.process_time() - t
    stats["group_hwm"] = hwm()
    stats["after_group_rss"] = rss()
    stats["n_groups"] = len(out)
    stats["group_pairs"] = int(sum(len(g[0].target_rows) for g in out))
    Path(sys.argv[2]).write_text(json.dumps(stats, indent=1))
    raise SystemExit(0)


mining.group_candidates = group
ds = TextDataset(sys.argv[1], text_field="text", label_field="label", id_field="id")
scan_dataset(ds, scanners=["trigger-mining"], embed=False, work=ScanWork(Path(sys.argv[3])))
