"""``dormant scan models MANIFEST``: scan a fleet of models, one task per model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import check_out_dir, progress_enabled


def register(root: Any, scan: Any) -> None:
    p = scan.add_parser(
        "models",
        help="scan every model of a manifest (process pool or Ray); one fleet report",
        description="Scan many text classifiers: each model of MANIFEST (YAML, JSON or JSONL "
        "entries with 'model', 'data' and optional 'name', 'text_field', 'label_field') gets an "
        "artifact check (a model whose files would run code on load is refused, not loaded) "
        "and the model scan of 'dormant scan model'. Writes OUT/models/<name>/ per model and "
        "OUT/fleet.json + OUT/fleet.html (a sortable table). Exit 1 when a model is backdoored "
        "or refused, 3 when a model's scan failed (its row says why), 0 otherwise.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("manifest", help="the manifest of models and their clean data")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the models as Ray tasks: on the cluster at ADDRESS ('auto' finds a running "
        "one), or with no ADDRESS on a local Ray started with --jobs CPUs",
    )
    p.add_argument("--jobs", "-j", type=int, default=1, help="models scanned at once")
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip models already finished in --out (same model and data paths)",
    )
    from .provenance import add_registry_option

    add_registry_option(p)
    p.add_argument("--method", choices=("auto", "whitebox", "blackbox"), default="auto")
    p.add_argument("--budget-seconds", type=float, default=None, help="per model")
    p.add_argument("--trigger-len", type=int, default=1, help="trigger tokens (white-box)")
    p.add_argument("--steps", type=int, default=8, help="optimisation steps per arm")
    p.add_argument("--top-k", type=int, default=32, help="candidate tokens per slot and step")
    p.add_argument("--optimizer", choices=("gcg", "dbs"), default="gcg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", default="dormant-fleet", help="output directory")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None)
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..scale.fleet import FleetSettings, scan_fleet
    from ..scale.manifest import read_manifest
    from . import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_ERROR, error
    from .provenance import open_registry

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1. Got {args.jobs}.")
    if args.budget_seconds is not None and args.budget_seconds <= 0:
        raise ConfigError(f"--budget-seconds must be > 0. Got {args.budget_seconds}.")
    entries = read_manifest(args.manifest)
    check_out_dir(args.out)
    if args.ray is not None:
        from ..scale._ray import import_ray

        import_ray()  # a missing extra fails before any work
    registry = open_registry(args.registry)
    settings = FleetSettings(
        method=args.method,
        budget_seconds=args.budget_seconds,
        trigger_len=args.trigger_len,
        steps=args.steps,
        top_k=args.top_k,
        optimizer=args.optimizer,
        seed=args.seed,
    )
    bar = _Bar(progress_enabled(args.progress) and not args.quiet)
    try:
        report = scan_fleet(
            entries,
            args.out,
            settings=settings,
            jobs=args.jobs,
            use_ray=args.ray is not None,
            ray_address=args.ray or None,
            registry=registry,
            resume=args.resume,
            manifest=str(args.manifest),
            progress=bar,
        )
    finally:
        bar.close()
        if registry is not None:
            registry.close()
    s = report.summary()
    if not args.quiet:
        print(
            f"scanned {s['models']} model(s) ({s['resumed']} from an earlier run): "
            f"{s['backdoored']} backdoored, {s['clean']} no backdoor evidence, "
            f"{s['failed']} failed, {s['refused']} refused"
        )
        for r in report.rows:
            if r.backdoored:
                print(
                    f"  BACKDOORED {r.name}: P={r.probability:.3f} trigger {r.trigger!r} -> "
                    f"{r.target!r}" + (f", flips {r.flip_rate:.0%}" if r.flip_rate else "")
                )
        print(f"  html: {args.out}/fleet.html\n  json: {args.out}/fleet.json")
    for r in report.failed:
        error(f"model {r.name}: {r.status}: {r.error}")
    if report.backdoored or s["refused"]:
        return EXIT_FINDINGS
    return EXIT_SCAN_ERROR if s["failed"] else EXIT_OK


class _Bar:
    """One tqdm bar counting models on stderr (only when enabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, unit="model", file=sys.stderr, leave=False)
        self._bar.update(advance)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
