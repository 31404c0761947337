"""GET /metrics (issue 11) under a real gunicorn with 2 worker processes: the counts are the
sum over both processes (prometheus_client's multiprocess mode), and the Celery worker serves
its job metrics; a real Redis and a real worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from flight_delay.devstack import (
    call,
    free_port,
    start_gunicorn,
    stop_processes,
    wait_until_healthy,
)
from tests.integration.conftest import (
    ADMIN,
    WORKER_METRICS_BIND,
    admin,
    environment,
    wait_for,
)

pytestmark = pytest.mark.integration

FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
          "OPERA": "Latin American Wings", "TIPOVUELO": "N"}  # fmt: skip
UNSEEN = {**FLIGHT, "Des-I": "ZZZZ"}


@pytest.fixture
def gunicorn(stack_settings: dict[str, Any], worker: Any, tmp_path: Any) -> Iterator[str]:
    port = free_port()
    settings = {**stack_settings, "METRICS_DIR": str(tmp_path / "metrics")}
    process = start_gunicorn(environment(settings), port, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, [process])
        yield base
    finally:
        stop_processes([process])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(response.read().decode())


def post(base: str, body: dict[str, Any]) -> tuple[int, str, str | None]:
    """(status, process that answered, model that predicted)."""
    request = urllib.request.Request(
        f"{base}/predict", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Connection": "close"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
            return response.status, response.headers["X-Served-By"], answer["model_id"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["X-Served-By"], None


def test_metrics_are_summed_over_every_gunicorn_process(
    gunicorn: str, train: Callable[..., dict[str, Any]]
) -> None:
    model = train()
    assert call("PUT", f"{gunicorn}/deploy?model-id={model['id']}", key=ADMIN)[0] == 204
    served_by: set[str] = set()
    answered = 0
    # which model answered: a process may still serve the deployment before this one for up to
    # a second (the session's other tests deploy too), and its flights count under that model
    by_model: dict[str, int] = {}
    # a new connection each: the kernel spreads them over both processes, not evenly
    unavailable = 0  # a process with nothing deployed yet
    while answered < 60 or (len(served_by) < 2 and answered < 2000):
        status, process, model_id = post(gunicorn, {"flights": [FLIGHT, UNSEEN]})
        if status == 503:
            unavailable += 1
            continue
        assert status == 200 and model_id is not None
        answered += 1
        served_by.add(process)
        by_model[model_id] = by_model.get(model_id, 0) + 1
    assert len(served_by) == 2, f"only {served_by} answered {answered} requests"
    assert post(gunicorn, {"flights": []})[0] == 400
    found = scrape(f"{gunicorn}/metrics")
    route = (("endpoint", "/predict"), ("method", "POST"))
    assert found[("flight_delay_http_requests_total", (*route, ("status", "200")))] == answered
    assert found[("flight_delay_http_requests_total", (*route, ("status", "400")))] == 1
    assert found[("flight_delay_http_request_duration_seconds_count", route)] == (
        answered + 1 + unavailable
    )
    assert model["id"] in by_model
    for model_id, requests in by_model.items():
        label = (("model_id", model_id),)
        assert found[("flight_delay_predicted_flights_total", label)] == 2 * requests
        warned = (("field", "Des-I"), ("model_id", model_id))
        assert found[("flight_delay_prediction_warnings_total", warned)] == requests
    assert found[("flight_delay_prediction_log_stream_messages", ())] >= 0
    assert ("flight_delay_prediction_log_buffered", ()) in found


def test_the_worker_serves_job_durations_and_failures(
    client: FlaskClient, train: Callable[..., dict[str, Any]], stack_settings: dict[str, Any]
) -> None:
    url = f"http://{WORKER_METRICS_BIND}/metrics"
    before = scrape(url)

    def count(found: dict[Any, float], outcome: str) -> float:
        return found.get(("flight_delay_training_jobs_total", (("outcome", outcome),)), 0.0)

    assert train()["status"] == "completed"
    response = client.post("/models", json={"dataset": "empty.csv"}, headers=admin())
    assert response.status_code == 202
    wait_for(client, response.get_json()["id"], lambda r: r["status"] == "failed")
    after = scrape(url)
    assert count(after, "completed") == count(before, "completed") + 1
    assert count(after, "failed") == count(before, "failed") + 1
    durations = ("flight_delay_training_job_seconds_count", (("outcome", "completed"),))
    assert after[durations] >= 1
