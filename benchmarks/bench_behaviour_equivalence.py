"""Before/after check of the behaviours package: the same texts get the same behaviour tags.

Tags every text of three unlike corpora with :func:`dormant.behaviours.behaviour_tags`, once
with each source tree, in a fresh process each, and compares the tag sets text by text:

- ``apt``: the long descriptions of the installed Debian package index (``apt-cache
  dumpavail``; URLs, e-mail addresses, code names, shell snippets);
- ``instruction``: question/answer pairs of the packaged WordNet/Jargon sample with each of the
  five planted behaviours (egress, tool, secret, insecure-code, policy-leak) in 10% of the
  responses (:func:`dormant.bench.poison.poison_instruction`);
- ``man``: the first 4,000 characters of each page of manual sections 2 and 3 (C APIs, code
  examples), rendered by ``man`` when it is installed.

A figure that does not depend on the machine's speed: texts whose tags differ / texts compared,
and tags fired per family. The time per text is reported as well (noisy on a shared machine).

Usage::

    git archive <base-commit> src | tar -x -C /tmp/before
    python benchmarks/bench_behaviour_equivalence.py --before /tmp/before/src --after src \\
        --out benchmarks/results/behaviour_equivalence.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BEHAVIOURS = ("egress", "tool", "secret", "insecure-code", "policy-leak")


def apt_texts(limit: int) -> list[str]:
    """Package descriptions (first line and long text) from the installed package index."""
    out = subprocess.run(
        ["apt-cache", "dumpavail"], capture_output=True, text=True, check=True
    ).stdout
    texts: list[str] = []
    cur: list[str] = []
    for line in out.splitlines():
        if line.startswith("Description:"):
            cur = [line.split(":", 1)[1].strip()]
        elif cur and line.startswith(" "):
            cur.append(line.strip().removeprefix("."))
        elif cur:
            texts.append("\n".join(cur))
            cur = []
    if cur:
        texts.append("\n".join(cur))
    return sorted(set(texts))[:limit]


def instruction_texts() -> list[str]:
    from dormant.bench.corpus import instruction_dataset, load_corpus
    from dormant.bench.poison import poison_instruction

    recs = instruction_dataset(load_corpus("sample", seed=0)[:2000], seed=0)
    texts: list[str] = []
    for i, beh in enumerate(BEHAVIOURS):
        part = recs[i * 400 : (i + 1) * 400]
        poisoned = poison_instruction(part, trigger_kind="token", rate=0.1, behaviour=beh, seed=i)
        texts.extend(str(r["response"]) for r in poisoned.records)
    return texts


def man_texts(limit: int) -> list[str]:
    texts: list[str] = []
    for sec in ("2", "3"):
        d = Path("/usr/share/man") / f"man{sec}"
        for p in sorted(d.glob("*.gz"))[: limit // 2] if d.is_dir() else []:
            try:
                raw = gzip.decompress(p.read_bytes()).decode("utf-8", "replace")
            except OSError:
                continue
            texts.append(raw[:4000])
    return texts


def tag_all(corpora: dict[str, list[str]]) -> dict[str, Any]:
    from dormant.behaviours import behaviour_tags

    out: dict[str, Any] = {}
    for name, texts in corpora.items():
        t0 = time.process_time()
        tags = [sorted(behaviour_tags(t)) for t in texts]
        out[name] = {"tags": tags, "cpu_s": time.process_time() - t0}
    return out


def _child(src: str, corpora: Path, dump: Path) -> None:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(corpora), "--dump", str(dump)]
    subprocess.run(cmd, env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="the baseline source tree (its src/ folder)")
    ap.add_argument("--after", help="the changed source tree (its src/ folder)")
    ap.add_argument("--out", default="benchmarks/results/behaviour_equivalence.json")
    ap.add_argument("--limit", type=int, default=20000, help="texts per corpus at most")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        corpora = json.loads(Path(args.child).read_text("utf-8"))
        Path(args.dump).write_text(json.dumps(tag_all(corpora)), "utf-8")
        return
    sys.path.insert(0, str(Path(args.after).resolve()))
    corpora = {
        "apt": apt_texts(args.limit),
        "instruction": instruction_texts(),
        "man": man_texts(args.limit),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cpath = Path(tmp) / "corpora.json"
        cpath.write_text(json.dumps(corpora), "utf-8")
        res = {}
        for side in ("before", "after"):
            dump = Path(tmp) / f"{side}.json"
            _child(str(Path(getattr(args, side)).resolve()), cpath, dump)
            res[side] = json.loads(dump.read_text("utf-8"))
    rows = []
    for name, texts in corpora.items():
        b, a = res["before"][name]["tags"], res["after"][name]["tags"]
        fam = Counter(t.partition(":")[0] for tags in a for t in tags)
        rows.append(
            {
                "corpus": name,
                "texts": len(texts),
                "differing": sum(x != y for x, y in zip(b, a, strict=True)),
                "tagged_before": sum(bool(x) for x in b),
                "tagged_after": sum(bool(y) for y in a),
                "families_after": dict(sorted(fam.items())),
                "us_per_text_before": 1e6 * res["before"][name]["cpu_s"] / max(1, len(texts)),
                "us_per_text_after": 1e6 * res["after"][name]["cpu_s"] / max(1, len(texts)),
            }
        )
    result = {"rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    for r in rows:
        print(
            f"{r['corpus']:12} texts={r['texts']} differing={r['differing']} "
            f"tagged {r['tagged_before']}->{r['tagged_after']} "
            f"us/text {r['us_per_text_before']:.1f}->{r['us_per_text_after']:.1f} "
            f"{r['families_after']}"
        )


if __name__ == "__main__":
    main()
