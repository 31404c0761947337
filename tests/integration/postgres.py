"""A real PostgreSQL server for tests: Debian's binaries, initdb and pg_ctl on a loopback port,
run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root), removed at
the end. Skips with the reason when the server is not installed (.ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flight_delay.devstack import free_port


def server_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a fresh server's ``postgres`` database (trust auth, loopback only)."""
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="fd-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*command: str | Path) -> None:
        subprocess.run(
            [*as_postgres, *map(str, command)], check=True, capture_output=True, timeout=120
        )

    run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(bindir / "pg_ctl", "-D", data, "-o", options, "-l", root / "server.log", "-w", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
