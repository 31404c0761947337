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


class PostgresServer:
    """One initialised cluster; ``stop`` and ``start`` it to test an outage."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir, self.root = bindir, root
        self.data, self.port = root / "data", free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str | Path, check: bool = True) -> None:
        subprocess.run(
            [*self.as_postgres, *map(str, command)], check=check, capture_output=True, timeout=120
        )

    def initialise(self) -> None:
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", options,
                  "-l", self.root / "server.log", "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh, started server (trust auth, loopback only), stopped and removed afterwards."""
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="fd-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(bindir, root)
    try:
        server.initialise()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
