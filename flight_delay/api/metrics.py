"""GET /metrics: Prometheus text format, summed over every API process."""

from __future__ import annotations

from flask import Response, current_app
from flask.views import MethodView

from flight_delay import metrics
from flight_delay.api.base import Blueprint
from flight_delay.api.security import requires_configured_scope
from flight_delay.prediction_log.writer import stream_key

blp = Blueprint("metrics", __name__, description="Operational metrics for Prometheus.")


@blp.route("/metrics")
class Metrics(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(
        200,
        description="Prometheus text exposition format",
        content_type="text/plain; version=0.0.4",
    )
    def get(self) -> Response:
        """Metrics (Prometheus)

        Requests by route, method and status; request latency histograms; flights predicted and
        warnings by model; prediction-log entries queued in API processes, messages waiting in
        Redis for the log writer and dead letters. Summed over every gunicorn process
        (prometheus_client's multiprocess mode). The worker serves its job metrics on
        FLIGHT_DELAY_WORKER_METRICS_BIND.
        """
        registry = current_app.extensions["model_registry"]
        stream = stream_key(str(current_app.config["KEY_PREFIX"]))
        body, content_type = metrics.exposition(
            [metrics.LogStreamCollector(registry.redis, stream)]
        )
        return Response(body, content_type=content_type)
