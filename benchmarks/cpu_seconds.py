"""CPU seconds (user + sys) of a command and of every process it starts, orphans included.

Usage::

    python benchmarks/cpu_seconds.py LABEL COMMAND [ARGS...]
    # e.g. PYTHONPATH=src python benchmarks/cpu_seconds.py after python -m pytest -q \\
    #     tests/scale/test_scale_ray.py -k labelled_with_embeddings

Prints ``LABEL: rc RC W s wall U user S sys``. On a shared machine wall seconds say little;
CPU seconds of the whole process tree do. ``/usr/bin/time`` counts only the descendants that
their parents wait for: a local Ray cluster's node processes (raylet, workers) are not, and
their CPU is lost to it. Here this process makes itself a child subreaper (Linux
``prctl(PR_SET_CHILD_SUBREAPER)``), so every orphaned descendant is re-parented to it, reaps
them all after the command ends (waiting at most 120 s for stragglers) and reads
``getrusage(RUSAGE_CHILDREN)``. No library measures a whole process tree this way (``psutil``
samples live processes and misses those that have exited), hence these few lines. Linux only.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: cpu_seconds.py LABEL COMMAND [ARGS...]", file=sys.stderr)
        return 2
    if not sys.platform.startswith("linux"):
        print("cpu_seconds.py needs Linux (prctl PR_SET_CHILD_SUBREAPER)", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 2
    label, command = argv[0], argv[1:]
    t0 = time.monotonic()
    rc = subprocess.call(command)
    wall = time.monotonic() - t0
    end, left = time.monotonic() + 120, False
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() > end:
                left = True
                break
            time.sleep(0.5)
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    note = " (descendants still running after 120 s)" if left else ""
    print(f"{label}: rc {rc} {wall:.1f} s wall {r.ru_utime:.1f} user {r.ru_stime:.1f} sys{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
