"""Celery workers of a test's own, started and SIGKILLed at will, and the one helper every
kind of job's recovery test uses (tests/integration/test_job_recovery.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask

from flight_delay import create_app
from flight_delay.devstack import WORKER_COMMAND, stop_processes
from flight_delay.registry import ModelRegistry
from tests.conftest import REPO
from tests.integration.conftest import admin, environment

SHIPPED_DEFAULTS = os.environ.get("FLIGHT_DELAY_RECOVERY_TEST_DEFAULTS") == "1"
FAST_RECOVERY = (
    {} if SHIPPED_DEFAULTS else {"JOB_LEASE_SECONDS": 6.0, "RECOVERY_INTERVAL_SECONDS": 1.0}
)
#: a job that fits for about five seconds on these 2 cores (one fit, no folds, no refit), so
#: that it can be killed mid-way, and its retry is short
SLOW_JOB = {
    "dataset": "synthetic:60000",
    "cv_folds": 0,
    "refit": False,
    "params": {"n_estimators": 600, "early_stopping_rounds": 0, "learning_rate": 0.05, "n_jobs": 1},
}


class Stack:
    """Workers on a key prefix of their own, started and killed at will."""

    def __init__(self, settings: dict[str, Any], logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.workers: list[subprocess.Popen[bytes]] = []
        self.app: Flask = create_app({"TESTING": True, **settings})
        self.client = self.app.test_client()
        self.registry: ModelRegistry = self.app.extensions["model_registry"]

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.workers)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", *WORKER_COMMAND], cwd=REPO,
                env=environment(self.settings), stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole, pool included
            )  # fmt: skip
        self.workers.append(process)
        deadline = time.monotonic() + 60
        while not self.app.extensions["celery"].control.ping(timeout=0.5):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not start"
        return process

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def create(self, body: dict[str, Any]) -> str:
        response = self.client.post("/models", json=body, headers=admin())
        assert response.status_code == 202, response.get_json()
        return str(response.get_json()["id"])

    def record(self, model_id: str) -> dict[str, Any]:
        return self.registry.get(model_id)

    def wait(
        self, model_id: str, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                record = self.record(model_id)
            except Exception:  # Redis restarting
                record = {}
            if record and done(record):
                return record
            time.sleep(0.1)
        raise AssertionError(
            f"{model_id} not there after {timeout}s: {record}; logs: {self.tail()}"
        )

    def tail(self) -> str:
        return "\n".join(p.read_text()[-1500:] for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        stop_processes(self.workers)


def workers_of_their_own(stack_settings: dict[str, Any], tmp_path: Path) -> Iterator[Stack]:
    """A :class:`Stack` on a key prefix and model folder of its own (a fixture's body)."""
    settings = {
        **stack_settings,
        **FAST_RECOVERY,
        "KEY_PREFIX": f"fdrec{uuid.uuid4().hex[:8]}",
        "MODEL_DIR": str(tmp_path / "models"),
    }
    (tmp_path / "logs").mkdir()
    running = Stack(settings, tmp_path / "logs")
    try:
        yield running
    finally:
        running.stop()


def running_fit(record: dict[str, Any]) -> bool:
    return record["status"] == "running" and "fitting" in record.get("stage", "")


def finished(record: dict[str, Any]) -> bool:
    return record["status"] in ("completed", "failed")


def scratch_folders(stack: Stack) -> list[str]:
    folder = Path(stack.settings["MODEL_DIR"])
    return [p.name for p in folder.glob(".work-*")] if folder.exists() else []


def kill_mid_job_then_recover(
    stack: Stack,
    worker: subprocess.Popen[bytes],
    read: Callable[[], dict[str, Any]],
    running: Callable[[dict[str, Any]], bool],
    timeout: float = 120,
    after_kill: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[dict[str, Any], float]:
    """SIGKILL ``worker`` (its whole process group) as soon as the job's record (``read()``)
    is ``running`` (an attempt holds its lease), start another worker, and wait until the job
    is finished: (the record then, seconds from the kill). ``after_kill(record)`` must hold
    between the kill and the next worker's start."""
    deadline = time.monotonic() + timeout
    record = read()
    while not (record and running(record)):
        assert time.monotonic() < deadline, f"the job never ran: {record}; {stack.tail()}"
        assert record.get("status") not in FINISHED, f"finished before the kill: {record}"
        time.sleep(0.02)
        record = read()
    stack.kill_worker(worker)
    killed_at = time.monotonic()
    if after_kill is not None:
        assert after_kill(record), record
    stack.start_worker()
    while record.get("status") not in FINISHED:
        assert time.monotonic() < killed_at + timeout, f"not finished: {record}; {stack.tail()}"
        time.sleep(0.1)
        record = read()
    return record, time.monotonic() - killed_at


#: the statuses a job ends in, whatever its kind
FINISHED = ("completed", "failed")
