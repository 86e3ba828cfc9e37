"""Markdown tables of ``bench_data_verdicts.py`` results (main's scan vs this tree's).

Usage::

    python benchmarks/table_data_verdicts.py benchmarks/results/verdicts_main.json \
        benchmarks/results/verdicts_new.json [LABELS]

``LABELS`` names the two columns (default ``main,new``), e.g. ``before,after``. Runs of
``bench_data_verdicts.py --which new`` hold both (each row's ``before``); ``--split`` writes them
as two files for this script::

    python benchmarks/table_data_verdicts.py --split OUT_BEFORE OUT_AFTER RUN.json [RUN.json ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean


def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def split(out_before: str, out_after: str, runs: list[str]) -> None:
    """Write the ``before`` rows and the rows themselves of ``runs`` as two result files."""
    before: dict = {"cases": {}}
    after: dict = {"cases": {}}
    for path in runs:
        res = _load(path)
        for k, row in res["cases"].items():
            after["cases"][k] = {x: v for x, v in row.items() if x != "before"}
            before["cases"][k] = row["before"]
        after["machine"] = before["machine"] = res.get("machine")
    Path(out_before).write_text(json.dumps(before, indent=1))
    Path(out_after).write_text(json.dumps(after, indent=1))


def main() -> None:
    if sys.argv[1] == "--split":
        split(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    base, new = _load(sys.argv[1]), _load(sys.argv[2])
    la, lb = (sys.argv[3] if len(sys.argv) > 3 else "main,new").split(",")
    bc, nc = base["cases"], new["cases"]
    keys = [k for k in nc if k in bc]
    print(f"machine: {new.get('machine')}\n")
    print("**F1 of quarantined records on the held-out corpus** (mean over seeds; `rec` = top-1")
    print("trigger recovered in how many seeds)\n")
    print(
        f"| trigger | poisoning | rate | {la} F1 | {lb} F1 | {la} rec | {lb} rec "
        + f"| {lb} P(planted) of top |"
    )
    print("|---|---|---|---|---|---|---|---|")
    agg: dict[tuple[str, str, str], list[tuple[dict, dict]]] = defaultdict(list)
    for k in keys:
        corpus, _seed, kind, rate, mode = k.split("/")
        if kind == "none" or corpus != "manpages":
            continue
        agg[(kind, mode, rate)].append((bc[k], nc[k]))
    order = ["token", "log-token", "phrase", "sentence", "invisible", "homoglyph", "style"]
    for (kind, mode, rate), pairs in sorted(
        agg.items(), key=lambda t: (t[0][1], order.index(t[0][0]), float(t[0][2]))
    ):
        ps = [n["top_p"] for _b, n in pairs if n["top_p"] is not None]
        f1b, f1n = mean(b["f1"] for b, _ in pairs), mean(n["f1"] for _, n in pairs)
        recb = sum(b["recovered"] for b, _ in pairs)
        recn = sum(n["recovered"] for _, n in pairs)
        top = f"{mean(ps):.2f}" if ps else "-"
        print(
            f"| {kind} | {mode}-label | {float(rate):.1%} | {f1b:.3f} | {f1n:.3f} | "
            f"{recb}/{len(pairs)} | {recn}/{len(pairs)} | {top} |"
        )
    print(
        "\n**Clean datasets**: findings at medium or above (none is a trigger), flagged records\n"
    )
    print(
        f"| dataset | records | {la} medium+ | {lb} medium+ | {la} flagged | {lb} flagged "
        + f"| {la} examples | {lb} examples |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for k in keys:
        if "/none/" not in k:
            continue
        b, n = bc[k], nc[k]
        ex = ", ".join(f"`{e}`" for e in b["non_trigger_examples"][:3] if e)
        ex_n = ", ".join(f"`{e}`" for e in n["non_trigger_examples"][:3] if e)
        name = f"{k.split('/')[0]} (seed {k.split('/')[1]})"
        print(
            f"| {name} | {n['records']} | {b['non_trigger_medium_plus']} | "
            f"{n['non_trigger_medium_plus']} | {b['flagged']} | {n['flagged']} | {ex} | {ex_n} |"
        )
    extra = sum(
        n["non_trigger_medium_plus"] for k, n in nc.items() if "/none/" not in k and k in bc
    )
    extra_b = sum(
        b["non_trigger_medium_plus"] for k, b in bc.items() if "/none/" not in k and k in nc
    )
    print(
        f"\nNon-trigger findings at medium+ beside a planted trigger, all poisoned cases: "
        f"{la} {extra_b}, {lb} {extra}.\n"
    )
    for label, res in ((la, bc), (lb, nc)):
        if all("calibration" in res[k] for k in keys):
            _reliability(
                label,
                [
                    (p, y)
                    for k in keys
                    if k.startswith("manpages")
                    for p, y in res[k]["calibration"]
                ],
            )


def _reliability(label: str, pairs: list[tuple[float, int]]) -> None:
    print(
        f"**Calibration of P(planted), {label}**, on the held-out corpus ({len(pairs)} candidate "
        f"groups, {sum(y for _, y in pairs)} planted)\n"
    )
    print("| P(planted) bin | groups | mean P | planted share |")
    print("|---|---|---|---|")
    ece = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inbin = [(p, y) for p, y in pairs if lo <= p < hi or (b == 9 and p == 1.0)]
        if not inbin:
            continue
        mp, my = mean(p for p, _ in inbin), mean(y for _, y in inbin)
        ece += len(inbin) / len(pairs) * abs(mp - my)
        print(f"| {lo:.1f}-{hi:.1f} | {len(inbin)} | {mp:.3f} | {my:.3f} |")
    print(f"\nExpected calibration error (10 bins): **{ece:.4f}**\n")


if __name__ == "__main__":
    main()
