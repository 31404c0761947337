"""One error shape for the whole API, and the one place domain exceptions become HTTP statuses.

Every error body is ``{"code": <HTTP status>, "status": "<reason>", "message": "...",
"errors": {<field or location>: [details]}}``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import redis
from flask import Flask
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from flight_delay.auth import Forbidden, Unauthorized, require_configured_scope, require_scope
from flight_delay.errors import FlightDelayError, InvalidConfig, InvalidDataset, InvalidFlights
from flight_delay.registry import ModelDeployed, ModelNotFound, ModelNotReady
from flight_delay.serving import NoDeployedModel


class ExportConflict(FlightDelayError):
    """The export file name is taken by a file with other contents: exports never replace."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the export directory already holds another file named {name!r}; exports never "
            "replace a file: choose another file-name",
            [{"field": "file-name", "problem": "a different file with this name exists"}],
        )


class ArtifactGone(FlightDelayError):
    """A completed model whose files are no longer in the model directory."""

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model {model_id} is completed but its files are gone from the model directory",
            [{"field": "model_id", "problem": "files missing"}],
        )


class BatchTooLarge(FlightDelayError):
    pass


# most specific first
STATUS_OF: tuple[tuple[type[FlightDelayError], HTTPStatus], ...] = (
    (ModelNotFound, HTTPStatus.NOT_FOUND),
    (ModelNotReady, HTTPStatus.CONFLICT),
    (ModelDeployed, HTTPStatus.CONFLICT),
    (ExportConflict, HTTPStatus.CONFLICT),
    (ArtifactGone, HTTPStatus.GONE),
    (Unauthorized, HTTPStatus.UNAUTHORIZED),
    (Forbidden, HTTPStatus.FORBIDDEN),
    (NoDeployedModel, HTTPStatus.SERVICE_UNAVAILABLE),
    (FlightDelayError, HTTPStatus.BAD_REQUEST),
)


class ErrorSchema(Schema):
    code = fields.Integer(metadata={"description": "HTTP status code", "example": 404})
    status = fields.String(metadata={"description": "HTTP reason phrase", "example": "Not Found"})
    message = fields.String(metadata={"description": "what went wrong, for people"})
    errors = fields.Dict(
        metadata={"description": "field-level details: field or location -> list of problems"}
    )


class ValidationParser(FlaskParser):
    """Request validation failures are 400, like every other bad input."""

    DEFAULT_VALIDATION_STATUS = HTTPStatus.BAD_REQUEST


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ValidationParser()


class Api(SmorestApi):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(
        self, error: HTTPException
    ) -> tuple[dict[str, Any], int, dict[str, Any]]:
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("errors", {})
        if "message" not in payload:
            payload["message"] = _summary(payload["errors"]) or (error.description or error.name)
        return payload, code, headers


def _summary(errors: Any, path: tuple[str, ...] = ()) -> str:
    """Flatten webargs' nested messages into 'model_type: Must be one of: ...; seed: ...'."""
    if isinstance(errors, dict):
        parts = (_summary(value, (*path, str(key))) for key, value in errors.items())
        return "; ".join(part for part in parts if part)
    text = " ".join(map(str, errors)) if isinstance(errors, list) else str(errors)
    field = ".".join(p for p in path if p not in ("json", "query", "headers"))
    return f"{field}: {text}" if field else text


def error_body(
    status: HTTPStatus, message: str, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "code": int(status),
        "status": status.phrase,
        "message": message,
        "errors": errors or {},
    }


def _details(exc: FlightDelayError) -> dict[str, Any]:
    if isinstance(exc, InvalidFlights):
        return {"flights": [issue.as_dict() for issue in exc.issues]}
    if isinstance(exc, InvalidConfig):
        return {exc.field: [exc.problem]}
    if isinstance(exc, InvalidDataset):
        return {"dataset": [exc.message]}
    if exc.errors:
        return {"detail": exc.errors}
    return {}


def handle_domain_error(exc: FlightDelayError) -> tuple[dict[str, Any], int]:
    status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
    return error_body(status, exc.message, _details(exc)), int(status)


def handle_redis_error(exc: redis.RedisError) -> tuple[dict[str, Any], int]:
    """Redis away: nothing was changed that a retry would not redo; say so, never a 500."""
    status = HTTPStatus.SERVICE_UNAVAILABLE
    message = f"the model registry (Redis) is unreachable ({type(exc).__name__}); retry later"
    return error_body(status, message), int(status)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FlightDelayError, handle_domain_error)
    app.register_error_handler(redis.RedisError, handle_redis_error)


def guarded(blp: SmorestBlueprint, check: Callable[[], None], when: str) -> Any:
    """Run ``check`` (which raises Unauthorized/Forbidden) before anything else, argument parsing
    included, and document the 401 and 403 answers. Put it above ``@blp.arguments``: a caller
    without the right key learns nothing about what a valid request looks like."""

    def decorate(view: Any) -> Any:
        view = blp.alt_response(
            401, schema=ErrorSchema, description=f"missing or unknown X-api-key ({when})"
        )(view)
        view = blp.alt_response(
            403, schema=ErrorSchema, description=f"the key lacks the needed scope ({when})"
        )(view)

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check()
            return view(*args, **kwargs)

        return checked

    return decorate


def requires_scope(blp: SmorestBlueprint, scope: str) -> Any:
    """The request needs a key with ``scope`` (or ``admin``)."""
    return guarded(blp, lambda: require_scope(scope), f"needs the '{scope}' scope")


def requires_configured_scope(blp: SmorestBlueprint, setting: str) -> Any:
    """Reads and predictions: a key is needed only when FLIGHT_DELAY_<setting> names a scope."""
    return guarded(
        blp,
        lambda: require_configured_scope(setting),
        f"only when FLIGHT_DELAY_{setting} names a scope",
    )
