"""Domain exceptions raised by the library.

Each carries structured details (``errors``) so callers can point at the offending file, row or
field, and the HTTP status it answers with (``http_status``: mlflow's error-code idea), so that
the API maps every error in one place without knowing the domains; the CLI prints the message.
An error that declares no status is a bug of ours and answers 500, never blames the caller.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def scrub_paths(text: str, roots: Mapping[str, str | os.PathLike[str]]) -> str:
    """``text`` with each configured root's location replaced by its setting name
    (``/srv/fd/models/x`` -> ``<MODEL_DIR>/x``): messages shown to API callers never reveal
    where files live on the server."""
    for name, root in roots.items():
        given = str(root)
        for form in {str(Path(given).resolve()), str(Path(given).absolute())}:
            if form not in (".", "/"):
                text = text.replace(form, f"<{name}>")
        if given and not Path(given).is_absolute() and given not in (".", "./"):
            # a relative root ("models") only where it starts a path ("models/x"), never inside
            # other words or URLs ("POST /models" stays as it is)
            pattern = r"(?<![\w/.-])" + re.escape(given.rstrip("/")) + r"(?=/)"
            text = re.sub(pattern, f"<{name}>", text)
    return text


class FlightDelayError(Exception):
    """Base class of every error this package raises on purpose."""

    #: the HTTP status the API answers with; every subclass a caller can cause says its own
    http_status: int = 500

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[dict[str, Any]] = list(errors or [])

    def __str__(self) -> str:
        return self.message

    def details(self) -> list[dict[str, Any]]:
        """The error body's ``errors``: one entry per problem (field, problem, location)."""
        shown = []
        for entry in self.errors:
            detail = {
                "field": str(entry.get("field", "")),
                "problem": str(entry.get("problem", "")),
            }
            if entry.get("location"):
                detail["location"] = str(entry["location"])
            shown.append(detail)
        return shown


class BadRequest(FlightDelayError):
    """The request itself is wrong: a field out of range, two that exclude each other."""

    http_status = 400


class Conflict(FlightDelayError):
    """The request is valid but the state of what it names does not allow it now."""

    http_status = 409


class NotFound(FlightDelayError):
    """What the request names does not exist (or no longer)."""

    http_status = 404


class Unavailable(FlightDelayError):
    """A part of the service this request needs is away; retry later."""

    http_status = 503


class InvalidDataset(BadRequest):
    """A flight file cannot be used: unreadable, wrong shape or bad values.

    Attributes:
        file: the file that failed (a path, or ``"<dataframe>"`` for in-memory data).
        column: the column at fault, when there is one.
        rows: example locations (CSV line numbers, or 1-based row numbers for other inputs).
    """

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        column: str | None = None,
        rows: Sequence[int] = (),
        location: str = "line",
    ) -> None:
        where = f"{file}"
        if column:
            where += f", column '{column}'"
        if rows:
            label = location + ("s" if len(rows) > 1 else "")
            where += f", {label} " + ", ".join(str(r) for r in rows)
        super().__init__(
            f"{where}: {problem}",
            [{"file": file, "column": column, "rows": list(rows), "problem": problem}],
        )
        self.file = file
        self.column = column
        self.rows = list(rows)
        self.problem = problem

    def details(self) -> list[dict[str, Any]]:
        return [{"location": "json", "field": "dataset", "problem": self.message}]


class InvalidConfig(BadRequest):
    """A training configuration or a hyperparameter is not acceptable."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", [{"field": field, "problem": problem}])
        self.field = field
        self.problem = problem

    def details(self) -> list[dict[str, Any]]:
        return [{"location": "json", "field": self.field, "problem": self.problem}]


class UnknownModelFamily(InvalidConfig):
    """The requested model family is not registered."""


@dataclass(frozen=True)
class FlightIssue:
    """One problem with one field of one flight submitted for prediction."""

    index: int
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "problem": self.problem}


class InvalidFlights(BadRequest):
    """Flights submitted for prediction do not fit the model's input schema."""

    #: how many issues the message spells out; all of them are in ``errors``
    MESSAGE_LIMIT = 10

    def __init__(self, issues: Sequence[FlightIssue]) -> None:
        shown = "; ".join(
            f"flight {i.index}, {i.field}: {i.problem}" for i in issues[: self.MESSAGE_LIMIT]
        )
        more = len(issues) - self.MESSAGE_LIMIT
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(
            f"{len(issues)} invalid field(s) in the submitted flights: {shown}",
            [i.as_dict() for i in issues],
        )
        self.issues = list(issues)

    def details(self) -> list[dict[str, Any]]:
        return [
            {"location": "json", "field": i.field, "index": i.index, "problem": i.problem}
            for i in self.issues
        ]


class ModelArtifactError(FlightDelayError):
    """A saved model cannot be loaded: missing, corrupt or built with incompatible libraries.
    (The API turns it into a 409 or 410 where it meets one; anywhere else it is ours: 500.)"""


class ExplanationUnavailable(BadRequest):
    """Explanations were asked of a model family that does not provide them."""

    def __init__(self, model_type: str, why: str | None = None) -> None:
        super().__init__(
            why or f"explanations need a LightGBM model; this one is {model_type}",
            [{"field": "explain", "problem": f"not available for {model_type} models"}],
        )
