"""The prediction log's tables (SQLAlchemy 2), one row per request and one per predicted flight.

The migrations in ``migrations/versions`` create exactly these; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class PredictionRequest(Base):
    """One POST /predict that was answered."""

    __tablename__ = "prediction_requests"

    #: uuid4 hex, also sent to the caller (X-Request-Id and the body)
    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_id: Mapped[str] = mapped_column(String(64))
    deployment_version: Mapped[int] = mapped_column(Integer)
    #: the caller's key name (its scopes and a fingerprint), or the address; never the key
    caller: Mapped[str] = mapped_column(String(200))
    latency_ms: Mapped[float] = mapped_column(Float)
    flight_count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # GET /predictions: newest first, optionally one model's
        Index("ix_prediction_requests_received", "received_at", "request_id"),
        Index("ix_prediction_requests_model_received", "model_id", "received_at", "request_id"),
    )


class PredictedFlight(Base):
    """One flight of a request: what was sent and what was answered."""

    __tablename__ = "predicted_flights"

    request_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("prediction_requests.request_id", ondelete="CASCADE"),
        primary_key=True,
    )
    #: the flight's index in the request
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the flight as sent (its JSON object)
    flight: Mapped[dict[str, Any]] = mapped_column(JSON)
    delay_probability: Mapped[float] = mapped_column(Float)
    delayed: Mapped[bool] = mapped_column()
    #: the warnings about this flight: [{"field", "problem"}]
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: Fecha-I, Vlo-I and Des-I as text, for matching outcomes to flights
    scheduled_at: Mapped[str | None] = mapped_column(String(40))
    flight_number: Mapped[str | None] = mapped_column(String(40))
    destination: Mapped[str | None] = mapped_column(String(40))
    #: the outcome (POST /outcomes): the actual departure as sent (Fecha-O), its delay after
    #: the scheduled time in minutes, and when it was recorded; null until one arrives
    departed_at: Mapped[str | None] = mapped_column(String(40))
    delay_minutes: Mapped[float | None] = mapped_column(Float)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_predicted_flights_schedule", "scheduled_at", "flight_number", "destination"),
    )


class ScheduledFlight(Base):
    """One row per model and scheduled flight: the logged prediction that live metrics and
    promotion decisions count for that flight (once, however often it was predicted), and its
    outcome.

    A flight is its schedule (``scheduled_at|flight_number|destination``); a flight logged
    without all three (a minimal model's) is its own request position (``request:<id>:<index>``)
    and gets a row only when an outcome names it. Of the logged copies of a flight, the first
    one a caller with a key sent counts, else the first one; an outcome given by request id
    makes the copy it names the one that counts.
    """

    __tablename__ = "scheduled_flights"

    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flight_key: Mapped[str] = mapped_column(String(130), primary_key=True)
    #: Fecha-I as the outcome-matching column holds it (YYYY-MM-DD HH:MM:SS when it parsed)
    scheduled_at: Mapped[str | None] = mapped_column(String(40))
    #: the logged copy that counts
    request_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    delay_probability: Mapped[float] = mapped_column(Float)
    #: whether that copy came from a caller with a valid key (or was named by an outcome)
    keyed: Mapped[bool] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    departed_at: Mapped[str | None] = mapped_column(String(40))
    delay_minutes: Mapped[float | None] = mapped_column(Float)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # outcomes by schedule find every model's row of a flight
        Index("ix_scheduled_flights_key", "flight_key"),
        # live performance of one model, newest flights first
        Index("ix_scheduled_flights_model_scheduled", "model_id", "scheduled_at"),
        # the retention deletes the rows whose copy it deletes
        Index("ix_scheduled_flights_request", "request_id"),
    )
