"""No job is lost or stuck (issue 7, findings 3 and 4): workers SIGKILLed mid-training, Redis
SIGKILLed and restarted mid-job, redelivered and duplicate messages. Each test runs its own
workers (and, for the Redis test, its own persistent redis-server) on its own key prefix, with a
short lease so that it runs in seconds; FLIGHT_DELAY_RECOVERY_TEST_DEFAULTS=1 runs them with the
shipped defaults (30 s lease, 10 s recovery interval) instead.
"""

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

import pytest
from flask import Flask

from flight_delay import create_app
from flight_delay.devstack import WORKER_COMMAND, free_port, start_redis, stop_processes
from flight_delay.jobs import send_job
from flight_delay.registry import ModelRegistry
from tests.conftest import REPO
from tests.integration.conftest import admin, environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHIPPED_DEFAULTS = os.environ.get("FLIGHT_DELAY_RECOVERY_TEST_DEFAULTS") == "1"
FAST_RECOVERY = (
    {} if SHIPPED_DEFAULTS else {"JOB_LEASE_SECONDS": 6.0, "RECOVERY_INTERVAL_SECONDS": 1.0}
)
#: a job that fits for several seconds on these 2 cores, so that it can be killed mid-way
SLOW_JOB = {
    "dataset": "synthetic:60000",
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


@pytest.fixture
def stack(stack_settings: dict[str, Any], tmp_path: Path) -> Iterator[Stack]:
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


def test_a_job_whose_worker_is_killed_is_retried_on_another(stack: Stack) -> None:
    first = stack.start_worker()
    model_id = stack.create(SLOW_JOB)
    stack.wait(model_id, running_fit, timeout=60)
    stack.kill_worker(first)
    killed_at = time.monotonic()
    # the API notices: no worker answers
    ready = stack.client.get("/readyz").get_json()
    assert {"field": "workers", "problem": "0 worker(s)"} in ready["errors"]
    stack.start_worker()
    record = stack.wait(model_id, finished, timeout=120)
    elapsed = time.monotonic() - killed_at
    print(
        f"\nworker SIGKILL -> {record['status']} on attempt {record['attempts']} in {elapsed:.1f} s"
    )
    assert record["status"] == "completed", record
    assert record["attempts"] == 2
    assert elapsed < 60 + 30  # 60 s to notice and requeue, plus the retrained job itself
    assert scratch_folders(stack) == []


def test_a_job_killed_on_every_attempt_ends_failed_with_the_reason(stack: Stack) -> None:
    model_id = stack.create(SLOW_JOB)
    for attempt in (1, 2):
        worker = stack.start_worker()
        stack.wait(model_id, lambda r, n=attempt: running_fit(r) and r["attempts"] == n, timeout=90)
        stack.kill_worker(worker)
    killed_at = time.monotonic()
    stack.start_worker()  # its recovery thread gives up on the job
    record = stack.wait(model_id, finished, timeout=90)
    elapsed = time.monotonic() - killed_at
    print(f"\nsecond SIGKILL -> {record['status']} in {elapsed:.1f} s: {record.get('error')}")
    assert record["status"] == "failed"
    assert "stopped renewing its lease" in record["error"]
    assert record["attempts"] == 2
    assert elapsed < 60
    assert scratch_folders(stack) == []


def test_a_killed_pool_process_is_noticed_by_its_own_worker(stack: Stack) -> None:
    """The OOM-killer case: the process running the job dies, its worker lives on."""
    worker = stack.start_worker()
    model_id = stack.create(SLOW_JOB)
    stack.wait(model_id, running_fit, timeout=60)
    children = subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, "no pool process"
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    killed_at = time.monotonic()
    record = stack.wait(model_id, finished, timeout=120)
    print(f"\npool process SIGKILL -> {record['status']} in {time.monotonic() - killed_at:.1f} s")
    assert record["status"] == "completed", record
    assert record["attempts"] == 2


def test_redelivered_and_duplicate_messages_never_rerun_a_job(stack: Stack) -> None:
    stack.start_worker()
    model_id = stack.create({"dataset": "flights.csv", "params": {"n_estimators": 50}})
    celery = stack.app.extensions["celery"]
    for _ in range(3):  # duplicates of a pending job
        send_job(celery, model_id)
    done = stack.wait(model_id, finished, timeout=60)
    assert done["status"] == "completed"
    for _ in range(3):  # redelivered messages of a finished job
        send_job(celery, model_id)
    time.sleep(2)
    again = stack.record(model_id)
    assert again["status"] == "completed"
    assert again["finished_at"] == done["finished_at"]
    assert again["attempts"] == 1
    assert scratch_folders(stack) == []


def test_a_redis_killed_and_restarted_mid_job_leaves_no_job_running(
    stack_settings: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    data = tmp_path / "redis"
    server = start_redis(port, data_dir=data)
    settings = {
        **stack_settings,
        **FAST_RECOVERY,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "KEY_PREFIX": f"fdredis{uuid.uuid4().hex[:6]}",
        "MODEL_DIR": str(tmp_path / "models"),
    }
    (tmp_path / "logs").mkdir()
    stack = Stack(settings, tmp_path / "logs")
    try:
        stack.start_worker()
        model_id = stack.create(SLOW_JOB)
        stack.wait(model_id, running_fit, timeout=60)
        time.sleep(1.5)  # the append-only file has the record as running (fsync every second)
        server.send_signal(signal.SIGKILL)
        server.wait()
        killed_at = time.monotonic()
        time.sleep(2)
        server = start_redis(port, data_dir=data)
        record = stack.wait(model_id, finished, timeout=120)
        elapsed = time.monotonic() - killed_at
        print(
            f"\nRedis SIGKILL + restart -> {record['status']} (attempt {record['attempts']}) in {elapsed:.1f} s"
        )
        assert record["status"] in ("completed", "failed"), record
        if record["status"] == "failed":
            assert record["error"], record
        assert elapsed < 60 + 30
        # a job created after the restart runs too: the worker reconnected
        later = stack.create({"dataset": "flights.csv", "params": {"n_estimators": 50}})
        assert stack.wait(later, finished, timeout=60)["status"] == "completed"
    finally:
        stack.stop()
        stop_processes([server])
