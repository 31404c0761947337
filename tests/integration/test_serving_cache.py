"""The deployed-model cache of each API process (issue 7, finding 9): keyed by model id and
version, failed loads retried with backoff, vanished files reported, nothing named when reads
need a key."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flight_delay import create_app
from flight_delay.devstack import free_port, start_redis, stop_processes
from flight_delay.registry import ModelRegistry
from tests.integration.conftest import admin
from tests.support.api import FLIGHT, error_of

pytestmark = pytest.mark.integration

Train = Callable[..., dict[str, Any]]


def serving_app(stack_settings: dict[str, Any], **overrides: Any) -> Any:
    return create_app(
        {"TESTING": True, **stack_settings, "DEPLOYMENT_POLL_SECONDS": 0.0, **overrides}
    )


def predicted_by(client: Any) -> str | None:
    response = client.post("/predict", json={"flights": [FLIGHT]})
    return response.get_json().get("model_id") if response.status_code == 200 else None


def test_a_reused_version_number_with_another_model_is_noticed(
    stack_settings: dict[str, Any], train_module: Train
) -> None:
    """A Redis that lost its data counts deployment versions from 1 again."""
    first, second = train_module(), train_module()
    prefix = f"fdcache{uuid.uuid4().hex[:6]}"
    app = serving_app(stack_settings, KEY_PREFIX=prefix)
    registry: ModelRegistry = app.extensions["model_registry"]
    for model_id in (first["id"], second["id"]):  # the records, as another prefix sees them
        registry.redis.hset(
            f"{prefix}:model:{model_id}", mapping={"id": model_id, "status": "completed"}
        )
    registry.deploy(first["id"])
    client = app.test_client()
    assert predicted_by(client) == first["id"]
    registry.redis.delete(f"{prefix}:deployment")  # the data is lost ...
    assert registry.deploy(second["id"])["version"] == 1  # ... and the version reused
    assert predicted_by(client) == second["id"]


def test_a_failed_load_is_retried_and_readiness_says_why(
    stack_settings: dict[str, Any], train_module: Train, model_dir: Path, tmp_path: Path
) -> None:
    good, flaky = train_module(), train_module()
    prefix = f"fdcache{uuid.uuid4().hex[:6]}"
    app = serving_app(stack_settings, KEY_PREFIX=prefix)
    registry: ModelRegistry = app.extensions["model_registry"]
    for model_id in (good["id"], flaky["id"]):
        registry.redis.hset(
            f"{prefix}:model:{model_id}", mapping={"id": model_id, "status": "completed"}
        )
    client = app.test_client()
    registry.deploy(good["id"])
    assert predicted_by(client) == good["id"]
    # the new model's files are not there yet (a slow shared volume, a copy by hand)
    moved = tmp_path / "away"
    shutil.move(model_dir / flaky["id"], moved)
    registry.deploy(flaky["id"])
    assert predicted_by(client) == good["id"]  # keeps serving what it has
    ready = client.get("/readyz")
    (check,) = (e["problem"] for e in error_of(ready)["errors"] if e["field"] == "model")
    assert "the newer deployment failed" in check
    assert str(model_dir) not in ready.get_data(as_text=True)  # no server paths
    shutil.move(moved, model_dir / flaky["id"])
    deadline = time.monotonic() + 10  # first retry after 1 s, then 2 s, ...
    while predicted_by(client) != flaky["id"]:
        assert time.monotonic() < deadline, "the failed load was never retried"
        time.sleep(0.2)


def test_vanished_files_keep_the_loaded_model_serving_and_show_in_readiness(
    stack_settings: dict[str, Any], client: Any, train: Train, model_dir: Path, tmp_path: Path
) -> None:
    record = train()
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    running = serving_app(stack_settings).test_client()
    assert predicted_by(running) == record["id"]
    moved = tmp_path / "away"
    shutil.move(model_dir / record["id"], moved)
    try:
        assert predicted_by(running) == record["id"]  # the loaded model keeps serving
        (check,) = (
            e["problem"]
            for e in error_of(running.get("/readyz"))["errors"]
            if e["field"] == "model"
        )
        assert "files are gone" in check
        restarted = serving_app(stack_settings).test_client()  # a process started now
        response = restarted.post("/predict", json={"flights": [FLIGHT]})
        assert error_of(response)["code"] == 503
        assert "failed to load" in response.get_json()["message"]
        assert str(model_dir) not in response.get_data(as_text=True)
        assert error_of(restarted.get("/readyz"))["code"] == 503
        assert error_of(client.get(f"/models/{record['id']}/artifact"))["code"] == 410
    finally:
        shutil.move(moved, model_dir / record["id"])


def test_readiness_does_not_name_the_model_when_reads_need_a_key(
    stack_settings: dict[str, Any], client: Any, train: Train
) -> None:
    record = train()
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    closed = serving_app(stack_settings, READ_SCOPE="read").test_client()
    response = closed.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert record["id"] not in response.get_data(as_text=True)
    assert response.get_json()["checks"]["model"] == "serving the deployed model"


def test_readiness_sees_redis_back_at_once(stack_settings: dict[str, Any]) -> None:
    port = free_port()
    server = start_redis(port, data_dir=None)
    try:
        app = serving_app(stack_settings, REDIS_URL=f"redis://127.0.0.1:{port}/0")
        client = app.test_client()

        def redis_check() -> str:
            body = client.get("/readyz").get_json()
            checks = body.get("checks") or {e["field"]: e["problem"] for e in body["errors"]}
            return str(checks.get("redis", "ok"))

        assert redis_check() == "ok"
        server.kill()
        server.wait()
        assert redis_check().startswith("unreachable")
        server = start_redis(port, data_dir=None)
        started = time.monotonic()
        assert redis_check() == "ok"  # the first probe after the restart, not 2-5 s later
        assert time.monotonic() - started < 2
    finally:
        stop_processes([server])
