"""The service with its models in an S3-compatible store (a real SeaweedFS) and no shared folder:
a worker and two API "hosts", each with a cache folder of its own, talking only through the
store and Redis."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.devstack import free_port, start_redis, stop_processes
from flight_delay.ml import train
from flight_delay.serving import FILES_CHECK_SECONDS
from flight_delay.storage.s3 import S3Store
from flight_delay.tasks.training import run_job
from tests.integration.conftest import FAST, admin, finished, start_worker, wait_for
from tests.support.make_run import FLIGHT
from tests.support.object_store import BUCKET, ObjectStore, running_object_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """This module's own SeaweedFS: its last test stops it."""
    with running_object_store(tmp_path_factory.mktemp("seaweedfs")) as running:
        yield running


@pytest.fixture(scope="module")
def redis_of_these_hosts() -> Iterator[str]:
    """A Redis of their own: only this module's worker answers their pings and takes their jobs."""
    port = free_port()
    server = start_redis(port, data_dir=None)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_processes([server])


@pytest.fixture(scope="module")
def settings(
    stack_settings: dict[str, Any],
    object_store: ObjectStore,
    redis_of_these_hosts: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hosts")
    prefix = f"s3test{uuid.uuid4().hex[:8]}"
    return {
        **stack_settings,
        "REDIS_URL": redis_of_these_hosts,
        "KEY_PREFIX": prefix,
        "ARTIFACT_URL": f"s3://{BUCKET}/{prefix}",
        "S3_ENDPOINT_URL": object_store.endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": object_store.settings()["access_key_id"],
        "S3_SECRET_ACCESS_KEY": object_store.settings()["secret_access_key"],
        # no shared model folder: a path that does not exist and is never made
        "MODEL_DIR": str(root / "no-shared-folder"),
        "MODEL_CACHE_DIR": str(root / "worker-cache"),
        "DEPLOYMENT_POLL_SECONDS": 0.0,
    }


@pytest.fixture(scope="module")
def worker(
    settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(settings, tmp_path_factory.mktemp("s3worker") / "worker.log")
    try:
        yield process
    finally:
        stop_processes([process])


def host(settings: dict[str, Any], name: str, **overrides: Any) -> FlaskClient:
    cache = Path(settings["MODEL_CACHE_DIR"]).parent / f"{name}-cache"
    app = create_app({"TESTING": True, **settings, "MODEL_CACHE_DIR": str(cache), **overrides})
    return app.test_client()


def trained(client: FlaskClient) -> dict[str, Any]:
    response = client.post(
        "/models", json={"dataset": "flights.csv", "params": FAST, "cv_folds": 0}, headers=admin()
    )
    assert response.status_code == 202, response.get_json()
    record = wait_for(client, response.get_json()["id"], finished)
    assert record["status"] == "completed", record
    return record


def store_of(settings: dict[str, Any]) -> S3Store:
    return S3Store(
        BUCKET, settings["KEY_PREFIX"], endpoint_url=settings["S3_ENDPOINT_URL"],
        region="us-east-1", access_key_id=settings["S3_ACCESS_KEY_ID"],
        secret_access_key=settings["S3_SECRET_ACCESS_KEY"],
    )  # fmt: skip


def test_two_hosts_serve_a_model_trained_on_a_worker_through_the_store_alone(
    settings: dict[str, Any], worker: subprocess.Popen[bytes]
) -> None:
    first, second = host(settings, "host-a"), host(settings, "host-b")
    record = trained(first)
    model_id = record["id"]
    store = store_of(settings)
    assert model_id in store.model_ids()
    assert not Path(settings["MODEL_DIR"]).exists()  # nothing went to a shared folder

    assert first.put(f"/deploy?model-id={model_id}", headers=admin()).status_code == 204
    for client, name in ((first, "host-a"), (second, "host-b")):
        answer = client.post("/predict", json={"flights": [FLIGHT]})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["model_id"] == model_id
        copy = Path(settings["MODEL_CACHE_DIR"]).parent / f"{name}-cache" / model_id
        assert (copy / "model.json").is_file()  # each host fetched its own copy
        ready = client.get("/readyz").get_json()
        assert ready.get("ready") is True, ready
        assert ready["checks"]["model"] == f"serving {model_id}"

    download = second.get(f"/models/{model_id}/artifact", headers=admin())
    assert download.status_code == 200
    recorded = store.metadata(model_id)["artifact"]["sha256"]
    assert hashlib.sha256(download.get_data()).hexdigest() == recorded
    download.close()  # the file handle send_file holds


def test_a_rollback_and_a_delete_go_through_the_store(
    settings: dict[str, Any], worker: subprocess.Popen[bytes]
) -> None:
    first, second = host(settings, "host-a"), host(settings, "host-b")
    older, newer = trained(first), trained(first)
    assert first.put(f"/deploy?model-id={newer['id']}", headers=admin()).status_code == 204
    assert second.post("/predict", json={"flights": [FLIGHT]}).get_json()["model_id"] == newer["id"]
    assert second.put(f"/deploy?model-id={older['id']}", headers=admin()).status_code == 204
    for client in (first, second):
        assert (
            client.post("/predict", json={"flights": [FLIGHT]}).get_json()["model_id"]
            == older["id"]
        )

    store = store_of(settings)
    assert first.delete(f"/models/{newer['id']}", headers=admin()).status_code == 204
    assert newer["id"] not in store.model_ids()
    assert list(store._keys(store.key(newer["id"]) + "/")) == []  # every object of it
    assert not (Path(settings["MODEL_CACHE_DIR"]).parent / "host-a-cache" / newer["id"]).exists()
    gone = second.get(f"/models/{newer['id']}/artifact", headers=admin())
    assert gone.status_code == 404


def test_a_model_whose_objects_vanished_is_not_deployed(
    settings: dict[str, Any], worker: subprocess.Popen[bytes]
) -> None:
    client = host(settings, "host-c")
    record = trained(client)
    store = store_of(settings)
    store.delete(record["id"])  # behind the service's back
    refused = client.put(f"/deploy?model-id={record['id']}", headers=admin())
    assert refused.status_code == 409, refused.get_json()
    assert "unloadable" in refused.get_json()["message"]
    assert settings["S3_SECRET_ACCESS_KEY"] not in refused.get_data(as_text=True)
    assert client.get(f"/models/{record['id']}/artifact", headers=admin()).status_code == 410


def test_a_retried_attempt_records_the_model_an_earlier_attempt_published(
    settings: dict[str, Any], synthetic_flights: Any, tmp_path: Path
) -> None:
    """An attempt that published and died before recording it: the next attempt finds the model
    in the store, keeps it (never replaces it) and records its figures."""
    app = create_app({"TESTING": True, **settings, "MODEL_CACHE_DIR": str(tmp_path / "cache")})
    registry = app.extensions["model_registry"]
    record = registry.create(
        {"params": FAST, "cv_folds": 0, "refit": False}, "flights.csv"
    )  # pending, never queued: this test runs the job itself
    earlier = train(
        synthetic_flights, {"params": {"n_estimators": 7}, "cv_folds": 0, "refit": False}
    )
    earlier.metadata["model_id"] = record["id"]
    app.extensions["artifact_store"].publish(
        record["id"], earlier.save(tmp_path / "earlier", compile_trees=False)
    )

    assert run_job(app, record["id"]) == "completed"
    finished_record = registry.get(record["id"])
    assert finished_record["status"] == "completed"
    assert finished_record["metrics"] == json.loads(
        json.dumps(earlier.metrics)
    )  # the published one's
    published = store_of(settings).metadata(record["id"])
    assert published["artifact"]["sha256"] == earlier.metadata["artifact"]["sha256"]


def test_with_the_store_hung_then_killed_both_hosts_keep_serving_and_readyz_names_it(
    settings: dict[str, Any], worker: subprocess.Popen[bytes], object_store: ObjectStore
) -> None:
    """Runs last: it stops this module's store."""
    bounded = {
        "S3_CONNECT_TIMEOUT_SECONDS": 1.0,
        "S3_READ_TIMEOUT_SECONDS": 2.0,
        "S3_MAX_ATTEMPTS": 1,
    }
    # each host pings the workers once (a ping right after another's timeout can lose its reply
    # with Celery's Redis transport), then trusts the answer: this test is about the store
    bounded["WORKER_PING_CACHE_SECONDS"] = 3600.0
    first, second = host(settings, "host-d", **bounded), host(settings, "host-e", **bounded)
    served, waiting = trained(first), trained(first)
    assert first.put(f"/deploy?model-id={served['id']}", headers=admin()).status_code == 204
    for client in (first, second):
        assert (
            client.post("/predict", json={"flights": [FLIGHT]}).get_json()["model_id"]
            == served["id"]
        )
        assert client.get("/readyz").get_json()["ready"] is True
        time.sleep(1)

    object_store.process.send_signal(signal.SIGSTOP)  # hung: accepts connections, never answers
    try:
        answers = [client.post("/predict", json={"flights": [FLIGHT]})
                   for _ in range(50) for client in (first, second)]  # fmt: skip
        assert [a.status_code for a in answers] == [200] * 100
        assert {a.get_json()["model_id"] for a in answers} == {served["id"]}
        time.sleep(FILES_CHECK_SECONDS)  # the hosts' last look at the store is stale now
        for client in (first, second):
            started = time.monotonic()
            ready = client.get("/readyz")
            assert time.monotonic() - started < 10  # bounded by the S3 timeouts
            assert ready.status_code == 200, ready.get_json()
            check = ready.get_json()["checks"]["artifact_store"]
            assert check.startswith("unreachable, serving the loaded model: s3://"), check
            assert settings["S3_SECRET_ACCESS_KEY"] not in ready.get_data(as_text=True)
        refused = first.put(f"/deploy?model-id={waiting['id']}", headers=admin())
        assert refused.status_code == 503, refused.get_json()
        assert "s3://" in refused.get_json()["message"]
        assert first.get("/deployment").get_json()["model_id"] == served["id"]  # nothing changed
    finally:
        object_store.process.send_signal(signal.SIGCONT)

    # back: a deploy made now reaches both hosts
    assert second.put(f"/deploy?model-id={waiting['id']}", headers=admin()).status_code == 204
    for client in (first, second):
        assert (
            client.post("/predict", json={"flights": [FLIGHT]}).get_json()["model_id"]
            == waiting["id"]
        )
        ready = client.get("/readyz").get_json()
        assert "artifact_store" not in ready.get("checks", {}), ready
        assert ready.get("ready") is True, ready

    stop_processes([object_store.process])  # killed for good: refused at once
    for client in (first, second):
        assert client.post("/predict", json={"flights": [FLIGHT]}).status_code == 200
        time.sleep(FILES_CHECK_SECONDS)  # the last look is stale: /readyz asks again
        ready = client.get("/readyz")
        assert (
            ready.status_code == 200
            and "unreachable" in ready.get_json()["checks"]["artifact_store"]
        )
