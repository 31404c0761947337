"""Outcomes of logged flights and the live performance of a model (issue 11)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from flight_delay.api.errors import (
    Blueprint,
    prediction_log_call,
    requires_configured_scope,
    requires_scope,
)
from flight_delay.api.schemas import (
    OutcomesRecordedSchema,
    OutcomesRequestSchema,
    PerformanceQuerySchema,
    PerformanceSchema,
)
from flight_delay.ml.flight_input import parse_scheduled
from flight_delay.prediction_log import outcomes
from flight_delay.prediction_log.service import PredictionLog
from flight_delay.registry import ModelRegistry

blp = Blueprint(
    "outcomes", __name__, description="Actual departures of logged flights; live performance."
)


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
        `index` (its position in that request), or by `Fecha-I`, `Vlo-I` and `Des-I` (every
        logged prediction of that flight), and gives `Fecha-O`, when it actually left. Its
        delay is `Fecha-O - Fecha-I`; more than 15 minutes is delayed, as in training. Sending
        an outcome again replaces it. Outcomes no logged flight matches are listed by position
        in `unmatched` (an answer reaches the log about a second after it was sent).
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
                },
            )
            for item in body["outcomes"]
        ]
        recorded = prediction_log_call(lambda: outcomes.record(_log().store, items))
        return {
            "matched": recorded.matched,
            "flights_updated": recorded.flights_updated,
            "unmatched": recorded.unmatched,
        }


@blp.route("/models/<uuid:model_id>/performance")
class Performance(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(PerformanceQuerySchema, location="query")
    @blp.response(200, PerformanceSchema)
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(503, description="the prediction log's database is unavailable")
    def get(self, query: dict[str, Any], model_id: Any) -> dict[str, Any]:
        """Live performance of a model

        Over the model's logged predictions that have an outcome (POST /outcomes), for flights
        scheduled in [`since`, `until`): ROC AUC, PR AUC (average precision), Brier score,
        expected calibration error and the delay rate, computed as the offline evaluation
        computes them, overall and per ISO week of the scheduled departure. Each logged
        prediction counts once: a flight predicted twice counts twice.
        """
        registry: ModelRegistry = current_app.extensions["model_registry"]
        registry.get(str(model_id))  # 404 for a model that does not exist
        return prediction_log_call(
            lambda: outcomes.performance(
                _log().store, str(model_id), query.get("since"), query.get("until")
            )
        )
