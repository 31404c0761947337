"""Comparisons of models on one common holdout as Celery jobs (POST /comparisons).

A comparison is a Redis hash ``<prefix>:comparison:<id>`` (status, request, result or error),
kept for ``COMPARISON_KEEP_SECONDS``. The API checks the request and queues the job; the worker
loads the dataset (a data-root file, a URL of the allow list, or synthetic flights, as training
does), each model from the model directory, and scores them all on the same flights.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
from celery import shared_task
from flask import Flask, current_app

from flight_delay.data.sources import fetch_dataset
from flight_delay.errors import FlightDelayError, scrub_paths
from flight_delay.ml.comparison import EmptyHoldout, compare, fitted_positions, holdout_positions
from flight_delay.registry import ModelRegistry
from flight_delay.tasks import analysis, names
from flight_delay.tasks.lease import Attempt

log = logging.getLogger(__name__)


def comparison_key(prefix: str, comparison_id: str) -> str:
    return f"{prefix}:comparison:{comparison_id}"


def queue_comparison(app: Flask, request: dict[str, Any]) -> str:
    """Record a pending comparison of ``request`` (JSON-safe) and queue its job; its id."""
    comparison_id = str(uuid.uuid4())
    key = comparison_key(str(app.config["KEY_PREFIX"]), comparison_id)
    analysis.queue_new(
        app,
        key,
        names.COMPARISON,
        [comparison_id],
        {"status": "pending", "request": json.dumps(request), "created_at": str(time.time())},
    )
    return comparison_id


def read_comparison(app: Flask, comparison_id: str) -> dict[str, Any] | None:
    registry: ModelRegistry = app.extensions["model_registry"]
    found = registry.redis.hgetall(comparison_key(str(app.config["KEY_PREFIX"]), comparison_id))
    if not found:
        return None
    shown: dict[str, Any] = {
        "id": comparison_id,
        "status": found["status"],
        "request": json.loads(found["request"]),
    }
    if "result" in found:
        shown.update(json.loads(found["result"]))
    if "error" in found:
        shown["error"] = found["error"]
    return shown


@shared_task(name=names.COMPARISON)
def run_comparison(comparison_id: str) -> str:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    registry: ModelRegistry = app.extensions["model_registry"]
    key = comparison_key(str(app.config["KEY_PREFIX"]), comparison_id)
    roots = {n: app.config[n] for n in ("MODEL_DIR", "MODEL_CACHE_DIR", "DATA_ROOT")}
    keep = int(app.config["COMPARISON_KEEP_SECONDS"])

    def work(attempt: Attempt) -> dict[str, str]:
        raw = registry.redis.hget(key, "request")
        try:
            result = score(app, json.loads(raw), attempt.checkpoint)
        except (FlightDelayError, EmptyHoldout) as exc:
            raise analysis.JobFailed(scrub_paths(str(exc), roots), keep) from exc
        return {"result": json.dumps(result)}

    return analysis.run(app, key, work, keep, f"comparison {comparison_id}")


def score(
    app: Flask, request: dict[str, Any], checkpoint: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """The comparison itself: one dataset, one holdout, every model (``checkpoint`` raises
    once the job's lease is lost)."""
    config = app.config
    registry: ModelRegistry = app.extensions["model_registry"]
    flights = fetch_dataset(config, request["dataset"])
    holdout = request.get("holdout") or {}
    since = pd.Timestamp(holdout["since"]) if holdout.get("since") else None
    until = pd.Timestamp(holdout["until"]) if holdout.get("until") else None
    positions = holdout_positions(flights, since, until)
    models, trained_on = {}, {}
    for model_id in request["model_ids"]:
        checkpoint()
        record = registry.get(model_id)
        models[model_id] = app.extensions["model_cache"].load_model(model_id)
        trained_on[model_id] = fitted_positions(
            record["settings"], (record.get("data") or {}).get("sha256"), flights
        )
    return compare(models, flights, positions, trained_on)
