"""GET /models/{id}/drift (issue 11) with a real Redis and a real Celery worker: the report is
computed by the worker, cached, and answered 202 until it is ready; logged requests that look
like the training rows show no drift, requests moved to one airline at night do."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.data import load_flights, schema
from flight_delay.ml.splits import split_positions
from tests.integration.conftest import admin
from tests.support.prediction_log import write_log

pytestmark = pytest.mark.integration

SPLIT = {"split": "random", "test_size": 0.25, "seed": 42}


def report(client: FlaskClient, path: str, timeout: float = 120) -> Any:
    """GET until it is no longer 202; the last response."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        if response.status_code != 202:
            return response
        assert response.headers["Retry-After"] == "2"
        assert time.monotonic() < deadline, "the drift report was not ready in time"
        time.sleep(0.3)


def as_requests(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO"]
    sent = frame[columns].assign(
        **{"Fecha-I": frame["Fecha-I"].dt.strftime(schema.DATETIME_FORMAT)}
    )
    return sent.to_dict("records")  # type: ignore[no-any-return]


def test_drift_of_logged_requests_through_the_worker(
    app: Flask,
    client: FlaskClient,
    train: Callable[..., dict[str, Any]],
    stack_settings: dict[str, Any],
) -> None:
    record = train(**SPLIT)
    model_id = record["id"]
    assert client.put(f"/deploy?model-id={model_id}", headers=admin()).status_code == 204
    frame = load_flights(Path(stack_settings["DATA_ROOT"]) / "flights.csv").frame
    _, held_out = split_positions(frame, "random", 0.25, 42)
    current = frame.iloc[held_out]

    first_window = datetime.now(UTC)
    assert client.post("/predict", json={"flights": as_requests(current)}).status_code == 200
    write_log(app, stack_settings)
    between = datetime.now(UTC)
    alike_path = (
        f"/models/{model_id}/drift?since={first_window.isoformat()}&until={between.isoformat()}"
    )
    alike_path = alike_path.replace("+", "%2B")
    assert client.get(alike_path).status_code == 202  # queued: the worker computes it
    alike = report(client, alike_path)
    assert alike.status_code == 200, alike.get_json()
    body = alike.get_json()
    assert body["current_rows"] == len(current)
    assert body["adversarial"]["roc_auc"] < 0.55
    assert client.get(alike_path).get_json() == body  # cached: the same report at once

    moved = current.copy()
    moved["OPERA"], moved["Emp-I"] = current.iloc[0]["OPERA"], current.iloc[0]["Emp-I"]
    minutes = pd.to_timedelta(np.arange(len(moved)) % 240, unit="m")
    moved["Fecha-I"] = moved["Fecha-I"].dt.normalize() + pd.Timedelta(hours=1) + minutes
    assert client.post("/predict", json={"flights": as_requests(moved)}).status_code == 200
    write_log(app, stack_settings)
    shifted_path = f"/models/{model_id}/drift?since={between.isoformat()}".replace("+", "%2B")
    shifted = report(client, shifted_path).get_json()
    assert shifted["adversarial"]["roc_auc"] > 0.9
    named = [f["feature"] for f in shifted["adversarial"]["separating_features"][:3]]
    assert {"hour", "minute_of_day"} & set(named), named
    chart = client.get(shifted["chart"])
    assert chart.status_code == 200 and chart.mimetype == "image/png"
    assert chart.data.startswith(b"\x89PNG")

    # a window with too few logged flights: a clear 409 from the worker's reason
    empty = f"/models/{model_id}/drift?until=2000-01-01T00:00:00"
    refused = report(client, empty)
    assert refused.status_code == 409
    assert "at least 50" in refused.get_json()["message"]


def test_drift_of_an_unknown_model_or_with_bad_parameters(client: FlaskClient) -> None:
    assert client.get("/models/3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10/drift").status_code == 404
    assert client.get("/models/3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10/drift.png").status_code == 404
    bad = client.get("/models/3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10/drift?since=tomorrow")
    assert bad.status_code == 400


def test_reports_are_one_job_per_window_and_capped_at_once(stack_settings: dict[str, Any]) -> None:
    """Every new window of a drift or performance report queued a job, anonymously: 59 windows
    delayed training 46 s. Now the ways of asking for the same window are one job, and while
    FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE reports wait, a new window is a 429 with Retry-After. (No
    worker consumes this prefix's queue: the queued reports stay queued.)"""
    import uuid

    app = create_app(
        {
            "TESTING": True,
            **stack_settings,
            "KEY_PREFIX": f"fdcap{uuid.uuid4().hex[:8]}",
            "ANALYSIS_MAX_ACTIVE": 2,
        }
    )
    record = app.extensions["model_registry"].create({"model_type": "lightgbm"}, "flights.csv")
    client = app.test_client()
    model = f"/models/{record['id']}"
    assert client.get(f"{model}/drift").status_code == 202
    # the same report: an until in the future means until now; a since before 1970 the start
    assert client.get(f"{model}/drift?until=2999-01-01T00:00:00Z").status_code == 202
    assert client.get(f"{model}/drift.png?since=1970-01-01T00:00:00Z").status_code == 202
    assert client.get(f"{model}/performance").status_code == 202  # the second one
    refused = client.get(f"{model}/drift?since=2026-01-01T00:00:00Z")
    assert refused.status_code == 429, refused.get_json()
    assert refused.headers["Retry-After"] == "10"
    assert refused.get_json()["errors"][0]["field"] == "window"
    for window in range(50):  # and stays refused, whatever the window
        assert (
            client.get(
                f"{model}/performance?since=2017-01-{1 + window % 28:02d}T00:00:{window % 60:02d}"
            ).status_code
            == 429
        )
    queued = app.extensions["model_registry"].redis.zcard(
        f"{app.config['KEY_PREFIX']}:analysis:active"
    )
    assert queued == 2
