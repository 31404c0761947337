"""Outcomes of logged flights (when they actually left) and the live performance they give.

An outcome names a flight either by the request that predicted it (``request_id`` and the
flight's ``index`` in it) or by its schedule (``Fecha-I``, ``Vlo-I`` and ``Des-I``), with
``Fecha-O``, its actual departure. The delay is ``Fecha-O - Fecha-I`` in minutes and the flight
counts as delayed beyond 15, as in training. Recording again replaces the earlier outcome.

Each scheduled flight counts once per model (the scheduled_flights table): an outcome by schedule
is kept on that flight's row of every model that predicted it, never on each logged copy, so
10,000 copies of one flight sent by anyone weigh as one flight and cost one row to label. Live
performance scores a model's counted predictions that have an outcome with the metrics of the
offline evaluation (flight_delay.ml.evaluation), over the whole window and per ISO week of the
scheduled departure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, and_, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from flight_delay.data.schema import DATETIME_FORMAT, DELAY_THRESHOLD_MINUTES
from flight_delay.departures import departure_event
from flight_delay.features.values import parse_scheduled
from flight_delay.ml.evaluation import expected_calibration_error
from flight_delay.prediction_log.store import (
    PredictionStore,
    flight_key,
    request_key,
    schedule_key,
)
from flight_delay.prediction_log.tables import PredictedFlight, PredictionRequest, ScheduledFlight

_FLIGHTS = cast(Table, PredictedFlight.__table__)
_REQUESTS = cast(Table, PredictionRequest.__table__)
_SCHEDULED = cast(Table, ScheduledFlight.__table__)
#: most flights with outcomes live performance reads (the newest by scheduled time)
MAX_SCORED_FLIGHTS = 500_000


@dataclass(frozen=True)
class Outcome:
    """One flight's actual departure, and which logged flight(s) it belongs to."""

    departed_at: datetime
    request_id: str | None = None
    index: int | None = None
    flight: dict[str, Any] | None = None  # Fecha-I, Vlo-I, Des-I, and Emp-I, OPERA if given

    @property
    def by_request(self) -> bool:
        return self.request_id is not None


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: outcomes matched, distinct scheduled flights given an outcome, and
    the positions (in the posted list) of outcomes no logged flight matched."""

    matched: int
    flights_updated: int
    unmatched: list[int]
    #: the outcomes that are departures the live feed can keep (see departures.departure_event):
    #: a logged flight named by request id, or a flight named with its Emp-I
    departures: list[dict[str, Any]] = field(default_factory=list)


def record(
    store: PredictionStore, outcomes: Sequence[Outcome], latest: datetime | None = None
) -> Recorded:
    """Attach ``outcomes`` to the flights they name, in one transaction, with work bounded by
    the outcomes posted: an outcome by schedule is the flight's, kept once per model that
    predicted it (not on every logged copy, however many a caller sent); an outcome by request
    id is also kept on the copy it names, which becomes the copy that counts for its model."""
    now = datetime.now(UTC).replace(tzinfo=None)
    # by schedule: a departure whether or not a logged flight matches (it left all the same)
    departures = [_departure(o.flight or {}, o, latest) for o in outcomes if not o.by_request]
    unmatched: list[int] = []
    flights: set[tuple[str, str]] = set()  # (model, flight key) given an outcome
    matched = 0
    with store.engine.begin() as connection:
        by_request = [(i, o) for i, o in enumerate(outcomes) if o.by_request]
        found: dict[tuple[str, int], Any] = {}
        for chunk in _chunks(by_request, 500):
            chunk_rows = connection.execute(
                select(
                    _FLIGHTS.c.request_id,
                    _FLIGHTS.c.position,
                    _FLIGHTS.c.scheduled_at,
                    _FLIGHTS.c.flight_number,
                    _FLIGHTS.c.destination,
                    _FLIGHTS.c.delay_probability,
                    _FLIGHTS.c.flight,
                    _REQUESTS.c.model_id,
                    _REQUESTS.c.received_at,
                )
                .join(_REQUESTS, _REQUESTS.c.request_id == _FLIGHTS.c.request_id)
                .where(
                    tuple_(_FLIGHTS.c.request_id, _FLIGHTS.c.position).in_(
                        [(o.request_id, o.index) for _, o in chunk]
                    )
                )
            )
            found.update({(r.request_id, r.position): r for r in chunk_rows})
        named: dict[tuple[str, str], dict[str, Any]] = {}
        copies: list[dict[str, Any]] = []
        for position, outcome in by_request:
            place = (str(outcome.request_id), int(outcome.index or 0))
            row = found.get(place)
            if row is None:
                unmatched.append(position)
                continue
            matched += 1
            values = _outcome_values(row.scheduled_at, outcome, now)
            logged = row.flight if isinstance(row.flight, dict) else {}
            departures.append(_departure({**logged, "Fecha-I": row.scheduled_at}, outcome, latest))
            copies.append({"at_request": place[0], "at_position": place[1], **values})
            key = schedule_key(row._mapping) or request_key(*place)
            named[(row.model_id, key)] = {
                "model_id": row.model_id,
                "flight_key": key,
                "scheduled_at": row.scheduled_at,
                "request_id": place[0],
                "position": place[1],
                "delay_probability": row.delay_probability,
                "keyed": True,  # the outcomes key holder named this copy
                "received_at": row.received_at,
                **values,
            }
        if copies:
            connection.execute(
                update(_FLIGHTS)
                .where(
                    and_(
                        _FLIGHTS.c.request_id == bindparam("at_request"),
                        _FLIGHTS.c.position == bindparam("at_position"),
                    )
                )
                .values(
                    departed_at=bindparam("departed"),
                    delay_minutes=bindparam("minutes"),
                    outcome_at=bindparam("recorded"),
                ),
                copies,
            )
        if named:
            rows = [
                {
                    **{
                        k: v for k, v in row.items() if k not in ("departed", "minutes", "recorded")
                    },
                    "departed_at": row["departed"],
                    "delay_minutes": row["minutes"],
                    "outcome_at": row["recorded"],
                }
                for row in named.values()
            ]
            dialect = postgresql if store.engine.dialect.name == "postgresql" else sqlite
            upsert = dialect.insert(_SCHEDULED)
            connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=["model_id", "flight_key"],
                    set_={
                        name: upsert.excluded[name]
                        for name in rows[0]
                        if name not in ("model_id", "flight_key")
                    },
                ),
                rows,
            )
            flights.update(named)
        # by schedule, batched: a key with an empty part matches nothing (never "every flight
        # without a number")
        by_schedule = [
            (i, o, schedule_key(flight_key(o.flight or {})))
            for i, o in enumerate(outcomes)
            if not o.by_request
        ]
        wanted = list({key for _, _, key in by_schedule if key is not None})
        known: dict[str, list[tuple[str, str | None]]] = {}
        for key_chunk in _chunks(wanted, 500):
            for key, model_id, scheduled_text in connection.execute(
                select(
                    _SCHEDULED.c.flight_key, _SCHEDULED.c.model_id, _SCHEDULED.c.scheduled_at
                ).where(_SCHEDULED.c.flight_key.in_(key_chunk))
            ):
                known.setdefault(key, []).append((model_id, scheduled_text))
        updates: dict[str, dict[str, Any]] = {}
        for position, outcome, schedule in by_schedule:
            if schedule is None or schedule not in known:
                unmatched.append(position)
                continue
            matched += 1
            scheduled_text = known[schedule][0][1]
            updates[schedule] = {
                "at_key": schedule,
                **_outcome_values(scheduled_text, outcome, now),
            }
            flights.update((model_id, schedule) for model_id, _ in known[schedule])
        if updates:
            connection.execute(
                update(_SCHEDULED)
                .where(_SCHEDULED.c.flight_key == bindparam("at_key"))
                .values(
                    departed_at=bindparam("departed"),
                    delay_minutes=bindparam("minutes"),
                    outcome_at=bindparam("recorded"),
                ),
                list(updates.values()),
            )
    return Recorded(
        matched,
        len({key for _, key in flights}),
        sorted(unmatched),
        [event for event in departures if event is not None],
    )


def _departure(
    flight: Mapping[str, Any], outcome: Outcome, latest: datetime | None
) -> dict[str, Any] | None:
    return departure_event(
        flight.get("Fecha-I"),
        outcome.departed_at,
        flight.get("Vlo-I"),
        flight.get("Des-I"),
        flight.get("Emp-I"),
        flight.get("OPERA"),
        latest,
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _outcome_values(scheduled_text: str | None, outcome: Outcome, now: datetime) -> dict[str, Any]:
    scheduled = parse_scheduled(scheduled_text)
    minutes = (
        (outcome.departed_at - scheduled).total_seconds() / 60.0 if scheduled is not None else None
    )
    return {
        "departed": outcome.departed_at.strftime(DATETIME_FORMAT),
        "minutes": minutes,
        "recorded": now,
    }


# -- live performance ----------------------------------------------------------------------------
def scored_flights(
    store: PredictionStore,
    model_id: str,
    since: datetime | None,
    until: datetime | None,
    limit: int = MAX_SCORED_FLIGHTS,
) -> tuple[np.ndarray, np.ndarray, list[datetime]]:
    """The model's counted predictions that have an outcome (each scheduled flight once),
    their labels and scheduled times, for flights scheduled in [since, until): the newest
    ``limit`` by scheduled time."""
    query = (
        select(
            _SCHEDULED.c.delay_probability, _SCHEDULED.c.delay_minutes, _SCHEDULED.c.scheduled_at
        )
        .where(_SCHEDULED.c.model_id == model_id, _SCHEDULED.c.delay_minutes.is_not(None))
        .order_by(_SCHEDULED.c.scheduled_at.desc())
        .limit(limit)
    )
    probabilities, labels, times = [], [], []
    with store.engine.connect() as connection:
        for probability, minutes, scheduled_text in connection.execute(query):
            scheduled = parse_scheduled(scheduled_text)
            if scheduled is None or minutes is None:
                continue
            if (since and scheduled < since) or (until and scheduled >= until):
                continue
            probabilities.append(probability)
            labels.append(int(minutes > DELAY_THRESHOLD_MINUTES))
            times.append(scheduled)
    return np.asarray(probabilities, dtype=float), np.asarray(labels, dtype=int), times


def performance(
    store: PredictionStore,
    model_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Live metrics of ``model_id`` over its logged flights with outcomes, overall and per
    ISO week of the scheduled departure (Monday to Sunday)."""
    probabilities, labels, times = scored_flights(store, model_id, since, until)
    weeks: dict[datetime, list[int]] = {}
    for position, scheduled in enumerate(times):
        monday = (scheduled - timedelta(days=scheduled.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        weeks.setdefault(monday, []).append(position)
    return {
        "model_id": model_id,
        "since": since.strftime(DATETIME_FORMAT) if since else None,
        "until": until.strftime(DATETIME_FORMAT) if until else None,
        **metrics(labels, probabilities),
        "weeks": [
            {
                "week": f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}",
                "from": monday.date().isoformat(),
                **metrics(labels[positions], probabilities[positions]),
            }
            for monday, positions in sorted(weeks.items())
        ],
    }


def metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """ROC AUC, PR AUC (average precision), Brier, ECE and the delay rate, as the offline
    evaluation computes them; a metric that needs both classes is None without them."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    flights = len(labels)
    both = flights > 0 and 0 < labels.sum() < flights
    return {
        "flights": flights,
        "delay_rate": float(labels.mean()) if flights else None,
        "mean_predicted": float(probabilities.mean()) if flights else None,
        "roc_auc": float(roc_auc_score(labels, probabilities)) if both else None,
        "pr_auc": float(average_precision_score(labels, probabilities)) if both else None,
        "brier": float(brier_score_loss(labels, probabilities, pos_label=1)) if flights else None,
        "ece": expected_calibration_error(labels, probabilities) if flights else None,
    }
