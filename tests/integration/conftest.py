"""Integration fixtures: a real redis-server and a real Celery worker, on 127.0.0.1, stopped at the end.

One Redis server and one worker serve the whole session; every test gets a fresh app and client
bound to them. Tests identify their own models by id, so they do not depend on each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.data import make_synthetic_flights
from flight_delay.devstack import (
    BEAT_COMMAND,
    WORKER_COMMAND,
    free_port,
    start_redis,
    stop_processes,
)
from flight_delay.prediction_log import migrate
from tests.conftest import REPO
from tests.support.object_store import ObjectStore, running_object_store

ADMIN = "admin-key-for-tests"
TRAINER = "trainer-key-for-tests"
READER = "reader-key-for-tests"
API_KEYS = f"{ADMIN}=admin;{TRAINER}=train;{READER}=predict,read"
#: where the session's worker serves its job metrics
WORKER_METRICS_BIND = f"127.0.0.1:{free_port()}"
FAST = {"n_estimators": 200, "learning_rate": 0.1}  # keeps each job around a second


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """FLIGHT_DELAY_TEST_REDIS_URL (CI's Redis service container), else a redis-server of our own.

    Keys never collide: every session uses its own key prefix."""
    configured = os.environ.get("FLIGHT_DELAY_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    port = free_port()
    server = start_redis(port, data_dir=None)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_processes([server])


@pytest.fixture(scope="session")
def stack_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The configuration shared by the worker process and every test app."""
    root = tmp_path_factory.mktemp("stack")
    data_root, model_dir, export_dir = root / "data", root / "models", root / "exports"
    for folder in (data_root, model_dir, export_dir):
        folder.mkdir()
    make_synthetic_flights(4000, seed=3).to_csv(data_root / "flights.csv", index=False)
    (data_root / "empty.csv").write_text("")
    (root / "outside.csv").write_text("not inside the data root")
    # what the log writer does when it starts: the reads find their tables
    migrate.upgrade(f"sqlite:///{root / 'predictions.db'}")
    return {
        "REDIS_URL": redis_url,
        "KEY_PREFIX": f"fdtest{uuid.uuid4().hex[:8]}",
        "DATA_ROOT": str(data_root),
        "MODEL_DIR": str(model_dir),
        "EXPORT_DIR": str(export_dir),
        "API_KEYS": API_KEYS,
        "DELETE_FAULT_RATE": 0.0,
        "WORKER_PING_CACHE_SECONDS": 0.0,
        # the tests' loopback file server is reached by this name; 127.0.0.1 stays refused
        "DOWNLOAD_ALLOW_HOSTS": "localhost",
        "DOWNLOAD_TIMEOUT_SECONDS": 20,
        # the prediction log, on for the tests' apps; its database is the tests' own file
        "PREDICTION_LOG": True,
        "PREDICTION_LOG_URL": f"sqlite:///{root / 'predictions.db'}",
        "METRICS_DIR": str(root / "metrics"),
        # no compiled forest (a C compilation per model): the test of it has a worker of its own
        "COMPILED_TREES": False,
    }


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A real S3-compatible server (SeaweedFS) on loopback, with a bucket and credentials."""
    with running_object_store(tmp_path_factory.mktemp("seaweedfs")) as running:
        yield running


def environment(settings: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_DELAY_")}
    env.update({f"FLIGHT_DELAY_{k}": str(v) for k, v in settings.items()})
    env["OMP_NUM_THREADS"] = "1"
    return env


def start_worker(settings: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """A real Celery worker (the stack's command) with ``settings``; returns once it answers."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *WORKER_COMMAND],
            cwd=REPO, env=environment(settings), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    app = create_app({"TESTING": True, **settings})
    deadline = time.monotonic() + 60
    while not app.extensions["celery"].control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
    return process


@pytest.fixture(scope="session")
def worker(
    stack_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    # this worker alone serves its job metrics (tests/integration/test_metrics.py)
    process = start_worker({**stack_settings, "WORKER_METRICS_BIND": WORKER_METRICS_BIND}, log)
    try:
        yield process
    finally:
        stop_processes([process])


@pytest.fixture
def app(stack_settings: dict[str, Any], worker: subprocess.Popen[bytes]) -> Flask:
    return create_app({"TESTING": True, **stack_settings})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def admin(key: str = ADMIN) -> dict[str, str]:
    return {"X-api-key": key}


def wait_for(
    client: FlaskClient, model_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 120
) -> dict[str, Any]:
    """Poll GET /models/{id} until ``done(record)``; fail with the last record at the deadline."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/models/{model_id}")
        record = response.get_json()
        if response.status_code == 200 and done(record):
            return record
        time.sleep(0.1)
    pytest.fail(f"model {model_id} did not get there within {timeout}s; last: {record}")


def finished(record: dict[str, Any]) -> bool:
    return record["status"] in ("completed", "failed")


def trainer(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Create a model through the API and wait for it to finish."""

    def create(**body: Any) -> dict[str, Any]:
        body.setdefault("dataset", "flights.csv")
        body.setdefault("params", FAST if body.get("model_type", "lightgbm") == "lightgbm" else {})
        # no cross-validation folds (four fits more) unless a test asks for them
        body.setdefault("cv_folds", 0)
        response = client.post("/models", json=body, headers=admin())
        assert response.status_code == 202, response.get_json()
        return wait_for(client, response.get_json()["id"], finished)

    return create


@pytest.fixture
def train(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    return trainer(client)


@pytest.fixture(scope="module")
def train_module(
    stack_settings: dict[str, Any], worker: subprocess.Popen[bytes]
) -> Callable[..., dict[str, Any]]:
    """``train`` for module-scoped fixtures."""
    return trainer(create_app({"TESTING": True, **stack_settings}).test_client())


@pytest.fixture
def redis_client(stack_settings: dict[str, Any]) -> redis.Redis:
    return redis.Redis.from_url(stack_settings["REDIS_URL"], decode_responses=True)


@pytest.fixture
def model_dir(stack_settings: dict[str, Any]) -> Path:
    return Path(stack_settings["MODEL_DIR"])


def start_beat(settings: dict[str, Any], log: Path, **overrides: Any) -> subprocess.Popen[bytes]:
    """A real Celery beat (the stack's command) on the test Redis; returns once it ticks."""
    env = environment({**settings, **overrides})
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *BEAT_COMMAND],
            cwd=log.parent, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "retraining schedules ticking" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_processes([process])
            pytest.fail(f"celery beat did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return process


def copy_model(trained: dict[str, Any], registry: Any, model_dir: Path) -> str:
    """A model the session's worker trained, recorded and deployed in another registry (another
    key prefix or Redis) under a new id, its files copied: for tests whose app must not share
    the session's queues."""
    import shutil

    record = registry.create(trained["settings"], trained["dataset"])
    shutil.copytree(model_dir / trained["id"], model_dir / record["id"])
    registry.update(
        record["id"], status="completed", threshold=trained["threshold"],
        input_schema=trained["input_schema"], metrics=trained["metrics"],
    )  # fmt: skip
    registry.deploy(record["id"])
    return str(record["id"])
