"""One error shape for the whole API, and the one place domain exceptions become HTTP statuses.

Every error body is ``{"code": <HTTP status>, "status": "<reason>", "message": "...",
"errors": {<field or location>: [details]}}``.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NoReturn

import orjson
import redis
from flask import Flask, Request, current_app
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, fields
from marshmallow.utils import missing
from sqlalchemy.exc import SQLAlchemyError
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from flight_delay.api.docs import KEY_SETTING
from flight_delay.auth import Forbidden, Unauthorized, require_configured_scope, require_scope
from flight_delay.errors import (
    FlightDelayError,
    InvalidConfig,
    InvalidDataset,
    InvalidFlights,
    scrub_paths,
)
from flight_delay.prediction_log.store import InvalidCursor
from flight_delay.registry import (
    ModelDeployed,
    ModelNotFound,
    ModelNotReady,
    TooManyPendingJobs,
)
from flight_delay.scheduling.store import (
    RunInProgress,
    RunNotFound,
    ScheduleNotFound,
    TooManySchedules,
)
from flight_delay.serving import NoDeployedModel
from flight_delay.tasks.analysis import TooManyReports


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


class LoggedRequestNotFound(FlightDelayError):
    """A request id the prediction log does not hold (yet: the writer adds entries within about
    a second of the answer while it runs)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request {request_id} is not in the prediction log (an answer reaches it within "
            "about a second while the log writer runs)",
            [{"field": "request_id", "problem": "not in the log"}],
        )


class PredictionLogUnavailable(FlightDelayError):
    """The prediction log's database cannot be read."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the prediction log's database is unavailable ({reason}); retry later",
            [{"field": "prediction_log", "problem": reason}],
        )


def prediction_log_call(call: Callable[[], Any]) -> Any:
    """A call on the prediction log's database: its failures are a 503, a bad cursor a 400."""
    try:
        return call()
    except InvalidCursor as exc:
        raise FlightDelayError(str(exc), [{"field": "cursor", "problem": str(exc)}]) from exc
    except SQLAlchemyError as exc:
        raise PredictionLogUnavailable(type(exc).__name__) from exc


class ComparisonNotFound(FlightDelayError):
    def __init__(self, comparison_id: str) -> None:
        super().__init__(
            f"no comparison {comparison_id} (comparisons are kept for "
            "FLIGHT_DELAY_COMPARISON_KEEP_SECONDS)",
            [{"field": "comparison_id", "problem": "not found"}],
        )


class DriftUnavailable(FlightDelayError):
    """A drift report that cannot be made (the worker's reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"no drift report: {reason}", [{"field": "drift", "problem": reason[:300]}]
        )


# most specific first
STATUS_OF: tuple[tuple[type[FlightDelayError], HTTPStatus], ...] = (
    (TooManyReports, HTTPStatus.TOO_MANY_REQUESTS),
    (TooManyPendingJobs, HTTPStatus.TOO_MANY_REQUESTS),
    (ModelNotFound, HTTPStatus.NOT_FOUND),
    (LoggedRequestNotFound, HTTPStatus.NOT_FOUND),
    (ComparisonNotFound, HTTPStatus.NOT_FOUND),
    (ScheduleNotFound, HTTPStatus.NOT_FOUND),
    (RunNotFound, HTTPStatus.NOT_FOUND),
    (RunInProgress, HTTPStatus.CONFLICT),
    (TooManySchedules, HTTPStatus.CONFLICT),
    (PredictionLogUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
    (ModelNotReady, HTTPStatus.CONFLICT),
    (DriftUnavailable, HTTPStatus.CONFLICT),
    (ModelDeployed, HTTPStatus.CONFLICT),
    (ExportConflict, HTTPStatus.CONFLICT),
    (ArtifactGone, HTTPStatus.GONE),
    (Unauthorized, HTTPStatus.UNAUTHORIZED),
    (Forbidden, HTTPStatus.FORBIDDEN),
    (NoDeployedModel, HTTPStatus.SERVICE_UNAVAILABLE),
    (FlightDelayError, HTTPStatus.BAD_REQUEST),
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


class ValidationParser(FlaskParser):
    """Request validation failures are 400, like every other bad input; an unknown query
    parameter is an error too (the schemas say RAISE; webargs would drop them for query)."""

    DEFAULT_VALIDATION_STATUS = HTTPStatus.BAD_REQUEST
    DEFAULT_UNKNOWN_BY_LOCATION = {}  # noqa: RUF012 - webargs' own class attribute

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._empty_query: dict[int, tuple[Schema, Any]] = {}

    def parse(self, argmap: Any, req: Request | None = None, **kwargs: Any) -> Any:
        """As webargs parses, except that an empty query string's arguments (the schema's
        defaults, which never change) are computed once per schema instance and copied: they
        cost ~20 µs of a ~200 µs single-flight /predict. Any query string, a schema class or a
        schema that fails on no arguments takes webargs' way."""
        location = kwargs.get("location")
        if location in ("query", "querystring") and isinstance(argmap, Schema):
            request = req if req is not None else self.get_default_request()
            if not request.query_string:
                known = self._empty_query.get(id(argmap))
                if known is None:
                    parsed = super().parse(argmap, request, **kwargs)
                    # the schema is kept with its result, so its id is never reused
                    known = self._empty_query.setdefault(id(argmap), (argmap, parsed))
                return copy.deepcopy(known[1])
        return super().parse(argmap, req, **kwargs)

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return missing
        return parse_request_json(req.get_data(cache=True))

    def _handle_invalid_json_error(
        self, error: Any, req: Request, *args: Any, **kwargs: Any
    ) -> NoReturn:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        abort(400, exc=error, messages={"json": {"": [f"invalid JSON body: {reason}"]}})


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


# 19 digits in a row: maybe an integer beyond 64 bits, which orjson reads as a float. Found by
# mapping every digit to "0" and searching for the run: ~1 ms for 1.3 MB, where a regular
# expression takes ~11 ms
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def parse_request_json(data: bytes | str) -> Any:
    """Standard JSON only (no NaN or Infinity), and nesting bounded by the interpreter's recursion
    limit turned into a 400 instead of a crash.

    orjson reads the body (a 10,000-flight batch in ~2 ms instead of ~7 ms); whatever it refuses,
    and any body with a run of 19 digits, is read by the standard library, whose reading is the
    contract: the same documents are accepted with the same values (integers of any size stay
    integers) and refused with the same messages.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.translate(_DIGITS_TO_ZERO).find(_LONG_DIGITS) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library decides, and words the error
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        # a non-empty doc: webargs reads an empty one as "no body"
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", "<body>", exc.start) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "<body>", 0) from None


def _documentation_only(decorate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A flask-smorest decorator that only documents, without its runtime layer: the view
    itself is returned, carrying the documentation the decorator wrote.

    ``alt_response`` and ``doc`` wrap the view in a function that only calls it through
    ``current_app.ensure_sync``: five such layers on ``POST /predict`` (401, 403, 400, 503 and
    the security requirement) cost ~12 µs of every request and do nothing else.
    """

    def decorator(view: Any) -> Any:
        documented = decorate(view)
        view._apidoc = documented._apidoc
        return view

    return decorator


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ValidationParser()

    def alt_response(
        self, status_code: int | str, *args: Any, **kwargs: Any
    ) -> Callable[[Any], Any]:
        # every error answer has the one error body: say so, or generated clients parse None
        if int(status_code) >= 400 and not args and "response" not in kwargs:
            kwargs.setdefault("schema", ErrorSchema)
        return _documentation_only(super().alt_response(status_code, *args, **kwargs))

    @staticmethod
    def doc(**kwargs: Any) -> Callable[[Any], Any]:
        return _documentation_only(SmorestBlueprint.doc(**kwargs))


class Api(SmorestApi):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        # a path that belongs to the dashboard gets its HTML page (its 404 and 405 included)
        page = current_app.extensions.get("html_error_page")
        if page is not None:
            shown = page(error)
            if shown is not None:
                return shown
        payload, code, headers = super().handle_http_exception(error)
        raw = payload.get("errors")
        details = flatten_messages(raw) if isinstance(raw, dict) else []
        payload["errors"] = details
        if "message" not in payload:
            payload["message"] = "; ".join(
                f"{d['field']}: {d['problem']}" if d.get("field") else d["problem"] for d in details
            ) or (error.description or error.name)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(sorted(error.valid_methods))}
        return payload, code, headers


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


def _details(exc: FlightDelayError) -> list[dict[str, Any]]:
    if isinstance(exc, InvalidFlights):
        return [
            {"location": "json", "field": i.field, "index": i.index, "problem": i.problem}
            for i in exc.issues
        ]
    if isinstance(exc, InvalidConfig):
        return [{"location": "json", "field": exc.field, "problem": exc.problem}]
    if isinstance(exc, InvalidDataset):
        return [{"location": "json", "field": "dataset", "problem": exc.message}]
    details = []
    for entry in exc.errors:
        detail = {"field": str(entry.get("field", "")), "problem": str(entry.get("problem", ""))}
        if entry.get("location"):
            detail["location"] = str(entry["location"])
        details.append(detail)
    return details


def handle_domain_error(exc: FlightDelayError) -> tuple[dict[str, Any], int, dict[str, str]]:
    status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
    # library messages name files for CLI users; API callers never learn server locations
    roots = {name: current_app.config[name] for name in ("MODEL_DIR", "DATA_ROOT", "EXPORT_DIR")}
    details = [
        {**d, "problem": scrub_paths(d["problem"], roots)} if "problem" in d else d
        for d in _details(exc)
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
    return error_body(status, message), int(status)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FlightDelayError, handle_domain_error)
    app.register_error_handler(redis.RedisError, handle_redis_error)


#: the OpenAPI security schemes of the key (registered by create_app): the X-api-key header,
#: or ``Authorization: Bearer <key>`` (what generated clients send by default); either will do
SECURITY_SCHEME = "ApiKeyAuth"
BEARER_SCHEME = "BearerAuth"
KEY_REQUIREMENT: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}, {BEARER_SCHEME: []}]


def guarded(
    blp: SmorestBlueprint, check: Callable[[], None], when: str, setting: str | None = None
) -> Any:
    """Run ``check`` (which raises Unauthorized/Forbidden) before anything else, argument parsing
    included, and document the 401 and 403 answers and the API-key security requirement (so the
    docs page's "Authorize" sends the key). Put it above ``@blp.arguments``: a caller without the
    right key learns nothing about what a valid request looks like.

    Args:
        setting: the operation is open unless this setting names a scope.
    """

    def decorate(view: Any) -> Any:
        if setting is None:
            view = blp.doc(security=KEY_REQUIREMENT)(view)
        else:  # finish_document writes what this configuration asks
            view = blp.doc(security=KEY_REQUIREMENT, **{KEY_SETTING: setting})(view)
        view = blp.alt_response(
            401, schema=ErrorSchema, description=f"missing or unknown key ({when})"
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


def requires_scope(blp: SmorestBlueprint, *scopes: str) -> Any:
    """The request needs a key with every one of ``scopes`` (or ``admin``)."""

    def check() -> None:
        for scope in scopes:
            require_scope(scope)

    needs = " and ".join(f"'{scope}'" for scope in scopes)
    return guarded(blp, check, f"needs the {needs} scope{'s' if len(scopes) > 1 else ''}")


def requires_configured_scope(blp: SmorestBlueprint, setting: str) -> Any:
    """Reads and predictions: a key is needed only when FLIGHT_DELAY_<setting> names a scope."""
    return guarded(
        blp,
        lambda: require_configured_scope(setting),
        f"only when FLIGHT_DELAY_{setting} names a scope",
        setting=setting,
    )
