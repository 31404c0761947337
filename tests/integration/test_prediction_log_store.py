"""The prediction log's database (issue 11), on SQLite and on a real PostgreSQL server: Alembic
migrations up from empty and one step down, idempotent writes, newest-first pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, text

from flight_delay.prediction_log import migrate
from flight_delay.prediction_log.store import InvalidCursor, PredictionStore, make_engine
from flight_delay.prediction_log.tables import Base, PredictedFlight, PredictionRequest
from tests.integration.postgres import postgres_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as server:
        yield server.url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'predictions.db'}"
        return
    server = request.getfixturevalue("postgres")
    name = f"log_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def store(empty_database: str) -> Iterator[PredictionStore]:
    migrate.upgrade(empty_database)
    store = PredictionStore.from_url(empty_database)
    yield store
    store.engine.dispose()


def entry(
    at: datetime, model_id: str = "model-a", flights: int = 2, **changes: Any
) -> dict[str, Any]:
    flight = {"Fecha-I": "2017-11-02 07:00:00", "Vlo-I": "11", "Des-I": "SCIE", "Emp-I": "LAN",
              "OPERA": "Grupo LATAM", "TIPOVUELO": "N"}  # fmt: skip
    return {
        "request_id": uuid.uuid4().hex,
        "received_at": at.isoformat(),
        "model_id": model_id,
        "deployment_version": 3,
        "caller": "key predict #1a2b3c4d",
        "latency_ms": 1.25,
        "flights": [dict(flight, **{"Vlo-I": str(i)}) for i in range(flights)],
        "predictions": [
            {"delay_probability": 0.1 * (i + 1), "delayed": i > 0} for i in range(flights)
        ],
        "warnings": [{"index": 1, "field": "Vlo-I", "problem": "flight LAN-1 never seen"}],
        **changes,
    }


def test_migrations_create_the_tables_from_empty_and_step_down(empty_database: str) -> None:
    engine = make_engine(empty_database)
    try:
        assert migrate.current(engine) is None
        migrate.upgrade(empty_database)
        assert migrate.current(engine) == "0003"
        assert {"prediction_requests", "predicted_flights", "scheduled_flights"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as connection:  # the migrations build exactly the declared tables
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        store = PredictionStore(engine)
        logged = entry(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
        store.write([logged])
        # one step down: the scheduled flights go, the logged rows stay
        migrate.downgrade(empty_database)
        assert migrate.current(engine) == "0002"
        assert "scheduled_flights" not in inspect(engine).get_table_names()
        # and another: the outcome columns go, the logged rows stay
        migrate.downgrade(empty_database)
        assert migrate.current(engine) == "0001"
        columns = {c["name"] for c in inspect(engine).get_columns("predicted_flights")}
        assert "delay_minutes" not in columns and "flight" in columns
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT count(*) FROM predicted_flights")).scalar()
        assert kept == 2
        migrate.downgrade(empty_database)
        assert migrate.current(engine) is None
        assert not {"prediction_requests", "predicted_flights"} & set(
            inspect(engine).get_table_names()
        )
        migrate.upgrade(empty_database)  # and up again
        assert migrate.current(engine) == "0003"
    finally:
        engine.dispose()


def test_writing_twice_keeps_one_copy(store: PredictionStore) -> None:
    logged = entry(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    assert store.write([logged, logged]) == 1
    assert store.write([logged]) == 0  # a batch redelivered after a crash before its ack
    read = store.get(logged["request_id"])
    assert read is not None
    assert read["received_at"] == "2026-11-25T12:00:00+00:00"
    assert read["caller"] == "key predict #1a2b3c4d"
    assert read["flight_count"] == 2
    assert [f["flight"]["Vlo-I"] for f in read["flights"]] == ["0", "1"]
    assert [f["delay_probability"] for f in read["flights"]] == [0.1, 0.2]
    assert read["flights"][1]["warnings"] == [
        {"field": "Vlo-I", "problem": "flight LAN-1 never seen"}
    ]
    assert read["flights"][0]["warnings"] == []
    assert store.get(uuid.uuid4().hex) is None


def test_pages_are_newest_first_without_gaps_or_repeats(store: PredictionStore) -> None:
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    # 25 requests, some in the same microsecond: the request id breaks the tie
    logged = [
        entry(start + timedelta(seconds=i // 2), model_id=f"model-{i % 2}") for i in range(25)
    ]
    store.write(logged)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list(limit=10, cursor=cursor)
        seen.extend(item["request_id"] for item in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3 and len(seen) == 25 == len(set(seen))
    expected = sorted(logged, key=lambda e: (e["received_at"], e["request_id"]), reverse=True)
    assert seen == [e["request_id"] for e in expected]
    only_b = store.list(model_id="model-1", limit=100).items
    assert {i["model_id"] for i in only_b} == {"model-1"} and len(only_b) == 12
    window = store.list(
        since=start + timedelta(seconds=3), until=start + timedelta(seconds=5), limit=100
    ).items
    assert len(window) == 4  # seconds 3 and 4, two requests each
    # a time with another offset is the same instant
    local = datetime(2026, 11, 25, 8, 0, 3, tzinfo=UTC).astimezone(timezone(timedelta(hours=-3)))
    assert len(store.list(since=local, until=start + timedelta(seconds=5), limit=100).items) == 4
    with pytest.raises(InvalidCursor):
        store.list(cursor="not-a-cursor")


def test_the_log_keeps_the_prediction_fields_cut_to_64_characters(store: PredictionStore) -> None:
    """What a caller adds beyond the fields a prediction reads is not kept, and no kept value is
    longer than 64 characters: a caller cannot grow the log by its bodies (issue 19, finding 1)."""
    odd = entry(datetime(2026, 11, 25, tzinfo=UTC), flights=1, caller="x" * 500)
    odd["flights"][0]["Vlo-I"] = "9" * 1000
    odd["flights"][0]["Des-I"] = "São Paulo 🛫"
    odd["flights"][0]["MES"] = 11
    odd["flights"][0]["junk"] = "y" * 100_000
    odd["flights"][0]["Fecha-O"] = "2017-11-02 07:20:00"
    store.write([odd])
    read = store.get(odd["request_id"])
    assert read is not None
    assert read["flights"][0]["flight"] == {
        "Fecha-I": "2017-11-02 07:00:00",
        "Vlo-I": "9" * 64,
        "Des-I": "São Paulo 🛫",
        "Emp-I": "LAN",
        "OPERA": "Grupo LATAM",
        "TIPOVUELO": "N",
        "MES": 11,
    }
    assert read["caller"] == "x" * 200


def test_the_apis_compact_entries_become_the_same_rows(store: PredictionStore) -> None:
    """The API sends unrounded probabilities with the threshold and the time as seconds since
    the epoch; the decision is derived as the answer's was (probability >= threshold)."""
    at = datetime(2026, 11, 25, 12, 0, 30, 250000, tzinfo=UTC)
    compact = entry(at, received_at=at.timestamp(), threshold=0.2)
    del compact["predictions"]
    compact["probabilities"] = [0.2, 0.1999999]
    store.write([compact])
    found = store.get(compact["request_id"])
    assert found is not None
    assert found["received_at"] == at.isoformat()
    assert [(f["delay_probability"], f["delayed"]) for f in found["flights"]] == [
        (0.2, True),
        (0.1999999, False),
    ]
    for broken in ({"received_at": 1e300}, {"threshold": "high"}, {"probabilities": [0.1]}):
        with pytest.raises((ValueError, TypeError)):
            PredictionStore.rows({**compact, **broken})


def test_sqlite_runs_in_write_ahead_log_mode(tmp_path: Path) -> None:
    """Readers (the API) and the writer do not block each other."""
    store = PredictionStore.from_url(f"sqlite:///{tmp_path / 'log.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.engine.dispose()


def test_the_migration_to_scheduled_flights_counts_what_was_logged_once(
    empty_database: str,
) -> None:
    """A log kept before 0003: three copies of one flight (anonymous, keyed, anonymous), each
    labelled by an outcome by schedule, and a minimal model's flight labelled by request. After
    the upgrade each counts once, the keyed copy for the first, with its outcome."""
    migrate.upgrade(empty_database, "0002")
    engine = make_engine(empty_database)
    try:
        rows = PredictionStore.rows  # the 0002 rows of these entries (no scheduled rows yet)
        at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        copies = [
            entry(at + timedelta(seconds=i), flights=1, caller=caller)
            for i, caller in enumerate(["10.0.0.1", "key predict #1a2b3c4d", "10.0.0.2"])
        ]
        minimal = entry(at, flights=1, model_id="model-m")
        minimal["flights"] = [{"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "MES": 11}]
        with engine.begin() as connection:
            for logged in [*copies, minimal]:
                row = rows(logged)
                connection.execute(insert(PredictionRequest.__table__), [row.request])
                connection.execute(
                    insert(PredictedFlight.__table__),
                    [{**f, "departed_at": "2017-11-02 07:40:00", "delay_minutes": 40.0}
                     for f in row.flights],
                )  # fmt: skip
        migrate.upgrade(empty_database)
        with engine.connect() as connection:
            scheduled = connection.execute(
                text("SELECT model_id, flight_key, request_id, keyed, delay_minutes "
                     "FROM scheduled_flights ORDER BY model_id")
            ).all()  # fmt: skip
        assert [(r.model_id, r.flight_key, r.request_id, bool(r.keyed), r.delay_minutes)
                for r in scheduled] == [
            ("model-a", "2017-11-02 07:00:00|0|SCIE", copies[1]["request_id"], True, 40.0),
            ("model-m", f"request:{minimal['request_id']}:0", minimal["request_id"], True, 40.0),
        ]  # fmt: skip
    finally:
        engine.dispose()
