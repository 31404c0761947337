"""Outcomes of logged flights and the live performance of a model."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask.views import MethodView

from flight_delay.api.base import Blueprint
from flight_delay.api.errors import PredictionLogUnavailable, prediction_log_call
from flight_delay.api.schemas import (
    OutcomesRecordedSchema,
    OutcomesRequestSchema,
    PerformancePendingSchema,
    PerformanceQuerySchema,
    PerformanceSchema,
)
from flight_delay.api.security import requires_configured_scope, requires_scope
from flight_delay.departures import DepartureFeed, latest_departure
from flight_delay.features.values import parse_scheduled
from flight_delay.prediction_log import outcomes
from flight_delay.prediction_log.service import PredictionLog
from flight_delay.registry import ModelRegistry
from flight_delay.tasks import performance as performance_jobs

blp = Blueprint(
    "outcomes", __name__, description="Actual departures of logged flights; live performance."
)

#: seconds a 202 asks the caller to wait before asking again
PENDING_RETRY_SECONDS = 2


def _log() -> PredictionLog:
    log: PredictionLog = current_app.extensions["prediction_log"]
    return log


@blp.route("/outcomes")
class Outcomes(MethodView):
    @requires_scope(blp, "outcomes")
    @blp.arguments(
        OutcomesRequestSchema,
        examples={
            "by request": {
                "value": {
                    "outcomes": [
                        {
                            "request_id": "9b2f0c4e1d7a4f6b8c3e5a7d9f1b2c4d",
                            "index": 0,
                            "Fecha-O": "2017-11-02 07:20:00",
                        }
                    ]
                }
            },
            "by schedule": {
                "value": {
                    "outcomes": [
                        {
                            "Fecha-I": "2017-11-02 07:00:00",
                            "Vlo-I": "11",
                            "Des-I": "SCIE",
                            "Fecha-O": "2017-11-02 07:20:00",
                        }
                    ]
                }
            },
        },
    )
    @blp.response(200, OutcomesRecordedSchema)
    @blp.alt_response(503, description="the prediction log's database is unavailable")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record actual departures

        Needs the `outcomes` scope. Each outcome names a logged flight by `request_id` and
        `index` (its position in that request), or by `Fecha-I`, `Vlo-I` and `Des-I` (the
        flight, for every model that predicted it), and gives `Fecha-O`, when it actually left.
        Its delay is `Fecha-O - Fecha-I`; more than 15 minutes is delayed, as in training.
        Sending an outcome again replaces it. Each scheduled flight counts once per model in
        live metrics and promotion decisions, however often it was predicted. Outcomes no
        logged flight matches are listed by position in `unmatched` (an answer reaches the log
        about a second after it was sent). An outcome naming a logged flight by request id, or
        a flight with its `Emp-I`, is also a departure for the live feed (as POST /departures
        keeps it; one more than 6 h early, 48 h late or in the future is not): `departures` counts them.
        """
        items = [
            outcomes.Outcome(
                departed_at=parse_scheduled(item["departed"]),  # type: ignore[arg-type]
                request_id=item.get("request_id"),
                index=item.get("index"),
                flight=None
                if "request_id" in item
                else {
                    "Fecha-I": item["scheduled"],
                    "Vlo-I": item["flight_number"],
                    "Des-I": item["destination"],
                    "Emp-I": item.get("carrier"),
                    "OPERA": item.get("airline"),
                },
            )
            for item in body["outcomes"]
        ]
        latest = latest_departure(str(current_app.config["AIRPORT_TIMEZONE"]))
        recorded = prediction_log_call(lambda: outcomes.record(_log().store, items, latest))
        if recorded.matched:
            performance_jobs.outcomes_recorded(current_app._get_current_object())  # type: ignore[attr-defined]
        # after the log: a Redis error here is a 503, and sending the outcomes again is safe
        # (both the log and the feed replace what a flight had)
        if recorded.departures:
            feed: DepartureFeed = current_app.extensions["departure_feed"]
            feed.record(recorded.departures)
        return {
            "matched": recorded.matched,
            "flights_updated": recorded.flights_updated,
            "unmatched": recorded.unmatched,
            "departures": len(recorded.departures),
        }


@blp.route("/models/<uuid:model_id>/performance")
class Performance(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(PerformanceQuerySchema, location="query")
    @blp.response(200, PerformanceSchema)
    @blp.alt_response(202, schema=PerformancePendingSchema, description="being computed; ask again")
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(
        429,
        description="as many reports as FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE are being computed; "
        "ask again after Retry-After seconds",
    )
    @blp.alt_response(503, description="the prediction log's database is unavailable")
    def get(self, query: dict[str, Any], model_id: Any) -> Any:
        """Live performance of a model

        Over the model's logged predictions that have an outcome (POST /outcomes), for flights
        scheduled in [`since`, `until`): ROC AUC, PR AUC (average precision),
        Brier score, expected calibration error and the delay rate, computed as the offline
        evaluation computes them, overall and per ISO week of the scheduled departure. Each
        scheduled flight counts once, however often it was predicted (the first copy a caller
        with a key sent, else the first copy; one an outcome names by request id). Computed by
        a worker and kept until new outcomes arrive (at most FLIGHT_DELAY_PERFORMANCE_CACHE_SECONDS):
        the first request answers 202 with Retry-After until it is ready.
        """
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        registry: ModelRegistry = app.extensions["model_registry"]
        registry.get(str(model_id))  # 404 for a model that does not exist
        found = performance_jobs.lookup_or_queue(
            app, str(model_id), query.get("since"), query.get("until")
        )
        if found["status"] == "failed":
            raise PredictionLogUnavailable(found["error"])
        if found["status"] != "completed":
            response = jsonify({"status": "pending", "retry_after_seconds": PENDING_RETRY_SECONDS})
            response.status_code = 202
            response.headers["Retry-After"] = str(PENDING_RETRY_SECONDS)
            return response
        return found["report"]
