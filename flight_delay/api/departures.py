"""/departures: the live feed of flights that left, read by point-in-time features."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from flight_delay.api.base import Blueprint
from flight_delay.api.schemas import (
    DepartureFeedSchema,
    DeparturesRecordedSchema,
    DeparturesRequestSchema,
)
from flight_delay.api.security import requires_any_scope, requires_configured_scope
from flight_delay.departures import (
    FUTURE_TOLERANCE_MINUTES,
    DepartureFeed,
    departure_event,
    latest_departure,
)
from flight_delay.errors import BadRequest
from flight_delay.features.live import minute_text
from flight_delay.features.values import parse_scheduled

blp = Blueprint(
    "departures", __name__, description="The live feed: flights that left SCL, and when."
)

EXAMPLE = {
    "departures": [
        {
            "Fecha-I": "2017-11-02 07:00:00",
            "Vlo-I": "11",
            "Des-I": "SCIE",
            "Emp-I": "LAN",
            "OPERA": "Grupo LATAM",
            "Fecha-O": "2017-11-02 07:20:00",
        }
    ]
}


def feed() -> DepartureFeed:
    found: DepartureFeed = current_app.extensions["departure_feed"]
    return found


def _text(minute: int | None) -> str | None:
    return None if minute is None else minute_text(minute)


def _event(item: dict[str, Any]) -> dict[str, Any]:
    """A checked departure as the feed keeps it (the schema applied the same rules)."""
    event = departure_event(
        item["scheduled"], item["departed"], item["flight_number"], item["destination"],
        item["carrier"], item.get("airline"),
    )  # fmt: skip
    assert event is not None
    return event


@blp.route("/departures")
class Departures(MethodView):
    @requires_any_scope(blp, "departures", "outcomes")
    @blp.arguments(DeparturesRequestSchema, examples={"one departure": {"value": EXAMPLE}})
    @blp.response(200, DeparturesRecordedSchema)
    @blp.alt_response(503, description="Redis is unreachable; nothing was kept")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record departures

        Needs the `departures` or `outcomes` scope. Each departure is one scheduled flight
        (`Fecha-I`, `Emp-I`, `Vlo-I`, `Des-I`) and when it actually left (`Fecha-O`, at most
        6 h before and 48 h after `Fecha-I`, and not after the airport's clock now: 400
        otherwise, nothing kept). Sending a flight again replaces it; events may
        come in any order. The feed keeps the departures of the 49 hours behind its newest one
        (a departure older than that is counted in `too_old` and not kept) and at most
        FLIGHT_DELAY_DEPARTURES_MAX_EVENTS of them, the oldest going first.
        """
        latest = latest_departure(str(current_app.config["AIRPORT_TIMEZONE"]))
        future = [
            {
                "field": f"departures.{i}.Fecha-O",
                "problem": f"after the airport's clock now ({latest:%Y-%m-%d %H:%M} with "
                f"{FUTURE_TOLERANCE_MINUTES} minutes to spare): a departure is posted once it "
                "has happened",
            }
            for i, item in enumerate(body["departures"])
            if parse_scheduled(item["departed"]) > latest  # type: ignore[operator]
        ]
        if future:
            raise BadRequest(f"{len(future)} departure(s) in the future; nothing was kept", future)
        recorded = feed().record([_event(item) for item in body["departures"]])
        recorded["newest"] = _text(recorded.pop("newest_minute"))
        return recorded

    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, DepartureFeedSchema)
    def get(self) -> dict[str, Any]:
        """Show the departure feed

        How many departures the feed holds, and the actual times of its oldest and newest.
        """
        summary = feed().summary()
        return {
            "size": summary["size"],
            "oldest": _text(summary["oldest_minute"]),
            "newest": _text(summary["newest_minute"]),
        }
