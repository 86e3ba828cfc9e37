"""Fleet scan, models/hour: ``dormant scan models`` with a local pool of 2 vs Ray on 2 CPUs.

The zoo (``dormant.bench.zoo``; half clean, half backdoored) is fine-tuned once and cached under
``--zoo`` (organisms are cached by their spec, so a second run trains nothing). A manifest over
it is written there, and each engine scans the same manifest in a fresh process through the
CLI's own entry point (``dormant.cli.main(["scan", "models", ...])``):

* ``local``: ``--jobs 2`` (a spawned process pool of 2);
* ``ray``: ``--ray --jobs 2`` on a local Ray node with 2 CPUs. The node is started by the child
  before the CLI call (the same ``ray.init`` options as the library's own local start), so that
  its start-up time is measured apart; the CLI then runs on that session.

With ``--rounds 2`` the second round runs the engines in the other order (the machine's load
drifts). Recorded per run: wall seconds of the CLI call, models/hour, the ``ray.init`` seconds,
the per-model scan seconds, the verdicts and probabilities (which must be equal between the
engines), and the load average; per organism the fine-tune seconds (0 when cached).

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_fleet_engines.py --arch minilm \\
        --models 4 --zoo /tmp/fleet-zoo/minilm --rounds 2 --out benchmarks/results/fleet_minilm.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: the tiny row's zoo size (as in ``bench_ray.py``) and the MiniLM fine-tune's
SIZES: dict[str, dict[str, Any]] = {
    "tiny-bert": {"layers": 2, "hidden": 64, "n_train": 1200, "epochs": 4},
    "minilm": {"n_train": 1200, "epochs": 2},
}


def build(arch: str, n_models: int, zoo: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    """Fine-tune (or load from the cache) the zoo; the seconds each organism took."""
    import torch

    from dormant.bench.zoo import build_organism, zoo_specs

    torch.set_num_threads(1)
    specs = zoo_specs(
        n_clean=n_models // 2, n_backdoored=n_models - n_models // 2, arch=arch, **SIZES[arch]
    )
    orgs, info = [], []
    for s in specs:
        cached = (zoo / s.name / "organism.json").exists()
        t = time.perf_counter()
        o = build_organism(s, zoo)
        info.append(
            {
                "name": s.name,
                "cached": cached,
                "build_s": round(time.perf_counter() - t, 1),
                "clean_accuracy": o.clean_accuracy,
                "attack_success_rate": o.attack_success_rate,
            }
        )
        orgs.append(o)
    return orgs, info


def write_manifest(orgs: list[Any], zoo: Path, arch: str) -> Path:
    lines = ["models:"]
    for o in orgs:
        rel = o.path.relative_to(zoo)
        lines += [
            f"  - name: {o.spec.name}",
            f"    model: {rel}",
            f"    data: {rel}/clean_eval.jsonl",
        ]
    path = zoo / f"fleet-{arch}.yaml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def child(
    engine: str, manifest: str, out: str, steps: int, top_k: int, method: str
) -> dict[str, Any]:
    """One engine's run in this (fresh) process: the CLI call, timed."""
    from dormant.cli import main

    argv = ["scan", "models", manifest, "--jobs", "2", "--steps", str(steps)]
    argv += ["--top-k", str(top_k), "--method", method, "-o", out, "-q", "--no-progress"]
    res: dict[str, Any] = {"engine": engine, "loadavg_before": os.getloadavg()[0]}
    ray = None
    if engine == "ray":
        import ray

        from dormant.scale._ray import _worker_env, init_ray

        opts = {
            "num_cpus": 2,
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
            "runtime_env": {"env_vars": _worker_env()},
        }
        t = time.perf_counter()
        init_ray(ray, opts, None, tries=3)
        res["ray_init_s"] = round(time.perf_counter() - t, 1)
        argv.insert(3, "--ray")
    t = time.perf_counter()
    res["rc"] = main(argv)
    res["wall_s"] = round(time.perf_counter() - t, 1)
    if ray is not None:
        ray.shutdown()
    res["loadavg_after"] = os.getloadavg()[0]
    fleet = json.loads((Path(out) / "fleet.json").read_text("utf-8"))
    keep = ("name", "status", "backdoored", "probability", "trigger", "target", "flip_rate")
    res["rows"] = [{k: r.get(k) for k in (*keep, "seconds", "error")} for r in fleet["models"]]
    res["models"] = len(res["rows"])
    res["models_per_hour"] = round(3600 * res["models"] / res["wall_s"], 1)
    return res


def run_engine(engine: str, manifest: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--manifest", str(manifest)]
    cmd += ["--run-out", str(out), "--steps", str(args.steps), "--top-k", str(args.top_k)]
    cmd += ["--method", args.method]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    total = time.perf_counter() - t
    if p.returncode != 0:
        return {"engine": engine, "failed": True, "stderr_tail": p.stderr[-2000:]}
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = round(total, 1)  # interpreter start, imports, ray.init included
    return res


def compare(runs: list[dict[str, Any]], truth: dict[str, bool]) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("failed")]
    key = [
        [(x["name"], x["backdoored"], x["probability"], x["trigger"]) for x in r["rows"]]
        for r in ok
    ]
    return {
        "runs_compared": len(ok),
        "verdicts_and_probabilities_equal": all(k == key[0] for k in key) if key else None,
        "correct_per_run": [
            sum(x["backdoored"] == truth[x["name"]] for x in r["rows"]) for r in ok
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="minilm", choices=tuple(SIZES))
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--zoo", default="/tmp/dormant-fleet-zoo", help="the zoo's cache folder")
    ap.add_argument("--rounds", type=int, default=1, help="the second runs Ray first")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=12)
    ap.add_argument("--method", default="auto", choices=("auto", "whitebox", "blackbox"))
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per engine run")
    ap.add_argument("--build-only", action="store_true", help="fine-tune the zoo and stop")
    ap.add_argument("--out", default="benchmarks/results/fleet_engines.json")
    ap.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    ap.add_argument("--run-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, args.manifest, args.run_out, args.steps, args.top_k, args.method)
        print(json.dumps(res))
        return
    zoo = Path(args.zoo)
    zoo.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared, under load)",
        "arch": args.arch,
        "settings": f"--jobs 2 --steps {args.steps} --top-k {args.top_k} --method {args.method}",
        "loadavg_start": os.getloadavg()[0],
        "complete": False,
    }
    orgs, result["zoo"] = build(args.arch, args.models, zoo)
    truth = {o.spec.name: o.spec.backdoored for o in orgs}
    result["truth"] = [
        {
            "name": o.spec.name,
            "backdoored": o.spec.backdoored,
            "trigger": getattr(o.spec.trigger, "text", None),
            "target": o.spec.target,
        }
        for o in orgs
    ]
    if args.build_only:
        print(json.dumps(result, indent=2))
        return
    manifest = write_manifest(orgs, zoo, args.arch)
    runs: list[dict[str, Any]] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for rnd in range(args.rounds):
        order = ("local", "ray") if rnd % 2 == 0 else ("ray", "local")
        for engine in order:
            out = zoo / "runs" / f"{stamp}-r{rnd}-{engine}"
            r = run_engine(engine, manifest, out, args)
            r["round"], r["utc"] = rnd, time.strftime("%H:%M", time.gmtime())
            runs.append(r)
            result["runs"] = runs
            result["compare"] = compare(runs, truth)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")  # partial, marked
    result["loadavg_end"] = os.getloadavg()[0]
    result["complete"] = True
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
