"""Alembic migrations of the prediction log, run from code (no alembic.ini): ``upgrade`` brings a
database to the newest schema, ``downgrade`` steps back."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from flight_delay.prediction_log.store import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # a literal "%" in a password would be read as interpolation by configparser
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating the tables from empty)."""
    command.upgrade(_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    """Migrate the database at ``url`` down to ``revision`` (default: one step)."""
    command.downgrade(_config(url), revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: not migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def current_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current(engine)
    finally:
        engine.dispose()
