"""One error shape for the whole API, and the one place errors become HTTP answers.

Every error body is ``{"code": <HTTP status>, "status": "<reason>", "message": "...",
"errors": [{"field", "problem", "location", "index"}]}``. A domain error carries its own status
(``FlightDelayError.http_status``), so this module knows no domain; the errors below are the
API's own (what only a request can cause).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import redis
from flask import Flask, current_app
from marshmallow import Schema, fields
from sqlalchemy.exc import SQLAlchemyError

from flight_delay.errors import (
    BadRequest,
    Conflict,
    FlightDelayError,
    NotFound,
    Unavailable,
    scrub_paths,
)
from flight_delay.redis_connection import NotReplicated

log = logging.getLogger(__name__)


class ExportConflict(Conflict):
    """The export file name is taken by a file with other contents: exports never replace."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the export directory already holds another file named {name!r}; exports never "
            "replace a file: choose another file-name",
            [{"field": "file-name", "problem": "a different file with this name exists"}],
        )


class ArtifactGone(FlightDelayError):
    http_status = 410

    """A completed model whose files are no longer in the model directory."""

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model {model_id} is completed but its files are gone from the model directory",
            [{"field": "model_id", "problem": "files missing"}],
        )


class BatchTooLarge(BadRequest):
    """More flights in one request than FLIGHT_DELAY_MAX_BATCH."""


class LoggedRequestNotFound(NotFound):
    """A request id the prediction log does not hold (yet: the writer adds entries within about
    a second of the answer while it runs)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request {request_id} is not in the prediction log (an answer reaches it within "
            "about a second while the log writer runs)",
            [{"field": "request_id", "problem": "not in the log"}],
        )


class PredictionLogUnavailable(Unavailable):
    """The prediction log's database cannot be read."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the prediction log's database is unavailable ({reason}); retry later",
            [{"field": "prediction_log", "problem": reason}],
        )


def prediction_log_call(call: Callable[[], Any]) -> Any:
    """A call on the prediction log's database: its failures are a 503 (a bad cursor is the
    store's own 400)."""
    try:
        return call()
    except SQLAlchemyError as exc:
        raise PredictionLogUnavailable(type(exc).__name__) from exc


class ComparisonNotFound(NotFound):
    def __init__(self, comparison_id: str) -> None:
        super().__init__(
            f"no comparison {comparison_id} (comparisons are kept for "
            "FLIGHT_DELAY_COMPARISON_KEEP_SECONDS)",
            [{"field": "comparison_id", "problem": "not found"}],
        )


class DriftUnavailable(Conflict):
    """A drift report that cannot be made (the worker's reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"no drift report: {reason}", [{"field": "drift", "problem": reason[:300]}]
        )


class ErrorDetailSchema(Schema):
    location = fields.String(
        metadata={
            "description": "where the field is: json (the body), query, path or header; "
            "absent when the problem is not with one field of the request",
            "example": "json",
        }
    )
    field = fields.String(
        metadata={"description": "the field, dotted for nested ones", "example": "Fecha-I"}
    )
    problem = fields.String(metadata={"example": "required field is missing"})
    index = fields.Integer(
        metadata={"description": "POST /predict: the flight's index in the request", "example": 0}
    )


class ErrorSchema(Schema):
    """The one error body of the whole API."""

    code = fields.Integer(metadata={"description": "HTTP status code", "example": 404})
    status = fields.String(metadata={"description": "HTTP reason phrase", "example": "Not Found"})
    message = fields.String(metadata={"description": "what went wrong, for people"})
    errors = fields.List(
        fields.Nested(ErrorDetailSchema),
        metadata={"description": "one entry per problem; empty when there are no field details"},
    )


def flatten_messages(messages: dict[str, Any]) -> list[dict[str, Any]]:
    """webargs' ``{"json": {"params": {"seed": ["msg"]}}}`` as ``[{"location": "json", "field":
    "params.seed", "problem": "msg"}]``."""
    details: list[dict[str, Any]] = []

    def walk(value: Any, location: str, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, location, (*path, str(key)))
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if len(path) >= 2 and path[-1] in ("key", "value"):
                path = path[:-1]  # marshmallow's Dict reports params.num_leaves.value
            for text in value:
                details.append({"location": location, "field": ".".join(path), "problem": text})
        elif isinstance(value, list):
            for position, inner in enumerate(value):
                walk(inner, location, (*path, str(position)))
        else:
            details.append({"location": location, "field": ".".join(path), "problem": str(value)})

    for location, value in messages.items():
        walk(value, str(location), ())
    return details


def error_body(
    status: HTTPStatus, message: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "code": int(status),
        "status": status.phrase,
        "message": message,
        "errors": errors or [],
    }


def handle_domain_error(exc: FlightDelayError) -> tuple[dict[str, Any], int, dict[str, str]]:
    status = HTTPStatus(exc.http_status)
    if status >= 500:  # an error that declares no status of its own: ours, not the caller's
        log.error("%s answered %d", type(exc).__name__, status, exc_info=exc)
    # library messages name files for CLI users; API callers never learn server locations
    roots = {
        name: current_app.config[name]
        for name in ("MODEL_DIR", "MODEL_CACHE_DIR", "DATA_ROOT", "EXPORT_DIR")
    }
    details = [
        {**d, "problem": scrub_paths(d["problem"], roots)} if "problem" in d else d
        for d in exc.details()
    ]
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:  # 429 and 503 that know when to come back say it
        headers["Retry-After"] = str(int(retry_after))
    return error_body(status, scrub_paths(exc.message, roots), details), int(status), headers


def handle_redis_error(exc: redis.RedisError) -> tuple[dict[str, Any], int]:
    """Redis away: nothing was changed that a retry would not redo; say so, never a 500."""
    status = HTTPStatus.SERVICE_UNAVAILABLE
    message = f"the model registry (Redis) is unreachable ({type(exc).__name__}); retry later"
    if isinstance(exc, NotReplicated):
        message = (
            "the model registry (Redis) took the change but no replica confirmed it in time, "
            "so it is not acknowledged (a failover could lose it); retry"
        )
    return error_body(status, message), int(status)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FlightDelayError, handle_domain_error)
    app.register_error_handler(redis.RedisError, handle_redis_error)
