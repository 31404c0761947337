"""The prediction log: requests and their predicted flights.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_requests",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("deployment_version", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("flight_count", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_prediction_requests_received", "prediction_requests", ["received_at", "request_id"]
    )
    op.create_index(
        "ix_prediction_requests_model_received",
        "prediction_requests",
        ["model_id", "received_at", "request_id"],
    )
    op.create_table(
        "predicted_flights",
        sa.Column(
            "request_id",
            sa.String(32),
            sa.ForeignKey("prediction_requests.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("flight", sa.JSON(), nullable=False),
        sa.Column("delay_probability", sa.Float(), nullable=False),
        sa.Column("delayed", sa.Boolean(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("scheduled_at", sa.String(40), nullable=True),
        sa.Column("flight_number", sa.String(40), nullable=True),
        sa.Column("destination", sa.String(40), nullable=True),
    )
    op.create_index(
        "ix_predicted_flights_schedule",
        "predicted_flights",
        ["scheduled_at", "flight_number", "destination"],
    )


def downgrade() -> None:
    op.drop_index("ix_predicted_flights_schedule", table_name="predicted_flights")
    op.drop_table("predicted_flights")
    op.drop_index("ix_prediction_requests_model_received", table_name="prediction_requests")
    op.drop_index("ix_prediction_requests_received", table_name="prediction_requests")
    op.drop_table("prediction_requests")
