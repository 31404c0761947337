"""Live performance (GET /models/{id}/performance, the dashboard's model page) as Celery jobs on
the analysis queue, cached in Redis.

The metrics are computed over every counted prediction of the model that has an outcome (each
scheduled flight once, at most prediction_log.outcomes.MAX_SCORED_FLIGHTS of them), in a worker:
never in a web process, whatever the window. A report is kept for PERFORMANCE_CACHE_SECONDS and
made again as soon as new outcomes are recorded (the outcomes' version is part of its key).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis
from celery import shared_task
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from flight_delay.prediction_log import outcomes
from flight_delay.prediction_log.store import PredictionStore
from flight_delay.tasks import analysis, names


def outcomes_version_key(prefix: str) -> str:
    return f"{prefix}:outcomes:version"


def outcomes_recorded(app: Flask) -> None:
    """New outcomes: every cached performance report is out of date."""
    client: redis.Redis = app.extensions["model_registry"].redis
    client.incr(outcomes_version_key(str(app.config["KEY_PREFIX"])))


def lookup_or_queue(
    app: Flask, model_id: str, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """{"status": "completed", "report": {...}}, {"status": "failed", "error"} or
    {"status": "pending"} (queued once). Raises analysis.TooManyReports at the cap."""
    client: redis.Redis = app.extensions["model_registry"].redis
    prefix = str(app.config["KEY_PREFIX"])
    version = str(client.get(outcomes_version_key(prefix)) or "0")
    window = (since, until)
    key = analysis.report_key(prefix, "performance", model_id, window, version)
    return analysis.lookup_or_queue(
        app,
        key,
        names.PERFORMANCE,
        [model_id, *(w.isoformat() if w is not None else None for w in window)],
        decode={"report": "json"},
    )


@shared_task(name=names.PERFORMANCE)
def compute_performance(model_id: str, since: str | None, until: str | None, key: str) -> str:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    keep = int(app.config["PERFORMANCE_CACHE_SECONDS"])

    def work(attempt: object) -> dict[str, str]:
        store = PredictionStore.from_url(str(app.config["PREDICTION_LOG_URL"]))
        try:
            report = outcomes.performance(
                store,
                model_id,
                datetime.fromisoformat(since) if since else None,
                datetime.fromisoformat(until) if until else None,
            )
        except SQLAlchemyError as exc:
            reason = f"the prediction log's database is unavailable ({type(exc).__name__})"
            raise analysis.JobFailed(reason, min(keep, 30)) from exc
        finally:
            store.engine.dispose()
        report["computed_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
        return {"report": json.dumps(report)}

    return analysis.run(app, key, work, keep, f"live performance of {model_id}")
