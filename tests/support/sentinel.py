"""A Redis master, its replica and three Sentinels on loopback: real ``redis-server`` processes
(the same binary as every other test, the last three run with ``--sentinel``), stopped at the end.

Failover is quick on purpose: a master is declared down after ``DOWN_AFTER_MS`` of silence.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from flight_delay.devstack import free_port, redis_server_binary

MASTER_NAME = "flight-delay"
DOWN_AFTER_MS = 2000
QUORUM = 2


@dataclass
class SentinelGroup:
    directory: Path
    ports: dict[str, int]  # "a" and "b": the two data servers; the Sentinels' in sentinel_ports
    sentinel_ports: list[int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sentinels(self) -> str:
        """``FLIGHT_DELAY_REDIS_SENTINELS`` for this group."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def settings(self) -> dict[str, Any]:
        return {
            "REDIS_SENTINELS": self.sentinels,
            "REDIS_MASTER": MASTER_NAME,
            "REDIS_URL": "redis://127.0.0.1:6379/0",  # with Sentinels only its database counts
        }

    def environment(self) -> dict[str, str]:
        return {f"FLIGHT_DELAY_{name}": value for name, value in self.settings().items()}

    def master(self) -> str:
        """The data server ("a" or "b") a majority of the Sentinels name as master now."""
        named: dict[int, int] = {}
        for port in self.sentinel_ports:
            with (
                contextlib.suppress(redis.RedisError, TypeError),
                redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client,
            ):
                _, master_port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                named[int(master_port)] = named.get(int(master_port), 0) + 1
        port = max(named, key=lambda p: named[p]) if named else -1
        return next(name for name, p in self.ports.items() if p == port)

    def client(self, name: str) -> redis.Redis:
        """A plain client of one server (no Sentinel); callers close it, or use ``read``."""
        return redis.Redis(port=self.ports[name], socket_timeout=2, decode_responses=True)

    def read(self, name: str, command: str, *args: Any) -> Any:
        """One command on one server, its connection closed at once."""
        with self.client(name) as client:
            return client.execute_command(command, *args)

    def start_server(self, name: str, replica_of: str | None) -> None:
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.ports[name])]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.ports[replica_of])]
        with (self.directory / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        _wait_ping(self.ports[name])

    def start_sentinel(self, index: int, master_port: int) -> None:
        config = self.directory / f"sentinel-{index}.conf"
        port = self.sentinel_ports[index]
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        with (self.directory / f"sentinel-{index}.log").open("ab") as log:
            self.processes[f"sentinel-{index}"] = subprocess.Popen(
                [redis_server_binary(), str(config), "--sentinel"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_ping(port)

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.processes[name].pid, signum)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.processes[name].wait()

    def wait_for_failover(self, away_from: str, timeout: float = 30) -> str:
        """Wait until the Sentinels name another master and it answers as one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, StopIteration):
                now = self.master()
                if now != away_from and self.read(now, "ROLE")[0] == "master":
                    return now
            time.sleep(0.1)
        raise AssertionError(f"no failover away from {away_from} in {timeout} s")

    def wait_replicating(self, name: str, timeout: float = 30) -> None:
        """Wait until ``name`` is a replica with a finished sync (its link to the master up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), self.client(name) as client:
                info = client.info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") == "up":
                    return
            time.sleep(0.1)
        raise AssertionError(f"{name} is not an up-to-date replica after {timeout} s")

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.directory.glob("*.log"))
        )


def _wait_ping(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError), redis.Redis(port=port, socket_timeout=1) as c:
            if c.ping():
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on 127.0.0.1:{port} did not answer in {timeout} s")


@contextlib.contextmanager
def running_sentinel_group(directory: Path) -> Iterator[SentinelGroup]:
    """Master "a", replica "b" (synced), three Sentinels that agree on "a"."""
    directory.mkdir(parents=True, exist_ok=True)
    group = SentinelGroup(
        directory, {"a": free_port(), "b": free_port()}, [free_port() for _ in range(3)]
    )
    try:
        group.start_server("a", replica_of=None)
        group.start_server("b", replica_of="a")
        group.wait_replicating("b")
        for index in range(3):
            group.start_sentinel(index, group.ports["a"])
        _wait_sentinels_agree(group)
        yield group
    finally:
        for process in group.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a stopped server cannot take SIGTERM
            if process.poll() is None:
                process.terminate()
        for process in group.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_sentinels_agree(group: SentinelGroup, timeout: float = 30) -> None:
    """Each Sentinel knows the replica and the two other Sentinels (else a failover could not
    reach its quorum)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = 0
        for port in group.sentinel_ports:
            with (
                contextlib.suppress(redis.RedisError),
                redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client,
            ):
                state = client.execute_command("SENTINEL", "MASTER", MASTER_NAME)
                if isinstance(state, list):
                    state = dict(zip(state[::2], state[1::2], strict=False))
                fields = state
                if int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2:
                    ready += 1
        if ready == len(group.sentinel_ports):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the Sentinels did not discover each other in {timeout} s\n{group.logs()}")
