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
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flight_delay.data.synthetic import make_synthetic_flights
from flight_delay.devstack import free_port, start_redis, stop_processes
from flight_delay.scheduling.runs import schedule_store
from flight_delay.tasks.training import send_job
from tests.integration.conftest import admin
from tests.support.prediction_log import write_log
from tests.support.workers import (
    FAST_RECOVERY,
    SLOW_JOB,
    Stack,
    finished,
    kill_mid_job_then_recover,
    running_fit,
    scratch_folders,
    workers_of_their_own,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def stack(stack_settings: dict[str, Any], tmp_path: Path) -> Iterator[Stack]:
    yield from workers_of_their_own(stack_settings, tmp_path)


def test_a_job_whose_worker_is_killed_is_retried_on_another(stack: Stack) -> None:
    """The training kind of the recovery every job has (the same helper as
    test_every_kind_of_job_survives_a_killed_worker_by_the_same_lease)."""
    first = stack.start_worker()
    model_id = stack.create(SLOW_JOB)
    stack.wait(model_id, running_fit, timeout=60)

    def no_worker_is_noticed(record: dict[str, Any]) -> bool:
        ready = stack.client.get("/readyz").get_json()
        return {"field": "workers", "problem": "0 worker(s)"} in ready["errors"]

    record, elapsed = kill_mid_job_then_recover(
        stack, first, lambda: stack.record(model_id), running_fit,
        after_kill=no_worker_is_noticed,
    )  # fmt: skip
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


# -- every kind of job, one helper ----------------------------------------------------------------
#: small and quick to train, for the models a job of another kind reads
QUICK = {"cv_folds": 0, "refit": False, "params": {"n_estimators": 40, "learning_rate": 0.1}}
#: enough flights that reading them again takes the job a second or more
BIG = "synthetic:150000"


def _trained(stack: Stack, **body: Any) -> str:
    model_id = stack.create({"dataset": "flights.csv", **QUICK, **body})
    assert stack.wait(model_id, finished, timeout=120)["status"] == "completed"
    return model_id


def _entry(stack: Stack, key: str) -> dict[str, Any]:
    return stack.registry.redis.hgetall(key)  # type: ignore[no-any-return]


def _comparison_job(stack: Stack) -> tuple[Callable[[], dict[str, Any]], str]:
    ids = [_trained(stack), _trained(stack, model_type="logistic_regression", params={})]
    answer = stack.client.post(
        "/comparisons", json={"model_ids": ids, "dataset": BIG}, headers=admin()
    )
    assert answer.status_code == 202, answer.get_json()
    key = f"{stack.settings['KEY_PREFIX']}:comparison:{answer.get_json()['id']}"
    return lambda: _entry(stack, key), "running"


def _drift_job(stack: Stack) -> tuple[Callable[[], dict[str, Any]], str]:
    model_id = _trained(stack, dataset=BIG)
    assert stack.client.put(f"/deploy?model-id={model_id}", headers=admin()).status_code == 204
    columns = ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO"]
    flights = make_synthetic_flights(80, seed=5)[columns].astype(str)
    answer = stack.client.post("/predict", json={"flights": flights.to_dict("records")})
    assert answer.status_code == 200, answer.get_json()
    write_log(stack.app, stack.settings)
    assert stack.client.get(f"/models/{model_id}/drift").status_code == 202
    active = f"{stack.settings['KEY_PREFIX']}:analysis:active"
    (key,) = stack.registry.redis.zrange(active, 0, -1)
    return lambda: _entry(stack, key), "running"


def _evaluation_job(stack: Stack) -> tuple[Callable[[], dict[str, Any]], str]:
    champion = _trained(stack)
    assert stack.client.put(f"/deploy?model-id={champion}", headers=admin()).status_code == 204
    schedule = stack.client.post(
        "/schedules",
        json={
            "dataset": BIG,
            "every_seconds": 3600,
            "model": {"features": "minimal", "cv_folds": 0, "params": QUICK["params"]},
        },
        headers=admin(),
    )
    assert schedule.status_code == 201, schedule.get_json()
    run = stack.client.post(f"/schedules/{schedule.get_json()['id']}/runs", headers=admin())
    assert run.status_code == 202, run.get_json()
    store = schedule_store(stack.app)
    run_id = run.get_json()["id"]
    return lambda: store.get_run(run_id), "evaluating"


#: training's is test_a_job_whose_worker_is_killed_is_retried_on_another, through the same helper
JOBS = {
    "evaluation": _evaluation_job,
    "comparison": _comparison_job,
    "drift": _drift_job,
}


@pytest.mark.parametrize("kind", list(JOBS))
def test_every_kind_of_job_survives_a_killed_worker_by_the_same_lease(
    stack: Stack, kind: str
) -> None:
    """One mechanism (flight_delay.tasks.lease): the worker holding the job is SIGKILLed, its
    lease lapses, recovery sends the job again and the next worker's claim counts attempt 2."""
    worker = stack.start_worker()
    read, running = JOBS[kind](stack)
    record, elapsed = kill_mid_job_then_recover(
        stack, worker, read, lambda r: r.get("status") == running and bool(r.get("attempt"))
    )
    print(f"\n{kind}: worker SIGKILL -> {record['status']} in {elapsed:.1f} s")
    assert record["status"] == "completed", record
    assert int(record["attempts"]) == 2, record
