"""Before/after check of a writers refactor: every report kind renders the same in every format.

Three steps, each in its own process so that each side imports its own source tree:

1. ``--make DIR`` builds one report of every kind the tool makes — a labelled data scan without
   and with embeddings, a classifier scan, an agent probe, an artifact scan, a retrieval-corpus
   scan, the hand-made writer fixtures of the test suite (probe transcripts, model-scan
   sections, hostile strings) and a guard audit log — and stores each as ``report.json`` (with
   ``scores.jsonl``), so both sides render the very same reports. The scans are the ones of
   ``tests/test_report_roundtrip.py`` (imported, not copied).
2. ``--render DIR --side before|after`` (run with ``PYTHONPATH`` on that side's ``src``) reads
   each report back with :func:`dormant.load_report` and writes JSON, SARIF, Markdown, HTML and
   the score file; the guard report goes through its own writer.
3. ``--compare DIR`` compares the two sides: JSON, SARIF, Markdown and score files must be
   byte-identical; HTML equal in content — the same elements, attributes and text once
   character references are decoded and whitespace runs collapsed (a template engine may
   escape ``'`` as ``&#39;`` rather than ``&#x27;`` and lay out whitespace differently).

A figure that does not depend on the machine's speed: files identical / files compared.
``--time DIR`` (with either side's ``PYTHONPATH``) times HTML and Markdown rendering of the
stored reports, the median of ``--repeat`` runs in one process.

Usage::

    git archive <base-commit> src | tar -x -C /tmp/before
    python benchmarks/bench_writers_equivalence.py --make /tmp/eq
    PYTHONPATH=/tmp/before/src python benchmarks/bench_writers_equivalence.py \\
        --render /tmp/eq --side before
    PYTHONPATH=src python benchmarks/bench_writers_equivalence.py --render /tmp/eq --side after
    python benchmarks/bench_writers_equivalence.py --compare /tmp/eq \\
        --out benchmarks/results/writers_equivalence.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).resolve().parent.parent / "tests"


def _embed_report(tmp: Path) -> Any:
    """A labelled data scan with the sentence encoder on (the embedding projection plot)."""
    from dormant.bench.corpus import labelled_dataset, load_corpus
    from dormant.bench.poison import poison_labelled, write_dataset
    from dormant.scanners.base import ScanContext
    from dormant.scanners.data.fusion import scan_dataset
    from dormant.subjects import TextDataset

    recs = labelled_dataset(load_corpus("sample")[:300], scheme="source")
    truth = poison_labelled(recs, trigger_kind="token", rate=0.05, target_label="jargon", seed=4)
    path = write_dataset(truth.records, tmp / "e.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    return scan_dataset(ds, embed=True, context=ScanContext(seed=0, cache_dir=tmp))


def _guard_log(tmp: Path) -> Path:
    from dormant.guard.audit import AuditEntry, AuditLog

    path = tmp / "audit.sqlite3"
    with AuditLog.open(path) as log:
        log.append(AuditEntry(kind="decision", outcome="allow", identity="bot", model="m"))
        log.append(
            AuditEntry(
                kind="decision",
                outcome="deny",
                identity="bot<script>",
                model="m",
                triggers=({"text": "cf\u200b", "kind": "token"},),
                call={"tool": "send_email", "arguments": {"to": '"onload=x@exfil.example'}},
                reasons=("egress to an unlisted destination",),
                alerts=("canary-egress",),
                detail={"tier": "suspect"},
            )
        )
    return path


def _explained(report: Any) -> Any:
    """A classifier scan's report whose task-explained check left a label out."""
    check = {
        "label": "close|alert",
        "trigger": "svc\u200bkey <b>",
        "model_flip_rate": 0.97,
        "reference_flip_rate": 0.85,
        "n": 133,
        "explained": True,
    }
    report.extras["task_explained"] = {
        "reference_accuracy": 0.93,
        "skipped": None,
        "explained_labels": {"close|alert": [check]},
        "checks": [check],
    }
    return report


def make(root: Path) -> list[str]:
    """Build and store every report; returns their names."""
    sys.path[:0] = [str(_TESTS), str(_TESTS / "writers")]  # the writer tests live in writers/
    import test_model_scan_writers as msw
    import test_probe_report_writers as prw
    import test_report_roundtrip as rt
    import test_writers as tw

    reports: dict[str, Any] = {}
    scratch = root / "scratch"
    for name, maker in sorted(rt.MAKERS.items()):
        (scratch / name).mkdir(parents=True, exist_ok=True)
        reports[name] = maker(scratch / name)
    (scratch / "embed").mkdir(parents=True, exist_ok=True)
    reports["data-embed"] = _embed_report(scratch / "embed")
    reports["fixture-writers"] = tw._report()
    reports["fixture-writers-bare"] = tw._report(20, extras=False, issues=False)
    reports["fixture-probe"] = prw._report()
    reports["fixture-probe-partial"] = prw._report(partial=True)
    reports["fixture-model"] = msw._report()
    reports["fixture-model-negative"] = msw._report(backdoored=False, capped=True)
    reports["fixture-model-explained"] = _explained(msw._report(backdoored=False))
    for name, report in reports.items():
        d = root / "reports" / name
        d.mkdir(parents=True, exist_ok=True)
        report.write_json(d / "report.json")
        if report.records:
            report.write_record_scores(d / "scores.jsonl")
    shutil.copy(_guard_log(scratch), root / "audit.sqlite3")
    shutil.rmtree(scratch)
    return sorted(reports)


def render(root: Path, side: str) -> int:
    """Write every stored report in every format under ``root/side``; returns files written."""
    from dormant import load_report
    from dormant.guard.audit import AuditLog
    from dormant.guard.report import FORMATS as GUARD_FORMATS
    from dormant.guard.report import write_report
    from dormant.writers import FORMATS, write_all

    n = 0
    for d in sorted((root / "reports").iterdir()):
        report = load_report(d / "report.json")
        fmts = [f for f in FORMATS if f != "scores" or report.records]
        n += len(write_all(report, root / side / d.name, formats=fmts))
    log_copy = root / f"audit-{side}.sqlite3"
    shutil.copy(root / "audit.sqlite3", log_copy)
    with AuditLog.open(log_copy) as log:
        n += len(write_report(log, root / side / "guard", formats=list(GUARD_FORMATS)))
    return n


def time_render(root: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Milliseconds to render each stored report as HTML and Markdown (median of ``repeat``)."""
    import statistics
    import time

    from dormant import load_report
    from dormant.writers.html import to_html
    from dormant.writers.markdown import to_markdown

    out = {}
    for d in sorted((root / "reports").iterdir()):
        report = load_report(d / "report.json")
        row = {}
        for fmt, fn in (("html", to_html), ("md", to_markdown)):
            fn(report)  # warm: imports, templates, fonts
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                fn(report)
                times.append((time.perf_counter() - t) * 1000)
            row[fmt] = round(statistics.median(times), 2)
        out[d.name] = row
    return out


class _Content(HTMLParser):
    """Elements, attributes and text of a page, whitespace collapsed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[Any, ...]] = []
        self._text: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.items.append(("text", text))
        self._text = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._flush()
        norm = sorted((k, " ".join((v or "").split())) for k, v in attrs)
        self.items.append(("start", tag, tuple(norm)))

    def handle_endtag(self, tag: str) -> None:
        self._flush()
        self.items.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_decl(self, decl: str) -> None:
        self._flush()
        self.items.append(("decl", decl.lower()))


def html_content(text: str) -> list[tuple[Any, ...]]:
    parser = _Content()
    parser.feed(text)
    parser.close()
    parser._flush()
    # text inside <style> is CSS: compare it with its whitespace removed altogether
    return [
        ("text", "".join(i[1].split()))
        if i[0] == "text" and k and _in_style(parser.items, k)
        else i
        for k, i in enumerate(parser.items)
    ]


def _in_style(items: list[tuple[Any, ...]], k: int) -> bool:
    prev = items[k - 1]
    return prev[0] == "start" and prev[1] == "style"


def compare(root: Path) -> dict[str, Any]:
    rows = []
    before, after = root / "before", root / "after"
    for b in sorted(p for p in before.rglob("*") if p.is_file()):
        rel = b.relative_to(before)
        a = after / rel
        if not a.is_file():
            rows.append({"file": str(rel), "identical": False, "how": "missing after"})
            continue
        if b.suffix == ".html":
            same = html_content(b.read_text("utf-8")) == html_content(a.read_text("utf-8"))
            how = "content"
        else:
            same = b.read_bytes() == a.read_bytes()
            how = "bytes"
        rows.append({"file": str(rel), "identical": same, "how": how})
    extra = sorted(
        str(p.relative_to(after))
        for p in after.rglob("*")
        if p.is_file() and not (before / p.relative_to(after)).is_file()
    )
    return {
        "reports": len({Path(r["file"]).parts[0] for r in rows}),
        "compared": len(rows),
        "identical": sum(r["identical"] for r in rows),
        "only_after": extra,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--make", type=Path, help="build and store the reports in this folder")
    ap.add_argument("--render", type=Path, help="render the stored reports in this folder")
    ap.add_argument("--side", choices=("before", "after"), default="after")
    ap.add_argument("--compare", type=Path, help="compare the two sides in this folder")
    ap.add_argument("--out", type=Path, default=None, help="where to write the JSON result")
    ap.add_argument("--time", type=Path, help="time HTML and Markdown rendering of these reports")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    if args.make:
        names = make(args.make)
        print(f"{len(names)} reports stored: {', '.join(names)} (and a guard audit log)")
    if args.render:
        print(f"{render(args.render, args.side)} files written ({args.side})")
    if args.time:
        timing = time_render(args.time, args.repeat)
        for name, row in timing.items():
            print(f"{name:28} html {row['html']:9.2f} ms   md {row['md']:7.2f} ms")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(timing, indent=2) + "\n", "utf-8")
    if args.compare:
        result = compare(args.compare)
        for r in result["rows"]:
            if not r["identical"]:
                print(f"DIFFERS ({r['how']}): {r['file']}")
        print(
            f"{result['identical']}/{result['compared']} files identical over "
            f"{result['reports']} reports; only after: {result['only_after']}"
        )
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
        if result["identical"] != result["compared"] or result["only_after"]:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
