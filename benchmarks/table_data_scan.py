"""Render ``bench_data_scan.py`` results as the Markdown tables of BENCHMARKS.md.

Usage: ``python benchmarks/table_data_scan.py benchmarks/results/data_scan.json [more.json ...]``
(several files are merged, e.g. a labelled and an instruction run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f1_table(rows: list[dict[str, Any]], data: str) -> list[str]:
    sel = [r for r in rows if r["data"] == data and r["kind"] != "clean"]
    if not sel:
        return []
    out = [
        f"**{data} data** — F1 of flagged records (precision / recall in the JSON); "
        "`rec` = top-1 trigger recovered",
        "",
        "| trigger | rate | poisoned | dormant fused | trigger mining | ART spectral | "
        "ART activation | rec | top trigger |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sel:
        out.append(
            f"| {r['kind']} | {r['rate']:.1%} | {r['poisoned']} | {r['fused']['f1']:.3f} | "
            f"{r['mining']['f1']:.3f} | {r['art_ss']['f1']:.3f} | {r['art_ac']['f1']:.3f} | "
            f"{'yes' if r['recovered'] else 'no'} | `{r['top_trigger']}` |"
        )
    return [*out, ""]


def main() -> None:
    rows: list[dict[str, Any]] = []
    speed: list[dict[str, Any]] = []
    emb: dict[str, Any] | None = None
    for path in sys.argv[1:]:
        res = json.loads(Path(path).read_text(encoding="utf-8"))
        print(
            f"<!-- {path}: {res.get('command')} on {res.get('machine')}, load average "
            f"{res.get('load_average_at_start')} -> {res.get('load_average_at_end')} -->"
        )
        rows += res.get("quality", [])
        speed += res.get("speed", [])
        emb = res.get("embedding", emb)
    lines: list[str] = []
    for data in ("labelled", "instruction"):
        lines += _f1_table(rows, data)
    clean = [r for r in rows if r["kind"] == "clean"]
    if clean:
        lines += [
            "**clean datasets**",
            "",
            "| data | records | high findings | flagged (dormant) | flagged (ART spectral) "
            "| flagged (ART activation) |",
            "|---|---|---|---|---|---|",
        ]
        for r in clean:
            lines.append(
                f"| {r['data']} | {r['records']} | {r['high_findings']} | "
                f"{r['fused']['flagged']} | {r['art_ss']['flagged']} | "
                f"{r['art_ac']['flagged']} |"
            )
        lines.append("")
    if speed:
        lines += [
            "| records | read only (rec/s) | statistical pass (rec/s) | full mining (rec/s) "
            "| peak memory of the statistical pass (MB) | prunes |",
            "|---|---|---|---|---|---|",
        ]
        for r in speed:
            lines.append(
                f"| {r['records']:,} | {r['read_only_rps']:,} | "
                f"{r['statistical_pass_rps']:,} | {r['full_mining_rps']:,} | "
                f"{r['peak_rss_mb_statistical_pass']} | {r['prunes']} |"
            )
        lines.append("")
    if emb:
        lines.append(
            f"Embedding pass: {emb['dormant_per_s']} texts/s against the raw encoder's "
            f"{emb['raw_encoder_per_s']} texts/s on the same {emb['texts']} texts "
            f"(ratio {emb['ratio']:.2f}; batch {emb['batch_size']}, max length "
            f"{emb['max_length']})."
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
