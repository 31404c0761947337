"""/healthz (the process is alive) and /readyz (it can do its job)."""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue
from flask.views import MethodView

from flight_delay.api.errors import Blueprint, error_body
from flight_delay.api.schemas import HealthSchema, ReadinessSchema
from flight_delay.serving import DeployedModelCache

blp = Blueprint("health", __name__, description="Liveness and readiness probes.")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """Liveness: the process answers"""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, description="not ready: errors.checks says which check failed")
    def get(self) -> ResponseReturnValue:
        """Readiness: Redis reachable, at least one worker, the deployed model loaded here"""
        checks: dict[str, str] = {}
        failed: list[str] = []
        try:
            current_app.extensions["model_registry"].ping()
            checks["redis"] = "ok"
        except Exception as exc:  # any client error means the same thing here
            checks["redis"] = f"unreachable: {type(exc).__name__}"
            return _not_ready(["redis"], checks)
        workers = _worker_count()
        checks["workers"] = f"{workers} worker(s)"
        if workers == 0:
            failed.append("workers")
        cache: DeployedModelCache = current_app.extensions["deployed_model"]
        cache.refresh()
        if cache.current is None:
            checks["model"] = cache.load_error or "no model deployed"
            failed.append("model")
        elif cache.load_error:
            checks["model"] = (
                f"serving {cache.current.model_id}; the newer deployment failed: {cache.load_error}"
            )
            failed.append("model")
        else:
            checks["model"] = f"serving {cache.current.model_id}"
        if failed:
            return _not_ready(failed, checks)
        return {"ready": True, "checks": checks}


def _not_ready(failed: list[str], checks: dict[str, str]) -> ResponseReturnValue:
    body = error_body(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"not ready: {', '.join(failed)}",
        [{"field": name, "problem": checks[name]} for name in failed],
    )
    # a Response, so that the 200 schema above does not filter the error body
    response = jsonify(body)
    response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
    return response


def _worker_count() -> int:
    """Celery workers answering a ping, cached for WORKER_PING_CACHE_SECONDS per process."""
    cache: dict[str, Any] = current_app.extensions.setdefault(
        "worker_ping", {"at": 0.0, "count": 0}
    )
    if time.monotonic() - cache["at"] > current_app.config["WORKER_PING_CACHE_SECONDS"]:
        replies = current_app.extensions["celery"].control.ping(timeout=0.5)
        cache.update(at=time.monotonic(), count=len(replies or []))
    return int(cache["count"])
