"""A full disk under load (issue 19, finding 1): make run's Redis (append-only file) and the log
writer's SQLite database share a small real filesystem that fills up while predictions keep
coming. Predictions keep answering, /readyz says Redis refuses writes, and once space is back
both recover by themselves: no restart, and every answered request reaches the log."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from flight_delay import create_app
from flight_delay.devstack import free_port, start_redis, stop_processes
from flight_delay.prediction_log import migrate
from flight_delay.prediction_log.store import PredictionStore
from flight_delay.prediction_log.writer import LogWriter, stream_key
from tests.integration.conftest import copy_model
from tests.integration.filesystems import small_disk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
          "OPERA": "Latin American Wings", "TIPOVUELO": "N"}  # fmt: skip


def failed_checks(client: Any) -> dict[str, str]:
    """/readyz's failed checks by name (no worker listens on this test's Redis: "workers"
    always fails here)."""
    body = client.get("/readyz").get_json()
    return {item["field"]: item["problem"] for item in body.get("errors", [])}


def test_a_full_disk_is_survived_and_recovered_from_without_a_restart(
    stack_settings: dict[str, Any],
    train: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    trained = train()
    with small_disk(tmp_path / "state", 48) as disk:
        port = free_port()
        server = start_redis(port, disk.path / "redis")  # make run's Redis, as make run starts it
        database = f"sqlite:///{disk.path / 'predictions.db'}"
        migrate.upgrade(database)
        prefix = f"fdtest{uuid.uuid4().hex[:8]}"
        app = create_app(
            {
                "TESTING": True,
                **stack_settings,
                "REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "KEY_PREFIX": prefix,
                "PREDICTION_LOG_URL": database,
                "WORKER_PING_CACHE_SECONDS": 3600.0,
            }
        )
        registry = app.extensions["model_registry"]
        copy_model(trained, registry, Path(stack_settings["MODEL_DIR"]))
        store = PredictionStore.from_url(database)
        writer = LogWriter(
            redis.Redis(port=port, decode_responses=True),
            store,
            stream_key(prefix),
            consumer="w",
            gather_seconds=0,
        )
        stop = threading.Event()
        writing = threading.Thread(
            target=writer.run, args=(stop, lambda s: stop.wait(min(s, 0.5))), daemon=True
        )
        writing.start()
        client = app.test_client()
        answered: list[str] = []
        failed: list[int] = []
        done = threading.Event()

        def load() -> None:  # bounded: until the test ends, at most 5,000 requests
            loader = app.test_client()
            while not done.is_set() and len(answered) + len(failed) < 5_000:
                response = loader.post("/predict", json={"flights": [FLIGHT] * 20})
                if response.status_code == 200:
                    answered.append(response.headers["X-Request-Id"])
                else:
                    failed.append(response.status_code)
                time.sleep(0.01)

        loading = threading.Thread(target=load, daemon=True)
        loading.start()
        try:
            time.sleep(1)
            disk.fill()
            # Redis answers but cannot write: readiness says so by name
            deadline = time.monotonic() + 30
            while "redis" not in (problems := failed_checks(client)):
                assert time.monotonic() < deadline, problems
                time.sleep(0.2)
            assert "refuses writes" in problems["redis"], problems
            assert client.post("/models", json={"dataset": "flights.csv"},
                               headers={"X-api-key": "admin-key-for-tests"}).status_code == 503  # fmt: skip
            time.sleep(3)  # a few seconds of a full disk under load
            full_for = len(answered)
            disk.free()
            freed = time.monotonic()
            while "redis" in (problems := failed_checks(client)):
                assert time.monotonic() - freed < 30, problems
                time.sleep(0.1)
            ready_after = time.monotonic() - freed
            done.set()
            loading.join(timeout=30)
            while store.flight_count() < 20 * len(answered) or writer.client.xlen(writer.stream):
                assert time.monotonic() - freed < 60, (store.flight_count(), len(answered))
                time.sleep(0.2)
            logged_after = time.monotonic() - freed
        finally:
            done.set()
            stop.set()
            writing.join(timeout=10)
            store.engine.dispose()
            app.extensions["prediction_log"].buffer.close(timeout=5)
            stop_processes([server])
        print(
            f"\nfull disk: {len(answered)} answered ({full_for} before the space came back), "
            f"{len(failed)} failed; Redis took writes again {ready_after:.1f} s after the space "
            f"came back, every answered request was in the log after {logged_after:.1f} s"
        )
        assert failed == []
        assert ready_after < 10
        logged = PredictionStore.from_url(database)
        assert all(logged.get(request_id) is not None for request_id in answered[-50:])
        logged.engine.dispose()
