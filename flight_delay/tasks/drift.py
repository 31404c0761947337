"""Drift reports as Celery jobs on the analysis queue, cached in Redis (GET /models/{id}/drift).

A report compares a model's training rows with the flights logged for it in a window of request
time (its open ends normalised); flight_delay.tasks.analysis queues one job per model and
window, caps how many are computed at once, and caches the report (and a failure) for
``DRIFT_CACHE_SECONDS``. A report reads at most MAX_LOGGED_FLIGHTS logged flights (the newest of
the window; each as the log keeps it: the fields a model reads, 64 characters at most).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime
from typing import Any

import pandas as pd
from celery import shared_task
from flask import Flask, current_app

from flight_delay.data.sources import fetch_dataset
from flight_delay.errors import FlightDelayError
from flight_delay.ml.config import TrainConfig
from flight_delay.ml.drift import TooFewRows, chart_png, drift_report
from flight_delay.ml.splits import split_positions
from flight_delay.prediction_log.store import PredictionStore
from flight_delay.registry import ModelRegistry, Status
from flight_delay.tasks import analysis, names

log = logging.getLogger(__name__)

#: most logged flights a report reads (the newest of the window)
MAX_LOGGED_FLIGHTS = 50_000


def lookup_or_queue(
    app: Flask, model_id: str, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """The cached report of this window ({"status": "completed", "report", "png"} or
    {"status": "failed", "error"}), or {"status": "pending"} after queueing the job once.
    Raises analysis.TooManyReports when too many are being computed."""
    window = analysis.normalised_request_window(since, until)
    key = analysis.report_key(str(app.config["KEY_PREFIX"]), "drift", model_id, window)
    found = analysis.lookup_or_queue(
        app,
        key,
        names.DRIFT,
        [model_id, *(w.isoformat() if w is not None else None for w in window)],
        decode={"report": "json"},
    )
    if found["status"] == "completed":
        found["png"] = base64.b64decode(found.get("png", ""))
    return found


@shared_task(name=names.DRIFT)
def compute_drift(model_id: str, since: str | None, until: str | None, key: str) -> str:
    """Build the report of ``model_id`` for the window and cache it under ``key``."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    keep = int(app.config["DRIFT_CACHE_SECONDS"])

    def work(attempt: object) -> dict[str, str]:
        try:
            report, png = build(
                app,
                model_id,
                datetime.fromisoformat(since) if since else None,
                datetime.fromisoformat(until) if until else None,
            )
        except (FlightDelayError, TooFewRows) as exc:
            raise analysis.JobFailed(str(exc), keep) from exc
        return {"report": json.dumps(report), "png": base64.b64encode(png).decode()}

    return analysis.run(app, key, work, keep, f"drift report of {model_id}")


def build(
    app: Flask, model_id: str, since: datetime | None, until: datetime | None
) -> tuple[dict[str, Any], bytes]:
    """The report and its chart: the training rows come from the model's dataset, split as
    its training split it; the requested flights from the prediction log."""
    config = app.config
    registry: ModelRegistry = app.extensions["model_registry"]
    record = registry.get(model_id)
    if record["status"] != Status.COMPLETED:
        raise FlightDelayError(
            f"model {model_id} is {record['status']}; drift needs a completed model",
            [{"field": "model_id", "problem": f"status {record['status']}"}],
        )
    current = logged_flights(
        PredictionStore.from_url(str(config["PREDICTION_LOG_URL"])), model_id, since, until
    )
    reference = training_rows(app, record)
    model = app.extensions["model_cache"].load_model(model_id)
    report = drift_report(model.features, reference, current)
    report.update(
        {
            "model_id": model_id,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "computed_at": datetime.now().astimezone().isoformat(),
        }
    )
    return report, chart_png(report, f"model {model_id[:8]}: logged requests vs training rows")


def training_rows(app: Flask, record: dict[str, Any]) -> pd.DataFrame:
    """The model's training rows: its dataset fetched again, checked against the fingerprint
    recorded at training, and split as its settings split it."""
    flights = fetch_dataset(app.config, record["dataset"])
    recorded = (record.get("data") or {}).get("sha256")
    if recorded and flights.fingerprint.sha256 != recorded:
        raise FlightDelayError(
            "the model's dataset changed since it was trained; its training rows are gone",
            [{"field": "dataset", "problem": "fingerprint differs from the model's"}],
        )
    settings = TrainConfig.from_dict(record["settings"])
    train_rows, _ = split_positions(
        flights.frame, settings.split, settings.test_size, settings.seed, settings.time_cutoff
    )
    return flights.frame.iloc[train_rows]


def logged_flights(
    store: PredictionStore, model_id: str, since: datetime | None, until: datetime | None
) -> pd.DataFrame:
    """The flights sent to ``model_id`` in [since, until) of request time, newest first, at
    most MAX_LOGGED_FLIGHTS."""
    try:
        flights = store.flights_of(model_id, since, until, MAX_LOGGED_FLIGHTS)
    finally:
        store.engine.dispose()
    return pd.DataFrame.from_records(flights)
