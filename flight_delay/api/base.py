"""The API's base classes: request parsing (JSON and validation, every failure a 400), the
smorest Blueprint and Api with the one error body."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NoReturn

import orjson
from flask import Request, current_app
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema
from marshmallow.utils import missing
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from flight_delay.api.errors import ErrorSchema, flatten_messages


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
