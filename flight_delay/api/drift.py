"""Drift of the requests a model gets against its training rows (issue 11)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, url_for
from flask.views import MethodView

from flight_delay.api.base import Blueprint
from flight_delay.api.errors import DriftUnavailable
from flight_delay.api.schemas import DriftPendingSchema, DriftQuerySchema, DriftSchema
from flight_delay.api.security import requires_configured_scope
from flight_delay.registry import ModelRegistry
from flight_delay.tasks.drift import lookup_or_queue

blp = Blueprint("drift", __name__, description="Drift of logged requests from training rows.")

RETRY_AFTER_SECONDS = 2


def _report(model_id: str, query: dict[str, Any]) -> dict[str, Any] | Response:
    """The cached report, or the 202 answer while it is computed."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    registry: ModelRegistry = app.extensions["model_registry"]
    registry.get(model_id)  # 404 for a model that does not exist
    found = lookup_or_queue(app, model_id, query.get("since"), query.get("until"))
    if found["status"] == "failed":
        raise DriftUnavailable(found["error"])
    if found["status"] != "completed":
        response = jsonify({"status": "pending", "retry_after_seconds": RETRY_AFTER_SECONDS})
        response.status_code = 202
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return found


@blp.route("/models/<uuid:model_id>/drift")
class Drift(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(DriftQuerySchema, location="query")
    @blp.response(200, DriftSchema)
    @blp.alt_response(202, schema=DriftPendingSchema, description="being computed; ask again")
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(
        409,
        description="the report cannot be made: too few logged flights in the window, the model "
        "is not completed, or its dataset changed since training",
    )
    @blp.alt_response(
        429,
        description="as many reports as FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE are being computed; "
        "ask again after Retry-After seconds",
    )
    def get(self, query: dict[str, Any], model_id: Any) -> Any:
        """Drift of a model's requests

        Compares the flights logged for this model (requests received in [`since`, `until`))
        with its training rows, over the features the model sees: adversarial validation (the
        out-of-fold ROC AUC of a classifier telling them apart, and the features it splits on)
        and each feature's PSI. An `until` in the future means until now.
        Computed by a worker and kept for FLIGHT_DELAY_DRIFT_CACHE_SECONDS: the first request
        answers 202 (with Retry-After) until the report is ready; a new window while
        FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE reports are being computed is a 429. The chart is at
        `/models/{id}/drift.png` with the same parameters.
        """
        found = _report(str(model_id), query)
        if isinstance(found, Response):
            return found
        params = {k: v.isoformat() for k, v in query.items() if v is not None}
        chart = url_for("drift.DriftChart", model_id=model_id, **params)
        return {"status": "completed", **found["report"], "chart": chart}


@blp.route("/models/<uuid:model_id>/drift.png")
class DriftChart(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(DriftQuerySchema, location="query")
    @blp.response(200, description="PSI per feature and the adversary's separating features")
    @blp.alt_response(202, schema=DriftPendingSchema, description="being computed; ask again")
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(409, description="the report cannot be made (see the JSON)")
    @blp.alt_response(429, description="too many reports being computed; see Retry-After")
    def get(self, query: dict[str, Any], model_id: Any) -> Any:
        """Drift chart (PNG)"""
        found = _report(str(model_id), query)
        if isinstance(found, Response):
            return found
        return Response(found["png"], mimetype="image/png")
