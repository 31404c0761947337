"""/predict (alias /predictions): delay probabilities from the deployed model."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import orjson
from flask import Response, current_app, request
from flask.views import MethodView

from flight_delay import live_predictions
from flight_delay.api.base import Blueprint
from flight_delay.api.errors import BatchTooLarge, LoggedRequestNotFound, prediction_log_call
from flight_delay.api.schemas import (
    EXAMPLE_FLIGHT,
    EXAMPLE_MINIMAL_FLIGHT,
    LoggedRequestDetailSchema,
    PredictionLogPageSchema,
    PredictionLogQuerySchema,
    PredictQuerySchema,
    PredictRequestSchema,
    PredictResponseSchema,
)
from flight_delay.api.security import requires_configured_scope
from flight_delay.auth import caller
from flight_delay.live_predictions import LiveFlights
from flight_delay.metrics import record_prediction
from flight_delay.prediction_log.service import PredictionLog
from flight_delay.serving import DeployedModelCache

blp = Blueprint("predictions", __name__, description="Predict delays with the deployed model.")

EXAMPLE_RESPONSE = {
    "request_id": "9b2f0c4e1d7a4f6b8c3e5a7d9f1b2c4d",
    "model_id": "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10",
    "threshold": 0.19,
    "predictions": [{"delay_probability": 0.27, "delayed": True}],
    "warnings": [],
}


class Predict(MethodView):
    @requires_configured_scope(blp, "PREDICT_SCOPE")
    # schema instances, not classes: webargs would build a new schema on every request (~60 µs
    # each, a tenth of a single-flight prediction)
    @blp.arguments(PredictQuerySchema(), location="query", as_kwargs=True)
    @blp.arguments(
        PredictRequestSchema(),
        examples={
            "schedule model": {"value": {"flights": [EXAMPLE_FLIGHT]}},
            "minimal model": {"value": {"flights": [EXAMPLE_MINIMAL_FLIGHT]}},
        },
    )
    @blp.response(200, PredictResponseSchema, example=EXAMPLE_RESPONSE)
    @blp.alt_response(
        400,
        description="a non-list body, too many flights, or invalid flights: errors.flights lists "
        "each offending flight index and field (missing field, MES outside 1-12, TIPOVUELO not "
        "I/N, an airline the model never saw, an unparsable Fecha-I)",
    )
    @blp.alt_response(503, description="no model is deployed")
    def post(self, body: dict[str, Any], explain: bool = False) -> Response:
        """Predict delays

        Takes up to FLIGHT_DELAY_MAX_BATCH flights (default 10,000) and answers in request order.
        `delayed` is `delay_probability >= threshold`, the model's threshold. A destination,
        airline code (Emp-I) or flight number the model never saw is predicted as unseen and
        listed in `warnings`; an unknown airline (OPERA), TIPOVUELO or MES is a 400.
        With `explain=true` each prediction carries its explanation (LightGBM models; 400 for
        others). Every answer has a `request_id` (also the X-Request-Id header); the answer is
        kept in the prediction log under it (GET /predictions/{request_id}), without waiting
        for it, unless FLIGHT_DELAY_PREDICTION_LOG is false.
        """
        started = time.perf_counter()
        flights = body["flights"]
        limit = current_app.config["MAX_BATCH"]
        if not flights or len(flights) > limit:
            raise BatchTooLarge(
                f"send between 1 and {limit} flights; got {len(flights)}",
                [{"field": "flights", "problem": f"length must be 1-{limit}"}],
            )
        cache: DeployedModelCache = current_app.extensions["deployed_model"]
        served = cache.get()
        sent = flights
        live = live_predictions.prepare(
            served.model,
            flights,
            body.get("as_of"),
            current_app.config,
            current_app.extensions["departure_feed"],
        )
        if isinstance(live, LiveFlights):
            flights = live.flights
        explanations: list[dict[str, Any]] = []
        if explain:
            probabilities, explanations = served.model.predict_explained(flights)
        else:
            probabilities = served.model.predict_proba(flights)
        warnings = served.model.warnings(flights)
        warnings += live.warnings if isinstance(live, LiveFlights) else live
        threshold = served.model.threshold
        probability_list = probabilities.tolist()
        predictions: list[dict[str, Any]] = [
            {"delay_probability": round(p, 6), "delayed": p >= threshold} for p in probability_list
        ]
        if isinstance(live, LiveFlights):
            for prediction, lead in zip(predictions, live.leads, strict=True):
                prediction["lead_minutes"] = lead
        warning_list = [warning.as_dict() for warning in warnings]
        record_prediction(served.model_id, len(flights), warning_list)
        request_id = uuid.uuid4().hex
        log: PredictionLog = current_app.extensions["prediction_log"]
        if log.buffer is not None:
            name, keyed = caller()
            # the probabilities unrounded and the threshold, not the answer's rows: the writer
            # derives each decision as the answer did, and live metrics see what the model said.
            # The flights go as sent; the buffer's thread keeps only what the log keeps of them
            # (off the request path), and the body's size bounds what the queue holds.
            log.buffer.add(
                {
                    "request_id": request_id,
                    "received_at": time.time(),
                    "model_id": served.model_id,
                    "deployment_version": served.version,
                    "caller": name,
                    "keyed": keyed,
                    "latency_ms": (time.perf_counter() - started) * 1000,
                    "flights": sent,
                    "probabilities": probability_list,
                    "threshold": threshold,
                    "warnings": warning_list,
                },
                len(request.get_data(cache=True)),
            )
        if explanations:
            predictions = [
                {**prediction, "explanation": explanation}
                for prediction, explanation in zip(predictions, explanations, strict=True)
            ]
        payload = {
            "request_id": request_id,
            "model_id": served.model_id,
            "threshold": threshold,
            "predictions": predictions,
            "warnings": warning_list,
        }
        if isinstance(live, LiveFlights):
            payload["feed"] = live.feed.as_dict()
        # serialised directly: the schema above documents this shape, and dumping 10,000 rows
        # through marshmallow would cost more than the prediction itself
        response = Response(dump_json(payload), mimetype="application/json")
        response.headers["X-Request-Id"] = request_id
        return response


def dump_json(payload: dict[str, Any]) -> bytes:
    """orjson (~1 ms for 10,000 predictions against ~7 ms); the standard library for what orjson
    refuses (text that is not valid Unicode, which a warning could quote)."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return json.dumps(payload).encode()


blp.route("/predict")(Predict)


@blp.route("/predictions")
class Predictions(Predict):
    """POST: alias of /predict. GET: the prediction log."""

    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(PredictionLogQuerySchema, location="query")
    @blp.response(200, PredictionLogPageSchema)
    @blp.alt_response(503, description="the prediction log's database is unavailable")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List logged predictions

        Newest first, `limit` per page (default 50); pass `next_cursor` as `cursor` for the next
        page. Each item is one request; `GET /predictions/{request_id}` has its flights and
        answers. An answer reaches the log within about a second while the log writer runs.
        """
        log: PredictionLog = current_app.extensions["prediction_log"]
        page = prediction_log_call(lambda: log.store.list(**query))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/predictions/<string:request_id>")
class LoggedPrediction(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, LoggedRequestDetailSchema)
    @blp.alt_response(404, description="no such request in the log (yet)")
    @blp.alt_response(503, description="the prediction log's database is unavailable")
    def get(self, request_id: str) -> dict[str, Any]:
        """Read one logged prediction

        The request (time, model, deployment version, caller name, latency) with every flight as
        sent, its probability, decision and warnings.
        """
        log: PredictionLog = current_app.extensions["prediction_log"]
        found = prediction_log_call(lambda: log.store.get(request_id[:64]))
        if found is None:
            raise LoggedRequestNotFound(request_id[:64])
        return dict(found)
