"""Outcomes: the actual departure of a predicted flight and its delay.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table where it cannot alter it in place
    with op.batch_alter_table("predicted_flights") as table:
        table.add_column(sa.Column("departed_at", sa.String(40), nullable=True))
        table.add_column(sa.Column("delay_minutes", sa.Float(), nullable=True))
        table.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predicted_flights") as table:
        table.drop_column("outcome_at")
        table.drop_column("delay_minutes")
        table.drop_column("departed_at")
