"""Writing logged requests into SQL, idempotently, and reading them back newest first."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    Engine,
    Table,
    and_,
    create_engine,
    delete,
    event,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from flight_delay.data.schema import DATETIME_FORMAT, PREDICTION_FIELDS
from flight_delay.errors import BadRequest
from flight_delay.features.values import clean_code, is_scalar, parse_scheduled
from flight_delay.prediction_log.tables import PredictedFlight, PredictionRequest, ScheduledFlight

_REQUESTS = cast(Table, PredictionRequest.__table__)
_FLIGHTS = cast(Table, PredictedFlight.__table__)
_SCHEDULED = cast(Table, ScheduledFlight.__table__)

#: longest text kept in the matching columns and the caller name
_KEY_TEXT = 40
_CALLER_TEXT = 200
#: longest text kept of a flight's field: every real value is far shorter (Fecha-I 19, OPERA
#: 30 characters); a caller's 7 MB string is kept as its first 64 characters
LOGGED_TEXT = 64
#: request ids deleted per statement when pruning
_PRUNE_BATCH = 500


def logged_flight(flight: Mapping[str, Any]) -> dict[str, Any]:
    """What the log keeps of a flight as sent: the fields a prediction reads, text cut to
    LOGGED_TEXT characters. Anything else a caller adds is not kept."""
    return {field: _logged_value(flight[field]) for field in PREDICTION_FIELDS if field in flight}


def _logged_value(value: Any) -> Any:
    if type(value) is str:
        return value[:LOGGED_TEXT]
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    return str(value)[:LOGGED_TEXT]  # an integer beyond 64 bits, or a stray type


def compact_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A logged request with only what the log keeps of its flights."""
    flights = entry.get("flights")
    if not isinstance(flights, list):
        return dict(entry)
    return {
        **entry,
        "flights": [logged_flight(f) if isinstance(f, Mapping) else f for f in flights],
    }


class InvalidCursor(BadRequest):
    """A pagination cursor this store did not hand out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem, [{"field": "cursor", "problem": problem}])


@dataclass(frozen=True)
class LoggedRows:
    """One logged request as rows: the request, its flights, and the scheduled flights it may
    be the counted copy of (those with a full schedule)."""

    request: dict[str, Any]
    flights: list[dict[str, Any]]
    scheduled: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """Requests newest first, and the cursor of the next page (None on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    if url.startswith("sqlite"):
        # the writer and API readers are separate processes: wait for a lock, do not fail
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=_json_text)
        event.listen(engine, "connect", _write_ahead_log)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_json_text)


def _write_ahead_log(connection: Any, _record: Any) -> None:
    """SQLite in WAL mode: readers (the API) do not block the writer nor it them, and a commit
    syncs one file instead of a rollback journal and the database (synchronous stays FULL:
    a committed batch, acknowledged in Redis, survives a power cut)."""
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _json_text(value: Any) -> str:
    """The JSON columns' serialiser: orjson (the flights are most of the writer's work), the
    standard library for what it refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


class PredictionStore:
    """The prediction log's database.

    Entries are the JSON-safe dicts the API puts on the log stream: ``request_id``,
    ``received_at`` (seconds since the epoch, or ISO 8601 with offset), ``model_id``,
    ``deployment_version``, ``caller``, ``latency_ms``, ``flights`` (as sent), the answers as
    ``probabilities`` (unrounded) and ``threshold`` (a flight is delayed when its probability
    is at least the threshold), or as ``predictions`` (``delay_probability``, ``delayed``), and
    ``warnings`` (``index``, ``field``, ``problem``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> PredictionStore:
        return cls(make_engine(url))

    # -- writing -----------------------------------------------------------------------------
    @staticmethod
    def rows(entry: Mapping[str, Any]) -> LoggedRows:
        """``entry`` as table rows. Raises ValueError (or KeyError/TypeError/AttributeError)
        when it cannot become rows: what the writer sets aside instead of retrying forever."""
        request = _request_row(entry)
        flights = list(_flight_rows(entry))
        keyed = entry.get("keyed") is True
        scheduled = [
            {
                "model_id": request["model_id"],
                "flight_key": key,
                "scheduled_at": row["scheduled_at"],
                "request_id": request["request_id"],
                "position": row["position"],
                "delay_probability": row["delay_probability"],
                "keyed": keyed,
                "received_at": request["received_at"],
            }
            for row in flights
            if (key := schedule_key(row)) is not None
        ]
        return LoggedRows(request, flights, scheduled)

    def write(self, entries: Sequence[Mapping[str, Any]]) -> int:
        """Write ``entries`` in one transaction (see ``write_rows``)."""
        return self.write_rows([self.rows(entry) for entry in entries])

    def write_rows(self, logged: Sequence[LoggedRows]) -> int:
        """Write requests' rows in one transaction; a request already written is skipped (the
        request id decides), so writing the same ones again is harmless. Returns how many
        requests were new."""
        if not logged:
            return 0
        requests = [rows.request for rows in logged]
        flights = [row for rows in logged for row in rows.flights]
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        # Core statements on the tables: the ORM's bulk path costs more than the insert itself
        with self.engine.begin() as connection:
            written = connection.execute(
                insert(_REQUESTS)
                .on_conflict_do_nothing(index_elements=["request_id"])
                .returning(_REQUESTS.c.request_id),  # only what was inserted comes back
                requests,
            ).all()
            if flights:
                connection.execute(
                    insert(_FLIGHTS).on_conflict_do_nothing(
                        index_elements=["request_id", "position"]
                    ),
                    flights,
                )
            scheduled = _counted_copies(row for rows in logged for row in rows.scheduled)
            if scheduled:
                upsert = insert(_SCHEDULED)
                # the first copy counts; a keyed copy replaces an anonymous one (never the
                # other way round), so anonymous traffic cannot choose what a flight counts as
                connection.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["model_id", "flight_key"],
                        set_={
                            name: upsert.excluded[name]
                            for name in (
                                "request_id",
                                "position",
                                "delay_probability",
                                "keyed",
                                "received_at",
                                "scheduled_at",
                            )
                        },
                        where=and_(_SCHEDULED.c.keyed == false(), upsert.excluded.keyed == true()),
                    ),
                    scheduled,
                )
        return len(written)

    # -- retention ---------------------------------------------------------------------------
    def prune(self, older_than: datetime | None, max_flights: int | None) -> tuple[int, int]:
        """Delete the requests received before ``older_than`` and, while more than
        ``max_flights`` flights are kept, the oldest requests, down to nine tenths of it (so that
        a log at its bound is not pruned on every call). Returns (requests, flights) deleted."""
        deleted_requests = deleted_flights = 0
        if older_than is not None:
            cutoff = _utc(older_than)
            while True:
                ids = self._oldest_ids(_REQUESTS.c.received_at < cutoff)
                if not ids:
                    break
                flights = self._delete_requests(ids)
                deleted_requests += len(ids)
                deleted_flights += flights
        if max_flights is not None:
            kept = self.flight_count()
            if kept > max_flights:
                excess = kept - int(max_flights * 0.9)
                while excess > 0:
                    ids = self._oldest_covering(excess)
                    if not ids:
                        break
                    flights = self._delete_requests(ids)
                    excess -= flights
                    deleted_requests += len(ids)
                    deleted_flights += flights
        return deleted_requests, deleted_flights

    def flight_count(self) -> int:
        """Flights kept in the log (the sum of the requests' flight counts)."""
        with self.engine.connect() as connection:
            total = connection.execute(select(func.sum(_REQUESTS.c.flight_count))).scalar()
        return int(total or 0)

    def _oldest_covering(self, flights: int) -> list[str]:
        """The oldest requests (at most a batch) that hold at least ``flights`` flights."""
        query = (
            select(_REQUESTS.c.request_id, _REQUESTS.c.flight_count)
            .order_by(_REQUESTS.c.received_at, _REQUESTS.c.request_id)
            .limit(_PRUNE_BATCH)
        )
        ids, covered = [], 0
        with self.engine.connect() as connection:
            for request_id, count in connection.execute(query):
                if covered >= flights:
                    break
                ids.append(request_id)
                covered += int(count or 0)
        return ids

    def _oldest_ids(self, condition: Any) -> list[str]:
        query = select(_REQUESTS.c.request_id)
        if condition is not None:
            query = query.where(condition)
        query = query.order_by(_REQUESTS.c.received_at, _REQUESTS.c.request_id).limit(_PRUNE_BATCH)
        with self.engine.connect() as connection:
            return list(connection.scalars(query))

    def _delete_requests(self, ids: list[str]) -> int:
        """Delete requests, their flights and the scheduled flights they are the counted copy
        of, in one transaction; the flights deleted."""
        with self.engine.begin() as connection:
            connection.execute(delete(_SCHEDULED).where(_SCHEDULED.c.request_id.in_(ids)))
            flights = connection.execute(
                delete(_FLIGHTS).where(_FLIGHTS.c.request_id.in_(ids))
            ).rowcount
            connection.execute(delete(_REQUESTS).where(_REQUESTS.c.request_id.in_(ids)))
        return int(flights or 0)

    # -- reading -----------------------------------------------------------------------------
    def get(self, request_id: str) -> dict[str, Any] | None:
        """One logged request with its flights, or None."""
        with Session(self.engine) as session:
            request = session.get(PredictionRequest, request_id)
            if request is None:
                return None
            flights = session.scalars(
                select(PredictedFlight)
                .where(PredictedFlight.request_id == request_id)
                .order_by(PredictedFlight.position)
            ).all()
            shown = [_flight_dict(f) for f in flights]
            # outcomes given by schedule are the flight's (its scheduled-flight row), not each
            # logged copy's
            keys: dict[str, list[dict[str, Any]]] = {}
            for f, item in zip(flights, shown, strict=True):
                key = schedule_key(_key_columns(f))
                if item["delay_minutes"] is None and key is not None:
                    keys.setdefault(key, []).append(item)
            for chunk in _chunks(list(keys), 500):
                found = session.execute(
                    select(
                        _SCHEDULED.c.flight_key,
                        _SCHEDULED.c.departed_at,
                        _SCHEDULED.c.delay_minutes,
                    ).where(
                        _SCHEDULED.c.model_id == request.model_id,
                        _SCHEDULED.c.flight_key.in_(chunk),
                        _SCHEDULED.c.delay_minutes.is_not(None),
                    )
                )
                for key, departed, minutes in found:
                    for item in keys[key]:
                        item.update(departed_at=departed, delay_minutes=minutes)
            return {**_request_dict(request), "flights": shown}

    def flights_of(
        self,
        model_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50_000,
    ) -> list[dict[str, Any]]:
        """The flights (as sent) of ``model_id``'s requests received in [since, until), newest
        request first, at most ``limit``."""
        query = (
            select(PredictedFlight.flight)
            .join(PredictionRequest, PredictionRequest.request_id == PredictedFlight.request_id)
            .where(PredictionRequest.model_id == model_id)
        )
        if since is not None:
            query = query.where(PredictionRequest.received_at >= _utc(since))
        if until is not None:
            query = query.where(PredictionRequest.received_at < _utc(until))
        query = query.order_by(
            PredictionRequest.received_at.desc(), PredictedFlight.position
        ).limit(limit)
        with self.engine.connect() as connection:
            return [flight for flight in connection.scalars(query) if isinstance(flight, dict)]

    def flights_with_outcomes(self, limit: int = 50_000) -> list[tuple[dict[str, Any], float]]:
        """Logged flights (as kept) that have an outcome, each scheduled flight once whichever
        models answered it and however often, with its delay in minutes: the newest ``limit``
        by scheduled time. What a scheduled run re-predicts with both its models.

        Of a flight's rows (one per model), the counted copy of a keyed caller comes first, then
        the earliest: the copy re-predicted is never one an anonymous caller chose over a keyed
        one."""
        rank = (
            func.row_number()
            .over(
                partition_by=_SCHEDULED.c.flight_key,
                order_by=(
                    _SCHEDULED.c.keyed.desc(),
                    _SCHEDULED.c.received_at,
                    _SCHEDULED.c.model_id,
                ),
            )
            .label("rank")
        )
        ranked = (
            select(
                _SCHEDULED.c.request_id,
                _SCHEDULED.c.position,
                _SCHEDULED.c.delay_minutes,
                _SCHEDULED.c.scheduled_at,
                rank,
            )
            .where(_SCHEDULED.c.delay_minutes.is_not(None))
            .subquery()
        )
        query = (
            select(_FLIGHTS.c.flight, ranked.c.delay_minutes)
            .join(
                ranked,
                and_(
                    _FLIGHTS.c.request_id == ranked.c.request_id,
                    _FLIGHTS.c.position == ranked.c.position,
                ),
            )
            .where(ranked.c.rank == 1)
            .order_by(ranked.c.scheduled_at.desc(), ranked.c.request_id, ranked.c.position)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [
                (flight, float(minutes))
                for flight, minutes in connection.execute(query)
                if isinstance(flight, dict) and minutes is not None
            ]

    def list(
        self,
        model_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Logged requests newest first (``since`` <= received_at < ``until``), ``limit`` per
        page; pass the returned ``next_cursor`` for the next page.

        Raises:
            InvalidCursor: ``cursor`` was not handed out by this store.
        """
        query = select(PredictionRequest)
        if model_id is not None:
            query = query.where(PredictionRequest.model_id == model_id)
        if since is not None:
            query = query.where(PredictionRequest.received_at >= _utc(since))
        if until is not None:
            query = query.where(PredictionRequest.received_at < _utc(until))
        if cursor is not None:
            at, last_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    PredictionRequest.received_at < at,
                    and_(
                        PredictionRequest.received_at == at, PredictionRequest.request_id < last_id
                    ),
                )
            )
        query = query.order_by(
            PredictionRequest.received_at.desc(), PredictionRequest.request_id.desc()
        ).limit(limit + 1)
        with Session(self.engine) as session:
            rows = session.scalars(query).all()
        page = rows[:limit]
        next_cursor = (
            _encode_cursor(page[-1].received_at, page[-1].request_id) if len(rows) > limit else None
        )
        return Page([_request_dict(r) for r in page], next_cursor)


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC. Stored as naive UTC, which SQLite and
    PostgreSQL compare alike."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text.strip()[:limit] or None


def _request_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "request_id": str(entry["request_id"]),
        "received_at": _received_at(entry["received_at"]),
        "model_id": str(entry["model_id"]),
        "deployment_version": int(entry["deployment_version"]),
        "caller": _text(entry.get("caller"), _CALLER_TEXT) or "",
        "latency_ms": float(entry["latency_ms"]),
        "flight_count": len(entry["flights"]),
    }


def schedule_key(columns: Mapping[str, Any]) -> str | None:
    """A scheduled flight's key from its matching columns (``scheduled_at``,
    ``flight_number``, ``destination``), or None when one of them is missing."""
    parts = (columns.get("scheduled_at"), columns.get("flight_number"), columns.get("destination"))
    return "|".join(parts) if all(parts) else None  # type: ignore[arg-type]


def request_key(request_id: str, position: int) -> str:
    """The key of a flight logged without a full schedule: its place in its request."""
    return f"request:{request_id}:{position}"


def _key_columns(flight: PredictedFlight) -> dict[str, str | None]:
    return {
        "scheduled_at": flight.scheduled_at,
        "flight_number": flight.flight_number,
        "destination": flight.destination,
    }


def _counted_copies(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, flight) of a batch, the copy that counts as the table keeps it (the
    first, or the first keyed one): one statement may not touch a row twice."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        place = (row["model_id"], row["flight_key"])
        found = kept.get(place)
        if found is None or (row["keyed"] and not found["keyed"]):
            kept[place] = row
    return list(kept.values())


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def flight_key(flight: Mapping[str, Any]) -> dict[str, str | None]:
    """The columns outcomes match flights by: Fecha-I as ``YYYY-MM-DD HH:MM:SS`` when it is a
    time (else its text), Vlo-I and Des-I as the features read them (``800`` and ``"800"``
    alike, ``scie`` as ``SCIE``)."""
    scheduled = flight.get("Fecha-I")
    parsed = parse_scheduled(scheduled)
    return {
        "scheduled_at": parsed.strftime(DATETIME_FORMAT) if parsed else _text(scheduled, _KEY_TEXT),
        "flight_number": _key_text(flight.get("Vlo-I")),
        "destination": _key_text(flight.get("Des-I")),
    }


def _key_text(value: Any) -> str | None:
    text = clean_code(value) if is_scalar(value) else None
    return text[:_KEY_TEXT] if text else None


def _received_at(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"received_at {value!r} is not a time: {exc}") from None
    return _utc(datetime.fromisoformat(str(value)))


def _answers(entry: Mapping[str, Any]) -> list[tuple[float, bool]]:
    """(probability, delayed) per flight, from either form of an entry's answers."""
    if "probabilities" in entry:
        threshold = float(entry["threshold"])
        return [(float(p), float(p) >= threshold) for p in entry["probabilities"]]
    return [(float(p["delay_probability"]), bool(p["delayed"])) for p in entry["predictions"]]


def _flight_rows(entry: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    warnings: dict[int, list[dict[str, Any]]] = {}
    for warning in entry.get("warnings", []):
        warnings.setdefault(int(warning["index"]), []).append(
            {"field": warning["field"], "problem": warning["problem"]}
        )
    request_id = str(entry["request_id"])
    for position, (flight, (probability, delayed)) in enumerate(
        zip(entry["flights"], _answers(entry), strict=True)
    ):
        yield {
            "request_id": request_id,
            "position": position,
            "flight": logged_flight(flight),
            "delay_probability": probability,
            "delayed": delayed,
            "warnings": warnings.get(position, []),
            **flight_key(flight),
        }


def _request_dict(request: PredictionRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "received_at": _aware(request.received_at).isoformat(),
        "model_id": request.model_id,
        "deployment_version": request.deployment_version,
        "caller": request.caller,
        "latency_ms": request.latency_ms,
        "flight_count": request.flight_count,
    }


def _flight_dict(flight: PredictedFlight) -> dict[str, Any]:
    return {
        "index": flight.position,
        "flight": flight.flight,
        "delay_probability": flight.delay_probability,
        "delayed": flight.delayed,
        "warnings": flight.warnings,
        "departed_at": flight.departed_at,
        "delay_minutes": flight.delay_minutes,
    }


def _encode_cursor(at: datetime, request_id: str) -> str:
    text = f"{_utc(at).isoformat()}|{request_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, request_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        return _utc(datetime.fromisoformat(at)), request_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("not a cursor of this listing; start again without one") from None
