"""Alembic's environment for the prediction log (see flight_delay.prediction_log.migrate)."""

from __future__ import annotations

from alembic import context

from flight_delay.prediction_log.store import make_engine
from flight_delay.prediction_log.tables import Base

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things: batch mode copies tables instead
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
