"""Scheduled flights: each flight once per model, for live metrics and promotion decisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Filled from the logged flights: per model and scheduled flight, the first copy a caller with a
key sent (else the first copy), with an outcome when any copy has one; flights logged without a
full schedule get a row where an outcome names them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: logged flights read per round while filling the table
_BATCH = 5_000


def upgrade() -> None:
    op.create_table(
        "scheduled_flights",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("flight_key", sa.String(130), primary_key=True),
        sa.Column("scheduled_at", sa.String(40), nullable=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("delay_probability", sa.Float(), nullable=False),
        sa.Column("keyed", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("departed_at", sa.String(40), nullable=True),
        sa.Column("delay_minutes", sa.Float(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_scheduled_flights_key", "scheduled_flights", ["flight_key"])
    op.create_index(
        "ix_scheduled_flights_model_scheduled", "scheduled_flights", ["model_id", "scheduled_at"]
    )
    op.create_index("ix_scheduled_flights_request", "scheduled_flights", ["request_id"])
    _fill()


def _fill() -> None:
    """One row per model and flight from what is logged, in batches (the first copy wins, a
    keyed one before an anonymous one; an outcome on any copy is the flight's)."""
    connection = op.get_bind()
    meta = sa.MetaData()
    requests = sa.Table("prediction_requests", meta, autoload_with=connection)
    flights = sa.Table("predicted_flights", meta, autoload_with=connection)
    scheduled = sa.Table("scheduled_flights", meta, autoload_with=connection)
    keyed = requests.c.caller.like("key %")
    query = (
        sa.select(
            requests.c.model_id, requests.c.received_at, keyed.label("keyed"),
            flights.c.request_id, flights.c.position, flights.c.delay_probability,
            flights.c.scheduled_at, flights.c.flight_number, flights.c.destination,
            flights.c.departed_at, flights.c.delay_minutes, flights.c.outcome_at,
        )
        .join(requests, requests.c.request_id == flights.c.request_id)
        .order_by(requests.c.received_at, flights.c.request_id, flights.c.position)
    )  # fmt: skip
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for row in connection.execute(query).yield_per(_BATCH):
        complete = row.scheduled_at and row.flight_number and row.destination
        if complete:
            key = f"{row.scheduled_at}|{row.flight_number}|{row.destination}"
        elif row.delay_minutes is not None:
            key = f"request:{row.request_id}:{row.position}"
        else:
            continue
        found = rows.get((row.model_id, key))
        outcome = {
            "departed_at": row.departed_at,
            "delay_minutes": row.delay_minutes,
            "outcome_at": row.outcome_at,
        }
        if found is None or (bool(row.keyed) and not found["keyed"]):
            kept_outcome = (
                {k: found[k] for k in outcome}
                if found is not None and found["delay_minutes"] is not None
                else outcome
            )
            rows[(row.model_id, key)] = {
                "model_id": row.model_id,
                "flight_key": key,
                "scheduled_at": row.scheduled_at,
                "request_id": row.request_id,
                "position": row.position,
                "delay_probability": row.delay_probability,
                "keyed": bool(row.keyed),
                "received_at": row.received_at,
                **(outcome if row.delay_minutes is not None else kept_outcome),
            }
        elif found["delay_minutes"] is None and row.delay_minutes is not None:
            found.update(outcome)
    values = list(rows.values())
    for start in range(0, len(values), _BATCH):
        connection.execute(sa.insert(scheduled), values[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index("ix_scheduled_flights_request", table_name="scheduled_flights")
    op.drop_index("ix_scheduled_flights_model_scheduled", table_name="scheduled_flights")
    op.drop_index("ix_scheduled_flights_key", table_name="scheduled_flights")
    op.drop_table("scheduled_flights")
