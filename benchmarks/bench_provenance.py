"""Provenance speed: hashing vs ``sha256sum``, sign/verify time, registry writes per second.

Run (needs ``dormant[provenance]``; writes about 3 GB under ``--tmp`` and deletes it)::

    python benchmarks/bench_provenance.py --size-gb 2 --tmp /tmp

1. Hashing: one ``--size-gb`` file hashed by :func:`dormant.provenance.hash_file` and by
   ``sha256sum`` in the same run, alternating, best of ``--repeats`` (the file is read once
   first, so both see the page cache: this compares hashing speed, not the disk); then a
   directory of four files of ``size/4`` by :func:`hash_path` (threads) against ``sha256sum``
   over the same files.
2. Signing: ``sign_model`` and ``verify_model`` (EC P-256 key, OpenSSF model-signing) on the
   big file as a one-file model and on a small three-file model.
3. Registry: ``record_scan`` of a report with two trigger findings, plus ``record_artifact``
   and ``record_provenance`` for the same digest (three write transactions per item), by 1 and
   by ``--writers`` concurrent processes on one SQLite file in WAL mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(64 << 20)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_hashing(tmp: Path, size: int, repeats: int) -> dict[str, float]:
    from dormant.provenance import hash_file, hash_path

    big = tmp / "big.bin"
    _write_file(big, size)
    out: dict[str, float] = {"size_bytes": size}
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    ours, theirs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        hexd = hash_file(big)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = subprocess.run(["sha256sum", str(big)], capture_output=True, text=True, check=True)
        theirs.append(time.perf_counter() - t0)
        assert res.stdout.split()[0] == hexd
    out["file_dormant_s"] = min(ours)
    out["file_sha256sum_s"] = min(theirs)
    parts = tmp / "parts"
    parts.mkdir()
    for i in range(4):
        _write_file(parts / f"shard-{i}.bin", size // 4)
    files = sorted(str(p) for p in parts.iterdir())
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
    out["dir_dormant_s"] = _best(lambda: hash_path(parts), repeats)
    out["dir_sha256sum_s"] = _best(
        lambda: subprocess.run(["sha256sum", *files], capture_output=True, check=True), repeats
    )
    shutil.rmtree(parts)
    return out


def bench_signing(tmp: Path) -> dict[str, float]:
    from dormant.provenance import generate_key_pair, sign_model, verify_model

    key, pub = generate_key_pair(tmp / "k.key")
    small = tmp / "small"
    small.mkdir()
    for name, n in (("config.json", 1_000), ("tokenizer.json", 500_000), ("w.bin", 5_000_000)):
        (small / name).write_bytes(os.urandom(n))
    out: dict[str, float] = {}
    for label, model, sig in (
        ("small", small, None),
        ("big", tmp / "big.bin", tmp / "big.sig"),
    ):
        t0 = time.perf_counter()
        sign_model(model, key=key, signature=sig)
        out[f"sign_{label}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        verify_model(model, key=pub, signature=sig)
        out[f"verify_{label}_s"] = time.perf_counter() - t0
    return out


WRITER = textwrap.dedent(
    """
    import sys, time
    from dormant.findings import Finding, SubjectRef
    from dormant.registry import Registry
    from dormant.report import Report
    from dormant.triggers import Trigger
    reg = Registry.open({url!r})
    start = float(sys.argv[1])
    while time.time() < start:
        time.sleep(0.001)
    for i in range({n}):
        d = "sha256:%064x" % ({w} * 10_000_000 + i)
        s = SubjectRef("dataset", "d.jsonl", d)
        r = Report(subject=s)
        for t in ("cf", "mn"):
            r.findings.append(Finding("token-skew", s, t, "high", 0.9, "data-poisoning",
                                      trigger=Trigger(t, "token"), target="label:1"))
        reg.record_artifact(d, "/m/%d" % i, "dataset")
        reg.record_provenance(d, status="signed", method="key", signer="k")
        reg.record_scan(r.finish())
    """
)


def bench_registry(tmp: Path, writers: int, each: int) -> dict[str, float]:
    from dormant.registry import Registry

    out: dict[str, float] = {}
    for n_proc in (1, writers):
        url = f"sqlite:///{tmp / f'reg{n_proc}.sqlite3'}"
        Registry.open(url).close()  # migrate once, outside the timing
        start = time.time() + 3.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER.format(url=url, n=each, w=w), str(start)]
            )
            for w in range(n_proc)
        ]
        for p in procs:
            p.wait()
            assert p.returncode == 0
        wall = time.time() - start
        items = n_proc * each
        out[f"items_{n_proc}w"] = items
        out[f"items_per_s_{n_proc}w"] = items / wall
        out[f"writes_per_s_{n_proc}w"] = 3 * items / wall
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--each", type=int, default=200, help="items per registry writer")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dormant-bench-", dir=args.tmp))
    try:
        size = int(args.size_gb * (1 << 30))
        h = bench_hashing(tmp, size, args.repeats)
        s = bench_signing(tmp)
        r = bench_registry(tmp, args.writers, args.each)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    gib = size / (1 << 30)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| measurement | dormant | baseline |\n|---|---|---|")
    print(
        f"| hash one {gib:.1f} GiB file | {h['file_dormant_s']:.2f} s "
        f"({gib / h['file_dormant_s']:.2f} GiB/s) | sha256sum {h['file_sha256sum_s']:.2f} s "
        f"({gib / h['file_sha256sum_s']:.2f} GiB/s) |"
    )
    print(
        f"| hash 4 files, {gib:.1f} GiB total | {h['dir_dormant_s']:.2f} s "
        f"({gib / h['dir_dormant_s']:.2f} GiB/s) | sha256sum {h['dir_sha256sum_s']:.2f} s "
        f"({gib / h['dir_sha256sum_s']:.2f} GiB/s) |"
    )
    print(
        f"| sign / verify 3-file 5.5 MB model | {s['sign_small_s']:.2f} s / "
        f"{s['verify_small_s']:.2f} s | - |"
    )
    print(
        f"| sign / verify {gib:.1f} GiB one-file model | {s['sign_big_s']:.2f} s / "
        f"{s['verify_big_s']:.2f} s | - |"
    )
    for n in (1, args.writers):
        print(
            f"| registry, {n} writer process(es), SQLite WAL | "
            f"{r[f'writes_per_s_{n}w']:.0f} writes/s ({r[f'items_per_s_{n}w']:.0f} scans/s) | - |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"hashing": h, "signing": s, "registry": r}, indent=2)
        )


if __name__ == "__main__":
    main()
