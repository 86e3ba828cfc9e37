"""Trace the resident set of a benchmark's scanning process (benchmark helper).

Every ``EVERY`` seconds while the process ``PARENT`` (e.g. ``bench_data_disk.py``) lives,
finds its child (the scan, a fresh process) and appends one line to ``OUT``: UTC time, the
child's CPU seconds, VmRSS, VmHWM, RssAnon and RssFile (MB, ``/proc/PID/status``) and the
three files under ``/tmp`` whose maps hold the most resident pages (``/proc/PID/smaps``) —
which per-record array or row file a file-backed rise is.

Usage::

    python benchmarks/bench_data_disk.py --sizes 10000000 --data-dir /tmp/ddisk & \\
        python benchmarks/trace_rss.py $! benchmarks/results/trace.txt 20
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

MAP = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$")


def child(parent: int) -> int | None:
    """The first process whose parent is ``parent``."""
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    return int(p.name)
            except (OSError, ValueError, IndexError):
                pass
    return None


def sample(pid: int) -> str:
    """One trace line for ``pid``."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    st = {k: v.split()[0] for k, _, v in (ln.partition(":") for ln in lines) if v.strip()}
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    maps: dict[str, int] = {}
    cur = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        m = MAP.match(line)
        if m:
            cur = m.group(1)
        elif line.startswith("Rss:") and cur and cur.startswith("/tmp"):
            maps[cur] = maps.get(cur, 0) + int(line.split()[1])
    top = sorted(maps.items(), key=lambda kv: -kv[1])[:3]
    mb = [round(int(st.get(k, 0)) / 1024) for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")]
    files = " ".join(f"{Path(k).name}={v // 1024}" for k, v in top)
    now = time.strftime("%H:%M:%S", time.gmtime())
    return f"{now} {cpu:.0f} {pid} {' '.join(map(str, mb))} {files}"


def main() -> None:
    parent, out, every = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    with open(out, "a", encoding="utf-8") as fh:
        fh.write("# utc cpu_s pid VmRSS_MB VmHWM_MB RssAnon_MB RssFile_MB top_file_maps(MB)\n")
        while Path(f"/proc/{parent}").exists():
            pid = child(parent)
            if pid:
                try:
                    fh.write(sample(pid) + "\n")
                    fh.flush()
                except (OSError, ValueError, IndexError):
                    pass  # the child ended between two reads
            time.sleep(every)


if __name__ == "__main__":
    main()
