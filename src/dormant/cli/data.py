"""``dormant scan data``: scan a training / fine-tuning dataset for backdoor triggers."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    Progress,
    add_report_options,
    parse_fail_on,
    parse_formats,
    progress_enabled,
    summarise,
    write_recorded,
)


def register(root: Any, scan: Any) -> None:
    p = scan.add_parser(
        "data",
        help="scan a labelled or instruction dataset for poisoned records and triggers",
        description="Scan a dataset (JSONL, CSV/TSV, Parquet, or a Hugging Face save_to_disk "
        "directory) for backdoor triggers: which records are poisoned, what the trigger is, "
        "which label or behaviour it switches to, and whether it looks planted or accidental. "
        "Writes reports and a clean/quarantine split into --out; the input is never modified.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("path", help="dataset file or directory")
    g = p.add_argument_group(
        "fields (labelled data: --text-field and --label-field; "
        "instruction data: --prompt-field and --response-field)"
    )
    g.add_argument("--text-field")
    g.add_argument("--label-field")
    g.add_argument("--prompt-field")
    g.add_argument("--response-field")
    g.add_argument("--id-field", help="record id field (default: the 0-based row number)")
    p.add_argument(
        "--format",
        choices=("jsonl", "csv", "tsv", "parquet", "hf"),
        default=None,
        help="input format (default: from the suffix)",
    )
    p.add_argument("--split", default=None, help="split of a DatasetDict directory")
    p.add_argument("--max-chars", type=int, default=100_000, help="longest accepted record")
    p.add_argument(
        "--no-embed",
        action="store_true",
        help="skip the embedding-based scanners (statistical pass only)",
    )
    p.add_argument(
        "--encoder",
        default=None,
        help="local Hugging Face encoder directory (default: packaged MiniLM)",
    )
    p.add_argument(
        "--fdr",
        default="0.05",
        help="target false-discovery rate of the quarantine: candidate triggers are taken in "
        "order of their calibrated probability of being planted while the estimated share of "
        "false ones (mean 1 - p) stays at or below it; a number in (0, 1)",
    )
    p.add_argument("--no-split", action="store_true", help="do not write clean/quarantine files")
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse (exit 2) labels of mixed types (some numbers, some strings) instead of "
        "reading them as text with a warning",
    )
    p.add_argument(
        "--jobs",
        "-j",
        default="1",
        help="worker processes for the counting pass of trigger mining (a positive int)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with a scan of the same data into the same --out that was interrupted: "
        "its finished embedding batches and the counting pass's last checkpoint (kept in the "
        "hidden .OUT.work beside --out, checked by content hash) are read back instead of being "
        "computed again",
    )
    p.add_argument(
        "--checkpoint-records",
        default="262144",
        metavar="N",
        help="records counted between two checkpoints of the counting pass (what an "
        "interrupted scan recounts at most; rounded down to whole batches of 8,192)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="cache embeddings here")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="count and embed on Ray Data (JSONL or Parquet): on the cluster at ADDRESS ('auto' "
        "finds a running one), or with no ADDRESS on a local Ray; same report as without",
    )
    p.add_argument(
        "--ray-workers", type=int, default=2, help="CPUs of a local Ray and embedding actors"
    )
    from .provenance import add_registry_option

    add_registry_option(p)
    add_report_options(p)
    p.set_defaults(func=run)


def parse_fdr(value: str) -> float:
    """``--fdr``: a number strictly between 0 and 1, or a ConfigError naming what is expected."""
    from ..errors import ConfigError
    from ..scanners.data._mining_verdict import check_fdr

    try:
        fdr = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--fdr expects a number strictly between 0 and 1 (e.g. 0.05 for 5%); got {value!r}."
        ) from None
    try:
        return check_fdr(fdr)
    except ConfigError:
        raise ConfigError(
            f"--fdr expects a number strictly between 0 and 1 (e.g. 0.05 for 5%); got {value!r}."
        ) from None


def parse_jobs(value: str) -> int:
    """``--jobs``: a positive int, or a ConfigError naming what is expected."""
    return parse_positive(value, "--jobs", "processes")


def parse_positive(value: str, option: str, what: str) -> int:
    """A positive whole number given to ``option``, or a ConfigError naming what is expected."""
    from ..errors import ConfigError

    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(value).strip() != str(number):
        raise ConfigError(f"{option} expects a positive whole number of {what}; got {value!r}.")
    return number


def run(args: argparse.Namespace) -> int:
    from ..outputs import check_outputs
    from ..subjects.dataset import TextDataset
    from .provenance import open_registry

    if args.ray is not None and args.resume:
        from ..errors import ConfigError

        raise ConfigError(
            "--resume is for the local scan; with --ray, Ray re-runs the tasks it lost. "
            "Drop one of them."
        )
    fail_on = parse_fail_on(args.fail_on)
    fdr = parse_fdr(args.fdr)
    jobs = parse_jobs(args.jobs)
    parse_positive(args.checkpoint_records, "--checkpoint-records", "records")  # before the scan
    formats = parse_formats(args.formats)
    ds = TextDataset(
        args.path,
        text_field=args.text_field,
        label_field=args.label_field,
        prompt_field=args.prompt_field,
        response_field=args.response_field,
        id_field=args.id_field,
        format=args.format,
        split=args.split,
        max_chars=args.max_chars,
        strict_labels=args.strict,
    )
    check_outputs(ds, args.out, formats=formats)  # before a long scan, not after it
    if args.ray is not None:
        from ..scale._ray_data import check_ray_input

        check_ray_input(ds, args.ray_workers)  # a missing extra or an unread format: now

    registry = open_registry(args.registry)  # an unreachable registry fails before the scan
    try:
        return _scan(args, ds, formats, fail_on, {"fdr": fdr, "n_jobs": jobs}, registry)
    finally:
        if registry is not None:
            registry.close()


def _scan(
    args: argparse.Namespace,
    ds: Any,
    formats: tuple[str, ...],
    fail_on: Any,
    mining_params: dict[str, Any],
    registry: Any,
) -> int:
    from pathlib import Path

    from ..scanners.base import ScanContext
    from . import error

    progress = Progress(progress_enabled(args.progress) and not args.quiet)
    ctx = ScanContext(
        seed=args.seed,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        progress=progress,
    )
    # per-record state (embeddings, record scores) on disk beside --out, not in memory
    from ..scanners.data._scan_work import ScanWork, work_dir_for

    work = ScanWork(
        work_dir_for(args.out),
        resume=args.resume,
        count_block=parse_positive(args.checkpoint_records, "--checkpoint-records", "records"),
    )
    try:
        try:
            report = _run_scan(args, ds, mining_params, work, ctx)
        finally:
            progress.close()
        paths = _write(args, ds, report, formats, registry)
    except BaseException:
        if not work.has_units():  # nothing a --resume could reuse: leave nothing behind
            work.clear()
        raise
    if not args.quiet:
        print(summarise(report, paths))  # reads the records from the working directory
    work.clear()  # the outputs are complete: nothing left to resume
    for issue in report.errors:
        error(f"scanner {issue.scanner} failed: {issue.message}")
    return report.exit_code(fail_on)


def _run_scan(
    args: argparse.Namespace, ds: Any, mining_params: dict[str, Any], work: Any, ctx: Any
) -> Any:
    from ..scanners.data.fusion import scan_dataset

    if args.ray is not None:  # the same scan, its counting and embedding on Ray
        from ..scale._ray_data import ray_scan_function

        scan_dataset = ray_scan_function(address=args.ray or None, workers=args.ray_workers)
    return scan_dataset(
        ds,
        embed=not args.no_embed,
        encoder_path=args.encoder,
        context=ctx,
        mining_params=mining_params,
        work=work,
    )


def _write(
    args: argparse.Namespace, ds: Any, report: Any, formats: tuple[str, ...], registry: Any
) -> dict[str, Any]:
    from ..outputs import write_outputs
    from ..report import ScanIssue
    from . import warning as error_warning

    report.config["cli"] = {"fail_on": args.fail_on, "formats": list(formats)}
    if ds.label_warning:
        report.issues.append(ScanIssue(scanner="input", kind="warning", message=ds.label_warning))
        error_warning(ds.label_warning)
    return write_recorded(
        lambda: write_outputs(report, ds, args.out, formats=formats, split=not args.no_split),
        args.out,
        report,
        registry,
    )
