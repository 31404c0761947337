"""Tracing across processes: one trace from POST /models on the API (gunicorn) through the queue
to the worker's training and its upload to the object store; off unless OTEL_* says otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flight_delay import tracing
from flight_delay.devstack import (
    call,
    free_port,
    start_gunicorn,
    start_redis,
    start_worker,
    stop_processes,
    wait_until_healthy,
)
from tests.integration.conftest import ADMIN, FAST, environment
from tests.support.make_run import FLIGHT
from tests.support.object_store import BUCKET, ObjectStore

pytestmark = pytest.mark.integration


def spans_in(log: Path) -> list[dict[str, Any]]:
    """The spans a console exporter wrote into a process's log, one JSON object per line."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        start = line.find('{"name":')
        if start >= 0:
            try:
                found.append(json.loads(line[start:]))
            except ValueError:
                continue
    return found


@pytest.fixture(scope="module")
def traced(
    stack_settings: dict[str, Any],
    object_store: ObjectStore,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """A worker and two API hosts (gunicorn), each process writing its spans to its log."""
    root = tmp_path_factory.mktemp("traced")
    redis_port = free_port()
    processes: list[subprocess.Popen[bytes]] = [start_redis(redis_port, data_dir=None)]
    prefix = f"trace{uuid.uuid4().hex[:8]}"
    settings = {
        **stack_settings,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "KEY_PREFIX": prefix,
        "ARTIFACT_URL": f"s3://{BUCKET}/{prefix}",
        "S3_ENDPOINT_URL": object_store.endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": object_store.settings()["access_key_id"],
        "S3_SECRET_ACCESS_KEY": object_store.settings()["secret_access_key"],
        "MODEL_DIR": str(root / "no-shared-folder"),
    }
    otel = {"OTEL_TRACES_EXPORTER": "console"}

    def env(cache: str) -> dict[str, str]:
        return {**environment({**settings, "MODEL_CACHE_DIR": str(root / cache)}), **otel}

    hosts = {}
    try:
        processes.append(start_worker(env("worker-cache"), root / "worker.log"))
        for name in ("api-1", "api-2"):
            port = free_port()
            processes.append(
                start_gunicorn(env(f"{name}-cache"), port, workers=1, log=root / f"{name}.log")
            )
            hosts[name] = f"http://127.0.0.1:{port}"
        for base in hosts.values():
            wait_until_healthy(base, processes)
        yield {"hosts": hosts, "root": root}
    finally:
        stop_processes(processes)


def trained(base: str) -> str:
    status, created = call(
        "POST",
        f"{base}/models",
        {"dataset": "flights.csv", "params": FAST, "cv_folds": 0},
        key=ADMIN,
    )
    assert status == 202, created
    deadline = time.monotonic() + 120
    while (record := call("GET", f"{base}/models/{created['id']}")[1])["status"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert record["status"] == "completed", record
    return str(created["id"])


def test_one_trace_runs_from_post_models_through_the_queue_to_the_worker_s_upload(
    traced: dict[str, Any],
) -> None:
    trained(traced["hosts"]["api-1"])
    time.sleep(1)  # the last spans are written as they end
    api_spans, worker_spans = (
        spans_in(traced["root"] / "api-1.log"),
        spans_in(traced["root"] / "worker.log"),
    )
    (request,) = [
        s
        for s in api_spans
        if s["kind"] == "SpanKind.SERVER" and s["name"].startswith("POST /models")
    ]
    trace_id = request["context"]["trace_id"]
    in_trace = [s for s in api_spans + worker_spans if s["context"]["trace_id"] == trace_id]
    names = {(s["resource"]["attributes"]["service.name"], s["name"]) for s in in_trace}
    assert ("flight-delay-api", "apply_async/flight_delay.train_model") in names, names
    assert ("flight-delay-worker", "run/flight_delay.train_model") in names, names
    uploads = [s for s in in_trace if s["name"] == "S3.PutObject"]
    assert uploads and {s["resource"]["attributes"]["service.name"] for s in uploads} == {
        "flight-delay-worker"
    }
    assert all(s["resource"]["attributes"]["host.name"] for s in in_trace)
    show(in_trace)


def test_a_deploy_s_trace_reaches_the_load_on_the_other_host(traced: dict[str, Any]) -> None:
    hosts = traced["hosts"]
    model_id = trained(hosts["api-1"])
    assert call("PUT", f"{hosts['api-1']}/deploy?model-id={model_id}", key=ADMIN)[0] == 204
    deadline = time.monotonic() + 30
    while (
        call("POST", f"{hosts['api-2']}/predict", {"flights": [FLIGHT]})[1].get("model_id")
        != model_id
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)
    first, second = spans_in(traced["root"] / "api-1.log"), spans_in(traced["root"] / "api-2.log")
    (deploy,) = [
        s for s in first if s["kind"] == "SpanKind.SERVER" and s["name"].startswith("PUT /deploy")
    ]
    trace_id = deploy["context"]["trace_id"]
    loads = [
        s
        for s in second
        if s["name"] == "load deployed model" and s["context"]["trace_id"] == trace_id
    ]
    assert len(loads) == 1, [s["name"] for s in second]
    assert loads[0]["attributes"]["model_id"] == model_id
    assert loads[0]["parent_id"] == deploy["context"]["span_id"]
    show([s for s in first + second if s["context"]["trace_id"] == trace_id])


def show(spans: list[dict[str, Any]]) -> None:
    """The trace as text, for whoever reads -s output: service, host and process, span."""
    for span in sorted(spans, key=lambda s: s["start_time"]):
        attributes = span["resource"]["attributes"]
        print(
            f"{attributes['service.name']:>20} {attributes['host.name']}:{attributes['process.pid']:<7} {span['name']}"
        )


def test_tracing_is_off_unless_otel_variables_say_so() -> None:
    assert not tracing.enabled({})
    assert not tracing.enabled({"OTEL_SERVICE_NAME": "x"})
    assert not tracing.enabled({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.enabled({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})
    assert tracing.enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing.enabled({"OTEL_TRACES_EXPORTER": "console"})
    if "OTEL_TRACES_EXPORTER" not in os.environ and "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ:
        assert not tracing.configure("api")  # this test process: nothing configured
