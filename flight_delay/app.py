"""The application factory."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response

from flight_delay.config import DefaultConfig, TestingConfig, load_config


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the API app: config (defaults, FLIGHT_DELAY_* variables, then ``overrides``),
    extensions, blueprints and error handlers."""
    # imported here: building an app is the only thing that needs Flask, Celery and Redis
    import importlib

    from flight_delay import metrics, scheduling, storage, tracing, ui
    from flight_delay.tasks import names

    for task_module in names.MODULES:  # every Celery task (shared tasks: every Celery app has them)
        importlib.import_module(task_module)
    from flight_delay import departures as departure_feed
    from flight_delay.api import (
        comparisons,
        departures,
        deploy,
        drift,
        health,
        models,
        outcomes,
        predict,
        schedules,
    )
    from flight_delay.api import metrics as metrics_api
    from flight_delay.api.base import Api
    from flight_delay.api.docs import docs_assets_blueprint, finish_document
    from flight_delay.api.errors import register_error_handlers
    from flight_delay.api.security import BEARER_SCHEME, SECURITY_SCHEME
    from flight_delay.auth import HEADER, parse_api_keys
    from flight_delay.extensions import (
        deployed_model,
        init_celery,
        model_registry,
        prediction_log,
    )

    app = Flask("flight_delay")
    base = TestingConfig if (overrides or {}).get("TESTING") else DefaultConfig
    app.config.update(load_config(base, overrides))
    app.extensions["api_keys"] = parse_api_keys(app.config["API_KEYS"])
    configure_logging(app)
    # OTEL_* variables turn it on (a worker configured itself first, as a worker)
    tracing.configure("api")

    model_registry.init_app(app)
    departure_feed.init_app(app)
    storage.init_app(app)
    scheduling.init_app(app)
    deployed_model.init_app(app)
    prediction_log.init_app(app)
    init_celery(app)
    metrics.init_app(app)
    api = Api(app)  # one per app: its OpenAPI document and error handlers are this app's
    api.spec.components.security_scheme(
        SECURITY_SCHEME, {"type": "apiKey", "in": "header", "name": HEADER}
    )
    api.spec.components.security_scheme(
        BEARER_SCHEME,
        {"type": "http", "scheme": "bearer", "description": f"the same key as {HEADER}"},
    )
    for module in (
        models,
        comparisons,
        schedules,
        deploy,
        predict,
        outcomes,
        departures,
        drift,
        health,
        metrics_api,
    ):
        api.register_blueprint(module.blp)
    # what marshmallow cannot say in the document: a PATCH changes at least one field
    patch = api.spec.components.schemas.get("SchedulePatch")
    if patch is not None:
        patch["minProperties"] = 1
    finish_document(api.spec._paths, app.config)
    register_error_handlers(app)
    app.register_blueprint(docs_assets_blueprint())
    app.register_blueprint(ui.blp)

    app.extensions["html_error_page"] = ui.error_page
    served_by = f"{socket.gethostname()}:{os.getpid()}"

    @app.after_request
    def identify(response: Response) -> Response:
        # which process answered: useful behind a load balancer, and in the deployment test
        response.headers["X-Served-By"] = served_by
        return secure_headers(response)

    tracing.instrument_app(app)
    return app


#: every answer, JSON and the docs page included, may not be framed or sniffed; the dashboard's
#: answers (its pages, and redirects and errors under /ui) carry its stricter policy
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def secure_headers(response: Response) -> Response:
    """Security headers on every answer, and redirects that stay on this server.

    A redirect werkzeug makes itself (``/ui`` -> ``/ui/``) names the host the request's Host
    header gave; it is sent as a path, so a forged Host header cannot send anyone elsewhere."""
    from flask import request

    from flight_delay import ui

    if request.path == "/ui" or request.path.startswith("/ui/"):
        ui.secure(response)
    else:
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    location = response.headers.get("Location")
    if location:
        response.headers["Location"] = local_location(location, request.host_url)
    return response


def local_location(location: str, host_url: str) -> str:
    """``location`` as a path (with query) when it points at this server's own host."""
    from urllib.parse import urlsplit, urlunsplit

    parts, own = urlsplit(location), urlsplit(host_url)
    if parts.netloc and parts.netloc == own.netloc:
        return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    return location


def configure_logging(app: Flask) -> None:
    """FLIGHT_DELAY_LOG_LEVEL for this package's loggers and the app's."""
    name = str(app.config["LOG_LEVEL"]).upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(
            f"FLIGHT_DELAY_LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {name!r}"
        )
    logging.getLogger("flight_delay").setLevel(level)
    app.logger.setLevel(level)
