"""``dormant scan corpus``: scan a retrieval (RAG) corpus for injected directives and triggers."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_report_options, parse_fail_on, parse_formats, summarise, write_recorded
from .provenance import add_registry_option


def register(root: Any, scan: Any) -> None:
    p = scan.add_parser(
        "corpus",
        help="scan a retrieval corpus for passages aimed at the model and their trigger phrase",
        description="Scan a retrieval (RAG) corpus - a folder of .txt/.md/.html files, or a "
        "JSONL file of passages - for passages that carry directives aimed at the model "
        "(ignore the approved sources, call a tool, send data out, reveal the system prompt, "
        "take another role), invisible or look-alike characters, phrases that co-occur with "
        "such directives across documents (a planted trigger), and near-duplicate copies of "
        "injected content. Writes reports and a clean/quarantine split into --out; the input "
        "is never modified.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("path", help="corpus folder, JSONL file of passages, or one document")
    p.add_argument("--text-field", default="text", help="JSONL field of the passage text")
    p.add_argument("--id-field", default="id", help="JSONL field of the passage id")
    p.add_argument(
        "--fdr",
        default="0.05",
        help="target false-discovery rate of the directive and phrase tests; in (0, 1)",
    )
    p.add_argument(
        "--no-embed",
        action="store_true",
        help="skip the encoder: decide on directive patterns alone (uncalibrated)",
    )
    p.add_argument(
        "--encoder",
        default=None,
        help="local Hugging Face encoder directory (default: packaged MiniLM)",
    )
    p.add_argument("--no-split", action="store_true", help="do not write clean/quarantine files")
    p.add_argument("--seed", type=int, default=0)
    add_report_options(p)
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..scanners.corpus import check_corpus_outputs, load_passages
    from .provenance import open_registry

    fail_on = parse_fail_on(args.fail_on)
    formats = parse_formats(args.formats)
    try:
        fdr = float(args.fdr)
    except ValueError:
        fdr = -1.0
    if not 0 < fdr < 1:
        raise ConfigError(
            f"--fdr expects a number strictly between 0 and 1 (e.g. 0.05 for 5%); got {args.fdr!r}."
        )
    passages, notes = load_passages(args.path, text_field=args.text_field, id_field=args.id_field)
    check_corpus_outputs(args.path, args.out)  # before the scan, not after it
    registry = open_registry(args.registry)  # an unreachable registry fails before the scan
    try:
        return _scan(args, passages, notes, formats, fail_on, fdr, registry)
    finally:
        if registry is not None:
            registry.close()


def _scan(
    args: argparse.Namespace,
    passages: Any,
    notes: list[str],
    formats: tuple[str, ...],
    fail_on: Any,
    fdr: float,
    registry: Any,
) -> int:
    from ..findings import SubjectRef
    from ..report import ScanIssue
    from ..scanners.corpus import scan_corpus, write_corpus_outputs
    from . import warning

    report = scan_corpus(
        passages,
        alpha=fdr,
        embed=not args.no_embed,
        encoder_path=args.encoder,
        seed=args.seed,
    )
    report.subject = SubjectRef("corpus", str(args.path), report.subject.digest)

    for note in notes:
        report.issues.append(ScanIssue("corpus", "warning", note))
        warning(note)
    report.config["cli"] = {"fail_on": args.fail_on, "formats": list(formats)}
    paths = write_recorded(
        lambda: write_corpus_outputs(
            report, passages, args.out, formats=formats, split=not args.no_split, corpus=args.path
        ),
        args.out,
        report,
        registry,
    )
    if not args.quiet:
        print(summarise(report, paths))
    return report.exit_code(fail_on)
