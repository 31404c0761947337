"""/healthz (the process is alive) and /readyz (it can do its job)."""

from __future__ import annotations

import contextlib
import time
from http import HTTPStatus
from typing import Any

import redis
from flask import current_app, jsonify
from flask.typing import ResponseReturnValue
from flask.views import MethodView

from flight_delay.api.base import Blueprint
from flight_delay.api.errors import error_body
from flight_delay.api.schemas import HealthSchema, ReadinessSchema
from flight_delay.errors import scrub_paths
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
    @blp.alt_response(
        503, description="not ready: errors lists each failed check (field) and why (problem)"
    )
    def get(self) -> ResponseReturnValue:
        """Readiness: Redis reachable, at least one worker, the deployed model loaded here

        When reads need a key (FLIGHT_DELAY_READ_SCOPE), the model is not named.
        """
        checks: dict[str, str] = {}
        failed: list[str] = []
        registry = current_app.extensions["model_registry"]
        try:
            registry.ping()
            registry.check_writable()  # a Redis that cannot persist answers, then refuses
            checks["redis"] = "ok"
        except redis.ResponseError as exc:  # MISCONF (PING too is refused then)
            checks["redis"] = f"refuses writes (is its disk full?): {str(exc)[:200]}"
            return _not_ready(["redis"], checks)
        except Exception as exc:  # any other client error means the same thing here
            checks["redis"] = f"unreachable: {type(exc).__name__}"
            return _not_ready(["redis"], checks)
        try:
            workers = _worker_count()
            checks["workers"] = f"{workers} worker(s)"
        except Exception as exc:  # the broker connection is being re-established
            workers = 0
            checks["workers"] = f"unknown: the broker did not answer ({type(exc).__name__})"
        if workers == 0:
            failed.append("workers")
        cache: DeployedModelCache = current_app.extensions["deployed_model"]
        with contextlib.suppress(Exception):  # Redis answered the ping; a blip here is not fatal
            cache.refresh()
        served = cache.current
        name = "the deployed model" if current_app.config["READ_SCOPE"] else None
        roots = {n: current_app.config[n] for n in ("MODEL_DIR", "MODEL_CACHE_DIR")}
        if served is None:
            checks["model"] = scrub_paths(cache.load_error or "no model deployed", roots)
            failed.append("model")
        else:
            shown = name or served.model_id
            problems = []
            if cache.load_error:
                problems.append(
                    f"the newer deployment failed: {scrub_paths(cache.load_error, roots)}"
                )
            present, store_problem = cache.files_status()
            if present is False:
                problems.append("its files are gone from the model directory")
            if store_problem:
                # the loaded model keeps serving: the store is reported, readiness stays
                checks["artifact_store"] = "unreachable, serving the loaded model: " + scrub_paths(
                    store_problem, roots
                )
            checks["model"] = f"serving {shown}" + (f"; {'; '.join(problems)}" if problems else "")
            if problems:
                failed.append("model")
        if name:
            checks = {
                k: v.replace(served.model_id, name) if served else v for k, v in checks.items()
            }
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
