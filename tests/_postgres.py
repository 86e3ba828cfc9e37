"""A real PostgreSQL server for the tests, started on loopback in a temp directory (a fixture).

Needs Debian's ``postgresql`` package; skipped, with the reason, when its binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(cand, "initdb"), os.X_OK):
            return Path(cand)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; "
            "install them with: apt-get install -y postgresql"
        )
    prefix: list[str] = []
    root = tempfile.mkdtemp(prefix="dormant-pg-")
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        if runuser is None or user is None:
            pytest.skip("running as root without a 'postgres' user and runuser to drop to")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")

    def run(*cmd: str) -> None:
        res = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"{cmd[0]} failed: {res.stdout}\n{res.stderr}"

    run(str(bindir / "initdb"), "-D", data, "-U", "dormant", "--auth=trust", "-E", "UTF8",
        "--no-sync")  # fmt: skip
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", data, "-l", os.path.join(root, "log"), "-w", "-t", "30",
        "-o", opts, "start")  # fmt: skip
    try:
        yield f"postgresql://dormant@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _create_database(url: str, name: str) -> str:
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name
