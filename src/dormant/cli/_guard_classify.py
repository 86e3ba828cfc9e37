"""``dormant guard classify``: screen a text classifier's inputs for triggers (batch or HTTP)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

_DESCRIPTION = (
    "Screen the inputs of a local text classifier (a Hugging Face directory or a .skops "
    "file) for backdoor triggers: known triggers from the registry, invisible or look-alike "
    "characters, and a test of the model's behaviour on the input (a short span that decides "
    "the prediction on its own), calibrated as a conformal p-value on the clean texts you "
    "give (--fpr is the target false-positive rate). Batch mode writes one decision per input "
    "as JSON lines and exits 1 when any input is flagged; --serve answers POST /v1/classify "
    '{"text": ...} with the label, or 403 with the reasons. Every decision is written to the '
    "guard audit log."
)

_EPILOG = """\
examples:
  dormant guard classify --model ./logline-model --calibration clean.jsonl \\
      --input today.jsonl --out decisions.jsonl --audit ./audit.sqlite3
  dormant guard classify --model ./logline-model --calibration clean.jsonl --serve --port 8090
  curl -s http://127.0.0.1:8090/v1/classify -d '{"text": "user login failed"}'

Input and calibration files are JSON lines with a "text" field (--text-field to change it).
"""


def register(sub: Any) -> None:
    """Add ``dormant guard classify``."""
    p = sub.add_parser(
        "classify",
        help="screen a text classifier's inputs for triggers (batch JSONL or HTTP endpoint)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="PATH", help="HF directory or .skops file")
    p.add_argument(
        "--calibration",
        required=True,
        metavar="CLEAN.jsonl",
        help="clean texts like the production inputs (at least 2/fpr of them)",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--input", metavar="FILE.jsonl", help="screen these inputs (batch mode)")
    mode.add_argument("--serve", action="store_true", help="serve POST /v1/classify")
    p.add_argument("--out", metavar="PATH", default="-", help="decisions JSONL (default: stdout)")
    p.add_argument("--text-field", default="text", help="the JSON field holding the text")
    p.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate")
    p.add_argument(
        "--method",
        default="transplant",
        choices=("transplant", "strip", "onion"),
        help="the model-behaviour test (default: %(default)s)",
    )
    p.add_argument(
        "--representation",
        action="store_true",
        help="also test where the model's penultimate features put the input (local Hugging "
        "Face models; off by default, see BENCHMARKS.md)",
    )
    p.add_argument(
        "--additive-support",
        action="store_true",
        help="explain a span by the sum of its words' clean lifts, not the largest (off by "
        "default, see BENCHMARKS.md)",
    )
    p.add_argument(
        "--calibrate-all",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score every clean text as a calibration text (the donors too, each left out of "
        "its own donors): twice the calibration scores, finer p-values (default: on for the "
        "transplant test; see BENCHMARKS.md)",
    )
    p.add_argument(
        "--symbol-support",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count each symbol character (quotes, brackets, '=') as a word in the clean "
        "support, as the model's tokenizer reads it (default: on for the transplant test; "
        "see BENCHMARKS.md)",
    )
    p.add_argument(
        "--long-spans",
        action="store_true",
        help="the transplant test also tries the best window of 4, 6 and 8 words, so a long "
        "trigger phrase is moved whole, a scale calibrated on its own (off by default; see "
        "BENCHMARKS.md)",
    )
    p.add_argument(
        "--necessity",
        action="store_true",
        help="also join into the transplant test's p-value how far the input without its most "
        "necessary window points away from its label (off by default; see BENCHMARKS.md)",
    )
    p.add_argument(
        "--quartile",
        action="store_true",
        help="also join into the transplant test's p-value its spans scored by the donors' "
        "upper quartile of the label's log-odds, so a weak backdoor that moves only part of "
        "them is seen (off by default; see BENCHMARKS.md)",
    )
    p.add_argument(
        "--flips",
        action="store_true",
        help="also join into the transplant test's p-value the share of clean donors its "
        "best span flips to the input's label, counted on 48 more donors (one more batch of "
        "48 model calls per input; off by default; see BENCHMARKS.md)",
    )
    p.add_argument("--registry", default=None, metavar="URL", help="registry of known triggers")
    p.add_argument(
        "--registry-tokens",
        action="store_true",
        help="match a known trigger where all its distinct tokens occur, in any order (how a "
        "model scan writes an inverted trigger, e.g. 'x9f2=' for sid=x9f2; off by default, "
        "see BENCHMARKS.md)",
    )
    p.add_argument("--audit", default=None, metavar="URL", help="audit log (sqlite path or URL)")
    p.add_argument("--identity", default="classifier-screen", help="identity in the audit log")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (--serve)")
    p.add_argument("--port", type=int, default=8090, help="port (--serve); 0 takes a free one")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that other machines can reach (by default only loopback)",
    )
    p.set_defaults(func=run)


def read_texts(path: str, field: str, *, option: str) -> list[str]:
    """The ``field`` strings of a JSONL file; a clear error naming the file and line."""
    from ..errors import DataFormatError, InputNotFoundError

    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{option}: no such file: {p}")
    out = []
    try:
        with open(p, encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DataFormatError(
                        f"{option} {p}, line {i}: not JSON ({exc.args[0]}); expected one JSON "
                        f'object per line with a string "{field}".'
                    ) from None
                if not isinstance(row, dict) or not isinstance(row.get(field), str):
                    raise DataFormatError(
                        f'{option} {p}, line {i}: expected a JSON object with a string "{field}" '
                        f"field. Got {type(row).__name__}"
                        + (f" with keys {sorted(row)[:5]}" if isinstance(row, dict) else "")
                        + "."
                    )
                out.append(row[field])
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{option} {p}: not UTF-8 ({exc.reason}).") from None
    return out


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, DataValidationError
    from . import EXIT_FINDINGS, EXIT_OK

    host = str(args.host).strip("[]")
    if args.serve:
        from .serve import is_loopback

        if not is_loopback(host) and not args.allow_remote:
            raise ConfigError(
                f"--host {args.host} is reachable from other machines; the screen listens on "
                "loopback unless you add --allow-remote."
            )
    if args.registry_tokens and args.registry is None:
        raise ConfigError("--registry-tokens needs --registry (the known triggers to match).")
    if args.out != "-" and not Path(args.out).parent.is_dir():
        raise ConfigError(f"--out {args.out}: the folder {Path(args.out).parent} does not exist.")
    calibration = read_texts(args.calibration, args.text_field, option="--calibration")
    inputs = None
    if args.input is not None:
        inputs = read_texts(args.input, args.text_field, option="--input")
        if not inputs:
            raise DataValidationError(f"--input {args.input}: no inputs to screen.")

    from ..guard.audit import AuditLog
    from ..guard.classify import ClassifierScreen
    from ..subjects.model import load_classifier

    model = load_classifier(args.model)
    triggers: Any = None
    if args.registry is not None:
        from ..registry import Registry

        with Registry.open(args.registry, create=False) as reg:
            triggers = reg.known_triggers()
        if args.registry_tokens:
            from ..guard.match_bag import TokenBagIndex

            triggers = TokenBagIndex(triggers)
    audit = AuditLog.open(args.audit)
    try:
        screen = ClassifierScreen(
            model,
            calibration=calibration,
            fpr=args.fpr,
            triggers=triggers,
            method=args.method,
            seed=args.seed,
            representation=args.representation,
            additive_support=args.additive_support,
            calibrate_all=args.calibrate_all,
            symbol_support=args.symbol_support,
            long_spans=args.long_spans,
            necessity=args.necessity,
            quartile=args.quartile,
            flips=args.flips,
            audit=audit,
            name=str(args.model),
            identity=args.identity,
        )
        n_cal = len(screen.calibration_scores_)
        print(
            f"calibrated on {n_cal} clean text(s): p-values in steps of 1/{n_cal + 1} "
            f"= {screen.p_resolution_:.4f}; an input is flagged at p <= {screen.fpr}, i.e. "
            f"when at most {_above(screen)} calibration score(s) reach its own"
            + (
                f" (each score the joined ranks of {', '.join(screen.columns_)})"
                if len(screen.columns_) > 1
                else ""
            ),
            file=sys.stderr,
            flush=True,
        )
        if args.serve:
            return _serve(screen, host, args.port)
        assert inputs is not None
        decisions = screen.screen_many(inputs)
        lines = "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in decisions)
        _write(args.out, lines)
        n = sum(d.flagged for d in decisions)
        print(
            f"{n} of {len(decisions)} input(s) flagged; decisions in the audit log "
            f"{audit.display_url}",
            file=sys.stderr,
        )
        return EXIT_FINDINGS if n else EXIT_OK
    finally:
        audit.close()


def _above(screen: Any) -> int:
    """How many calibration scores may reach a flagged input's: ``(1 + k) / (n + 1) <= fpr``."""
    n = len(screen.calibration_scores_)
    return max(0, math.floor(screen.fpr * (n + 1) + 1e-9) - 1)


def _write(out: str, text: str) -> None:
    """Write ``text`` to ``out`` (``-``: stdout) whole or not at all (temp file + rename)."""
    if out == "-":
        sys.stdout.write(text)
        return
    path = Path(out)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _serve(screen: Any, host: str, port: int) -> int:
    from ..guard._classify_app import create_classify_app
    from ..guard._ops import GuardServer
    from . import EXIT_OK

    server = GuardServer(create_classify_app(screen), host=host, port=port)
    print(f"Screening {screen.name} at {server.url}/classify", flush=True)
    server.serve_forever()
    return EXIT_OK
