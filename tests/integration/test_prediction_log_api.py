"""The prediction log through the API (issue 11): every /predict answer is kept under the
request id it returns, and GET /predictions reads it back; a real Redis, a real worker, the log
writer run in process against the tests' SQLite log."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.prediction_log.store import PredictionStore
from flight_delay.prediction_log.writer import BacklogFull, stream_key
from tests.integration.conftest import READER, TRAINER, admin
from tests.support.prediction_log import write_log

pytestmark = pytest.mark.integration

FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
          "OPERA": "Latin American Wings", "TIPOVUELO": "N"}  # fmt: skip
UNSEEN = {**FLIGHT, "Des-I": "ZZZZ"}


@pytest.fixture
def deployed(client: FlaskClient, train: Callable[..., dict[str, Any]]) -> str:
    record = train()
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    return str(record["id"])


def test_every_answer_is_logged_under_its_request_id(
    app: Flask, client: FlaskClient, deployed: str, stack_settings: dict[str, Any]
) -> None:
    response = client.post("/predict", json={"flights": [FLIGHT, UNSEEN]}, headers=admin(READER))
    assert response.status_code == 200
    body = response.get_json()
    request_id = body["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.headers["X-Request-Id"] == request_id
    explained = client.post("/predict?explain=true", json={"flights": [FLIGHT]}).get_json()
    write_log(app, stack_settings)

    logged = client.get(f"/predictions/{request_id}")
    assert logged.status_code == 200, logged.get_json()
    entry = logged.get_json()
    assert entry["model_id"] == deployed == body["model_id"]
    assert entry["deployment_version"] >= 1
    assert entry["caller"].startswith("key predict+read #")  # the key's name, never the key
    assert READER not in str(entry)
    assert entry["latency_ms"] > 0 and entry["flight_count"] == 2
    assert [f["flight"] for f in entry["flights"]] == [FLIGHT, UNSEEN]
    # the log keeps the model's probability unrounded; the answer rounds it to 6 places
    assert [round(f["delay_probability"], 6) for f in entry["flights"]] == [
        p["delay_probability"] for p in body["predictions"]
    ]
    assert any(f["delay_probability"] != round(f["delay_probability"], 6) for f in entry["flights"])
    assert [f["delayed"] for f in entry["flights"]] == [p["delayed"] for p in body["predictions"]]
    # each flight keeps the warnings the answer gave it
    for index, flight in enumerate(entry["flights"]):
        answered = [
            {"field": w["field"], "problem": w["problem"]}
            for w in body["warnings"]
            if w["index"] == index
        ]
        assert flight["warnings"] == answered
    assert "Des-I" in [w["field"] for w in entry["flights"][1]["warnings"]]

    other = client.get(f"/predictions/{explained['request_id']}").get_json()
    assert "explanation" not in other["flights"][0]  # answers are logged, explanations are not

    listed = client.get(f"/predictions?model_id={deployed}&limit=1").get_json()
    assert [i["request_id"] for i in listed["items"]] == [explained["request_id"]]  # newest
    following = client.get(
        f"/predictions?model_id={deployed}&limit=1&cursor={listed['next_cursor']}"
    )
    assert [i["request_id"] for i in following.get_json()["items"]] == [request_id]


def test_bad_reads_of_the_log_are_400_and_unknown_ids_404(client: FlaskClient) -> None:
    assert client.get("/predictions?cursor=garbage").status_code == 400
    assert client.get("/predictions?limit=0").status_code == 400
    assert client.get("/predictions?limit=501").status_code == 400
    assert client.get("/predictions?since=yesterday").status_code == 400
    assert client.get("/predictions?colour=red").status_code == 400
    missing = client.get("/predictions/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.get_json()["errors"][0]["field"] == "request_id"


@pytest.mark.parametrize(
    "window",
    [
        "since=0001-01-01T00:00:00%2B21:21",
        "until=9999-12-31T23:59:59-12:00",
        "since=0001-01-01T00:00:00",
        "until=9999-12-31T23:59:59",
    ],
)
@pytest.mark.parametrize(
    "path", ["/predictions", f"/models/{'3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10'}/drift"]
)
def test_a_time_beyond_the_supported_range_is_a_400(
    client: FlaskClient, window: str, path: str
) -> None:
    """Times at the edge of Python's range with an offset have no UTC value: a 500
    (OverflowError) for an anonymous caller before (issue 19, finding 12)."""
    response = client.get(f"{path}?{window}")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["errors"][0]["field"] == window.split("=")[0]


def test_reading_the_log_follows_the_read_scope(stack_settings: dict[str, Any]) -> None:
    closed = create_app({"TESTING": True, **stack_settings, "READ_SCOPE": "read"}).test_client()
    assert closed.get("/predictions").status_code == 401
    assert closed.get("/predictions", headers=admin(TRAINER)).status_code == 403
    assert closed.get("/predictions", headers=admin(READER)).status_code == 200
    assert closed.get("/predictions/" + "0" * 32).status_code == 401


def test_logging_can_be_turned_off(
    stack_settings: dict[str, Any], deployed: str, client: FlaskClient
) -> None:
    quiet = create_app({"TESTING": True, **stack_settings, "PREDICTION_LOG": False})
    assert quiet.extensions["prediction_log"].buffer is None
    response = quiet.test_client().post("/predict", json={"flights": [FLIGHT]})
    assert response.status_code == 200 and response.headers["X-Request-Id"]


# -- nothing a caller sends grows the log without bound (issue 19, finding 1) --------------------
def stream_bytes(stack_settings: dict[str, Any]) -> int:
    """The bytes of logged requests waiting in the Redis stream."""
    client = redis.Redis.from_url(stack_settings["REDIS_URL"], decode_responses=True)
    stream = stream_key(stack_settings["KEY_PREFIX"])
    return sum(len(value) for _, fields in client.xrange(stream) for value in fields.values())


def test_a_flight_is_logged_with_only_the_fields_a_prediction_reads(
    app: Flask, client: FlaskClient, deployed: str, stack_settings: dict[str, Any]
) -> None:
    """A 7 MB field added to a flight: answered as before, and neither the stream nor the
    database keeps it (40 such requests added 410 MB before)."""
    write_log(app, stack_settings)  # what earlier tests left
    padded = {**FLIGHT, "remarks": "x" * 7_000_000, "Fecha-O": "2017-12-20 21:30:00"}
    response = client.post("/predict", json={"flights": [padded]})
    assert response.status_code == 200
    app.extensions["prediction_log"].buffer.flush()
    waiting = stream_bytes(stack_settings)
    assert waiting < 2_000, waiting
    write_log(app, stack_settings)
    logged = client.get(f"/predictions/{response.headers['X-Request-Id']}").get_json()
    assert logged["flights"][0]["flight"] == FLIGHT


def test_an_api_process_queues_at_most_its_byte_bound_while_redis_refuses(
    stack_settings: dict[str, Any], deployed: str
) -> None:
    """Redis unreachable (or refusing writes on a full disk): each request's body waits in the
    API process until it can be sent, at most PREDICTION_LOG_BUFFER_BYTES of them; the oldest
    go first, counted. Before, every request grew the process by its body, without bound."""
    from flight_delay.devstack import free_port

    app = create_app({"TESTING": True, **stack_settings, "PREDICTION_LOG_BUFFER_BYTES": 1_000_000})
    buffer = app.extensions["prediction_log"].buffer
    buffer.client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    client = app.test_client()
    padded = {**FLIGHT, "remarks": "x" * 300_000}
    try:
        for _ in range(20):
            assert client.post("/predict", json={"flights": [padded]}).status_code == 200
        assert len(buffer) <= 3, len(buffer)
        assert buffer.dropped >= 17
    finally:
        buffer.close(timeout=1)  # no thread left retrying a Redis that is not there


def test_redis_holds_at_most_its_byte_budget_for_the_writer_and_loses_nothing_within_it(
    stack_settings: dict[str, Any], deployed: str
) -> None:
    """No writer runs: the stream takes logged requests up to PREDICTION_LOG_BACKLOG_BYTES and
    the rest wait in the API process (within its own bound); once the writer catches up, they
    all reach the log. Before, the stream grew without bound in Redis' memory and its disk."""
    app = create_app({"TESTING": True, **stack_settings, "PREDICTION_LOG_BACKLOG_BYTES": 100_000})
    buffer = app.extensions["prediction_log"].buffer
    client = app.test_client()
    write_log(app, stack_settings)
    ids = []
    for _ in range(30):
        response = client.post("/predict", json={"flights": [FLIGHT] * 100})
        assert response.status_code == 200
        ids.append(response.headers["X-Request-Id"])
    with contextlib.suppress(BacklogFull):
        buffer.flush()
    assert stream_bytes(stack_settings) <= 100_000 + 20_000, stream_bytes(stack_settings)
    assert len(buffer) > 0  # the rest wait here
    deadline = time.monotonic() + 60
    while len(buffer):
        write_log(app, stack_settings)  # frees the budget; the buffer sends what waited
        with contextlib.suppress(BacklogFull):
            buffer.flush()
        assert time.monotonic() < deadline
    write_log(app, stack_settings)
    store = PredictionStore.from_url(stack_settings["PREDICTION_LOG_URL"])
    assert all(store.get(request_id) is not None for request_id in ids)
    store.engine.dispose()
