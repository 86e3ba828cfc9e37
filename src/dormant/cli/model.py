"""``dormant scan model``: is a text classifier backdoored, with which trigger and target."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    Progress,
    add_report_options,
    check_out_dir,
    parse_fail_on,
    parse_formats,
    progress_enabled,
)
from ._scan_cmd import finish, load_data_report
from .provenance import add_registry_option


def register(root: Any, scan: Any) -> None:
    p = scan.add_parser(
        "model",
        help="scan a text classifier for a backdoor: probability, trigger, target, replay",
        description="Scan a text classifier (a local Hugging Face directory with safetensors "
        "weights, or a scikit-learn pipeline saved with skops) with a few hundred clean "
        "labelled examples. Reports a calibrated probability that the model is backdoored and, "
        "for a positive verdict, the recovered trigger, its target label and the flip rate it "
        "causes on held-out clean examples. Pickle/joblib files are refused.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="model directory (Hugging Face) or .skops file")
    p.add_argument("--data", required=True, help="clean labelled examples (JSONL, CSV, ...)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="label")
    p.add_argument("--id-field", default=None)
    p.add_argument("--format", choices=("jsonl", "csv", "tsv", "parquet", "hf"), default=None)
    p.add_argument(
        "--data-report",
        default=None,
        help="a data-scan report.json whose triggers are tested against the model",
    )
    p.add_argument("--method", choices=("auto", "whitebox", "blackbox"), default="auto")
    p.add_argument(
        "--budget-seconds",
        type=float,
        default=None,
        help="stop searching after about this long and report the best verdict so far",
    )
    p.add_argument("--trigger-len", type=int, default=1, help="trigger tokens (white-box)")
    p.add_argument("--steps", type=int, default=8, help="optimisation steps per arm")
    p.add_argument("--top-k", type=int, default=32, help="candidate tokens per slot and step")
    p.add_argument("--optimizer", choices=("gcg", "dbs"), default="gcg", help="white-box search")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    add_report_options(p)
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..subjects.dataset import TextDataset
    from ..subjects.model import load_classifier, load_clean_data
    from .provenance import open_registry

    fail_on = parse_fail_on(args.fail_on)
    formats = parse_formats(args.formats)
    check_out_dir(args.out)  # before the scan, not after it
    priors = load_data_report(args.data_report)
    model = load_classifier(args.model, device=args.device)
    ds = TextDataset(
        args.data,
        text_field=args.text_field,
        label_field=args.label_field,
        id_field=args.id_field,
        format=args.format,
    )
    model.clean = load_clean_data(ds, model)
    registry = open_registry(args.registry)  # an unreachable registry fails before the scan
    try:
        return _scan(args, model, priors, formats, fail_on, registry)
    finally:
        if registry is not None:
            registry.close()


def _scan(
    args: argparse.Namespace,
    model: Any,
    priors: list[Any],
    formats: tuple[str, ...],
    fail_on: Any,
    registry: Any,
) -> int:
    from ..report import Report
    from ..scanners.base import ScanContext
    from ..scanners.model.run import scan_model

    progress = Progress(progress_enabled(args.progress) and not args.quiet)
    ctx = ScanContext(
        seed=args.seed, device=args.device, progress=progress, budget_seconds=args.budget_seconds
    )
    try:
        report: Report = scan_model(
            model,
            method=args.method,
            priors=priors,
            context=ctx,
            whitebox_params={
                "trigger_len": args.trigger_len,
                "steps": args.steps,
                "optimizer": args.optimizer,
                "top_k": args.top_k,
            },
        )
    finally:
        progress.close()
    return finish(args, report, formats, fail_on, registry)
