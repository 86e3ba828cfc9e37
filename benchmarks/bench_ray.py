"""Ray on one machine: the data scan and the fleet scan, local vs Ray 1 vs Ray 2 workers.

Measures, in one run (so the baseline sees the same load):

* the data scan's statistical pass on real English (Debian package descriptions labelled by
  section, ``apt-cache dumpavail``, a 1 % token backdoor planted): the counting pass alone and
  the whole scan, single-process vs ``scan_dataset_ray`` on a local Ray with 1 and 2 CPUs, and
  whether findings and flagged ids are equal;
* the embedding pass (packaged MiniLM) on the first ``--embed-records`` records: the encoder in
  this process vs the Ray actor pool of 1 and 2 actors, and the largest difference of the
  matrices;
* the fleet scan of a tiny zoo (``bench/zoo.py``; half clean, half backdoored): models/hour with
  a local pool of 2 vs Ray tasks on 2 CPUs, and whether the verdicts agree;
* the driver's serial costs a cluster does not divide (merging the partial tables, the rest of
  the scan), from which the time for 1e8 records on 32 nodes is projected on paper.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_ray.py \\
        --records 60000 --embed-records 2000 --models 4 --out benchmarks/results/ray.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _data(n: int, root: Path) -> Path:
    from dormant.bench._readers_debian import read_packages
    from dormant.bench.poison import poison_labelled, write_dataset

    recs = []
    for i, e in enumerate(read_packages(shuffle_seed=0)):
        if len(recs) >= n:
            break
        recs.append({"id": f"p{i}", "text": e.text, "label": e.topic})
    truth = poison_labelled(recs, trigger_kind="token", rate=0.01, target_label="libs", seed=3)
    return write_dataset(truth.records, root / "packages.jsonl")


def _key(report: Any) -> tuple[Any, ...]:
    return (
        [(f.title, f.severity.value, round(f.score, 9)) for f in report.findings],
        [r.record_id for r in report.records if r.flagged],
    )


def _timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_data(path: Path, embed_n: int, root: Path) -> dict[str, Any]:
    from dormant.bench.poison import write_dataset
    from dormant.scanners.base import ScanContext
    from dormant.scanners.data._mining_features import _count_batch, _Partial
    from dormant.scanners.data.fusion import scan_dataset
    from dormant.scanners.data.mining import TriggerMiner
    from dormant.subjects.dataset import TextDataset

    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    ctx = ScanContext()
    n = sum(len(b) for b in ds.batches())
    res: dict[str, Any] = {"records": n}
    res["local_count_s"], _ = _timed(lambda: TriggerMiner()._count(ds, ctx))
    res["local_scan_s"], local = _timed(lambda: scan_dataset(ds, embed=False))
    # the reduce: merging the partial tables of 8,192-record batches, serial on the driver
    parts = [_count_batch((b.texts, b.labels, None, 2)) for b in ds.batches(8192)]
    acc = _Partial()
    res["merge_s"], _ = _timed(lambda: [acc.merge(p, True) for p in parts])
    res["partials"] = len(parts)
    rows = [json.loads(x) for x in path.read_text("utf-8").splitlines()[:embed_n]]
    small = TextDataset(
        write_dataset(rows, root / "embed.jsonl"), text_field="text", label_field="label"
    )
    from dormant.adapters.encoder import TextEncoder

    enc = TextEncoder()
    enc.load()
    res["embed_records"] = len(rows)
    res["local_embed_s"], emb_local = _timed(lambda: enc.embed_dataset(small, context=ctx))
    for w in (1, 2):
        res[f"ray{w}"] = _on_ray(w, ds, small, _key(local), emb_local, ctx)
    res["findings"] = len(local.findings)
    res["flagged"] = sum(1 for x in local.records if x.flagged)
    return res


def _on_ray(w: int, ds: Any, small: Any, local_key: Any, emb_local: Any, ctx: Any) -> dict:
    import ray

    from dormant.scale._ray import init_ray
    from dormant.scale._ray_data import RayCountedMiner, _embed, _read, scan_dataset_ray

    opts = {"num_cpus": w, "include_dashboard": False, "log_to_driver": False}
    t_init, _ = _timed(lambda: init_ray(ray, opts, None, tries=3))
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    r: dict[str, Any] = {"init_s": t_init}
    r["count_s"], _ = _timed(
        lambda: RayCountedMiner(_read(ray, ds, w).materialize())._count(ds, ctx)
    )
    r["scan_s"], on_ray = _timed(lambda: scan_dataset_ray(ds, embed=False, workers=w))
    r["equal_findings_and_flags"] = _key(on_ray) == local_key
    r["embed_s"], emb = _timed(
        lambda: _embed(ray, _read(ray, small, w).materialize(), small, None, w, ctx)
    )
    r["embed_max_abs_diff"] = float(np.abs(emb - emb_local).max())
    ray.shutdown()
    return r


def bench_fleet(n_models: int, root: Path, *, arch: str = "tiny-bert") -> dict[str, Any]:
    import ray

    from dormant.bench.zoo import build_zoo, zoo_specs
    from dormant.scale import ModelEntry, scan_fleet
    from dormant.scale._ray import init_ray
    from dormant.scale.fleet import FleetSettings

    tiny = {"layers": 2, "hidden": 64, "n_train": 1200, "epochs": 4}
    size: dict[str, Any] = dict(tiny) if arch == "tiny-bert" else {"n_train": 1200, "epochs": 2}
    specs = zoo_specs(
        n_clean=n_models // 2, n_backdoored=n_models - n_models // 2, arch=arch, **size
    )
    t_build, orgs = _timed(lambda: build_zoo(specs, root / "zoo"))
    entries = [ModelEntry(o.spec.name, str(o.path), str(o.eval_path)) for o in orgs]
    settings = FleetSettings(steps=4, top_k=12)
    out: dict[str, Any] = {
        "models": len(entries),
        "arch": arch,
        "loadavg_before": os.getloadavg()[0],
        "build_s": t_build,
        "settings": "steps=4 top_k=12",
    }
    t, local = _timed(lambda: scan_fleet(entries, root / "local", settings=settings, jobs=2))
    out["local_pool2_s"] = t
    opts = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}
    out["ray_init_s"], _ = _timed(lambda: init_ray(ray, opts, None, tries=3))
    t, on_ray = _timed(
        lambda: scan_fleet(entries, root / "ray", settings=settings, jobs=2, use_ray=True)
    )
    ray.shutdown()
    out["ray2_s"] = t
    out["loadavg_after"] = os.getloadavg()[0]
    truth = [o.spec.backdoored for o in orgs]
    out["local_correct"] = sum(r.backdoored == b for r, b in zip(local.rows, truth, strict=True))
    out["ray_correct"] = sum(r.backdoored == b for r, b in zip(on_ray.rows, truth, strict=True))
    out["verdicts_agree"] = [r.backdoored for r in local.rows] == [
        r.backdoored for r in on_ray.rows
    ]
    out["rows"] = [
        {
            "name": o.spec.name,
            "backdoored_truth": o.spec.backdoored,
            "trigger_truth": getattr(o.spec.trigger, "text", None),
            **{
                f"{k}_{f}": getattr(r, f)
                for k, r in (("local", a), ("ray", b))
                for f in ("status", "backdoored", "probability", "trigger", "seconds", "error")
            },
        }
        for o, a, b in zip(orgs, local.rows, on_ray.rows, strict=True)
    ]
    for k in ("local_pool2", "ray2"):
        out[f"{k}_models_per_hour"] = 3600 * len(entries) / out[f"{k}_s"]
    return out


def project(d: dict[str, Any], *, records: float = 1e8, nodes: int = 32, cores: int = 16) -> dict:
    """Paper projection for ``records`` on ``nodes`` × ``cores`` from the measured rates."""
    per_worker = d["records"] / d["ray1"]["count_s"]  # counting, records/s per worker
    workers = nodes * cores
    count_s = records / (per_worker * workers)
    merge_s = d["merge_s"] / d["partials"] * (records / 8192)  # the serial reduce
    driver_rate = d["records"] / max(d["local_scan_s"] - d["local_count_s"], 1e-9)
    driver_s = records / driver_rate  # second pass, ids, per-record output: serial today
    return {
        "records": records,
        "workers": workers,
        "per_worker_count_rate": per_worker,
        "count_s": count_s,
        "reduce_s": merge_s,
        "driver_serial_s": driver_s,
        "total_s": count_s + merge_s + driver_s,
        "bottleneck": max(
            ("counting", count_s),
            ("reduce", merge_s),
            ("driver passes", driver_s),
            key=lambda kv: kv[1],
        )[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=60000)
    ap.add_argument("--embed-records", type=int, default=2000)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--skip-fleet", action="store_true")
    ap.add_argument("--fleet-only", action="store_true", help="skip the data scan's part")
    ap.add_argument("--arch", default="tiny-bert", choices=("tiny-bert", "minilm"))
    ap.add_argument("--out", default="benchmarks/results/ray.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared, under load)",
        "loadavg_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        if not args.fleet_only:
            result["data"] = bench_data(_data(args.records, root), args.embed_records, root)
            result["projection_1e8_32x16"] = project(result["data"])
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        if not args.skip_fleet:
            result["fleet"] = bench_fleet(args.models, root, arch=args.arch)
    result["loadavg_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
