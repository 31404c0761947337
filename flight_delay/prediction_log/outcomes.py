"""Outcomes of logged flights (when they actually left) and the live performance they give.

An outcome names a flight either by the request that predicted it (``request_id`` and the
flight's ``index`` in it) or by its schedule (``Fecha-I``, ``Vlo-I`` and ``Des-I``, matching
every logged prediction of that flight), with ``Fecha-O``, its actual departure. The delay is
``Fecha-O - Fecha-I`` in minutes and the flight counts as delayed beyond 15, as in training.
Recording again replaces the earlier outcome.

Live performance scores a model's logged predictions that have an outcome: each logged
prediction counts once (a flight asked about twice counts twice), with the metrics of the
offline evaluation (flight_delay.ml.evaluation), over the whole window and per ISO week of the
scheduled departure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, and_, bindparam, select, tuple_, update

from flight_delay.data.schema import DATETIME_FORMAT, DELAY_THRESHOLD_MINUTES
from flight_delay.ml.evaluation import expected_calibration_error
from flight_delay.ml.flight_input import parse_scheduled
from flight_delay.prediction_log.store import PredictionStore, flight_key
from flight_delay.prediction_log.tables import PredictedFlight, PredictionRequest

_FLIGHTS = cast(Table, PredictedFlight.__table__)


@dataclass(frozen=True)
class Outcome:
    """One flight's actual departure, and which logged flight(s) it belongs to."""

    departed_at: datetime
    request_id: str | None = None
    index: int | None = None
    flight: dict[str, Any] | None = None  # Fecha-I, Vlo-I, Des-I

    @property
    def by_request(self) -> bool:
        return self.request_id is not None


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: outcomes matched, logged flights updated, and the positions (in the
    posted list) of outcomes no logged flight matched."""

    matched: int
    flights_updated: int
    unmatched: list[int]


def record(store: PredictionStore, outcomes: Sequence[Outcome]) -> Recorded:
    """Attach ``outcomes`` to the logged flights they name, in one transaction."""
    now = datetime.now(UTC).replace(tzinfo=None)
    updates: list[dict[str, Any]] = []
    unmatched: list[int] = []
    matched = 0
    with store.engine.begin() as connection:
        by_request = [(i, o) for i, o in enumerate(outcomes) if o.by_request]
        found: dict[tuple[str, int], str | None] = {}
        for chunk in _chunks(by_request, 500):
            chunk_rows = connection.execute(
                select(_FLIGHTS.c.request_id, _FLIGHTS.c.position, _FLIGHTS.c.scheduled_at).where(
                    tuple_(_FLIGHTS.c.request_id, _FLIGHTS.c.position).in_(
                        [(o.request_id, o.index) for _, o in chunk]
                    )
                )
            )
            found.update({(r.request_id, r.position): r.scheduled_at for r in chunk_rows})
        for position, outcome in by_request:
            place = (str(outcome.request_id), int(outcome.index or 0))
            if place not in found:
                unmatched.append(position)
                continue
            matched += 1
            updates.append(_update(place, found[place], outcome, now))
        # by schedule, batched too; a key with an empty part matches nothing (never "every
        # flight without a number")
        by_schedule = [
            (i, o, tuple(flight_key(o.flight or {}).values()))
            for i, o in enumerate(outcomes)
            if not o.by_request
        ]
        complete = list({key for _, _, key in by_schedule if all(key)})
        logged: dict[tuple[Any, ...], list[Any]] = {}
        for key_chunk in _chunks(complete, 300):
            key_rows = connection.execute(
                select(
                    _FLIGHTS.c.request_id,
                    _FLIGHTS.c.position,
                    _FLIGHTS.c.scheduled_at,
                    _FLIGHTS.c.flight_number,
                    _FLIGHTS.c.destination,
                ).where(
                    tuple_(
                        _FLIGHTS.c.scheduled_at, _FLIGHTS.c.flight_number, _FLIGHTS.c.destination
                    ).in_(key_chunk)
                )
            )
            for row in key_rows:
                logged.setdefault(
                    (row.scheduled_at, row.flight_number, row.destination), []
                ).append(row)
        for position, outcome, key in by_schedule:
            rows = logged.get(key, [])
            if not rows:
                unmatched.append(position)
                continue
            matched += 1
            updates.extend(
                _update((r.request_id, r.position), r.scheduled_at, outcome, now) for r in rows
            )
        if updates:
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
                updates,
            )
    return Recorded(matched, len(updates), sorted(unmatched))


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _update(
    place: tuple[str, int], scheduled_text: str | None, outcome: Outcome, now: datetime
) -> dict[str, Any]:
    scheduled = parse_scheduled(scheduled_text)
    minutes = (
        (outcome.departed_at - scheduled).total_seconds() / 60.0 if scheduled is not None else None
    )
    return {
        "at_request": place[0],
        "at_position": place[1],
        "departed": outcome.departed_at.strftime(DATETIME_FORMAT),
        "minutes": minutes,
        "recorded": now,
    }


# -- live performance ----------------------------------------------------------------------------
def scored_flights(
    store: PredictionStore, model_id: str, since: datetime | None, until: datetime | None
) -> tuple[np.ndarray, np.ndarray, list[datetime]]:
    """The model's logged probabilities that have an outcome, their labels and scheduled times,
    for flights scheduled in [since, until)."""
    query = (
        select(
            PredictedFlight.delay_probability,
            PredictedFlight.delay_minutes,
            PredictedFlight.scheduled_at,
        )
        .join(PredictionRequest, PredictionRequest.request_id == PredictedFlight.request_id)
        .where(PredictionRequest.model_id == model_id, PredictedFlight.delay_minutes.is_not(None))
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
