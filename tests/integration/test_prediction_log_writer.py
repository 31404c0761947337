"""The log writer (issue 11) against a real Redis and real databases: every entry reaches SQL
exactly once, through a database outage, a writer that died between commit and ack, and entries
that cannot be written."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from flight_delay.prediction_log import migrate
from flight_delay.prediction_log.store import PredictionStore
from flight_delay.prediction_log.tables import PredictedFlight, PredictionRequest
from flight_delay.prediction_log.writer import GROUP, LogWriter, append, append_many
from tests.integration.filesystems import without_file_privileges
from tests.integration.postgres import PostgresServer, postgres_server

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def stream(client: redis.Redis) -> Iterator[str]:
    key = f"fdtest{uuid.uuid4().hex[:8]}:prediction-log"
    yield key
    client.delete(key, f"{key}:dead")


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with postgres_server() as started:
        yield started


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    url = (
        f"sqlite:///{tmp_path / 'log.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("server").url
    )
    migrate.upgrade(url)
    store = PredictionStore.from_url(url)
    yield store
    store.engine.dispose()


def entry(number: int) -> dict[str, Any]:
    return {
        "request_id": uuid.uuid4().hex,
        "received_at": datetime.now(UTC).isoformat(),
        "model_id": "model-a",
        "deployment_version": 1,
        "caller": "127.0.0.1",
        "latency_ms": 1.0,
        "flights": [{"Fecha-I": "2017-11-02 07:00:00", "Vlo-I": str(number), "Des-I": "SCIE"}],
        "predictions": [{"delay_probability": 0.25, "delayed": True}],
        "warnings": [],
    }


def counts(store: PredictionStore) -> tuple[int, int]:
    with store.engine.connect() as connection:
        requests = connection.execute(select(func.count()).select_from(PredictionRequest)).scalar()
        flights = connection.execute(select(func.count()).select_from(PredictedFlight)).scalar()
    return int(requests or 0), int(flights or 0)


def drain(writer: LogWriter, deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    while writer.client.xlen(writer.stream) and time.monotonic() < deadline:
        writer.run_once(block_ms=100)


def test_every_entry_is_written_once_and_leaves_the_stream(
    client: redis.Redis, stream: str, store: PredictionStore
) -> None:
    writer = LogWriter(client, store, stream, consumer="w1", batch=200)
    writer.ensure_group()
    sent = [entry(i) for i in range(1000)]
    for logged in sent:
        append(client, stream, logged)
    drain(writer)
    assert counts(store) == (1000, 1000)
    assert client.xlen(stream) == 0
    assert client.xpending(stream, GROUP)["pending"] == 0
    assert store.get(sent[500]["request_id"])["flights"][0]["flight"]["Vlo-I"] == "500"  # type: ignore[index]


def test_a_database_outage_loses_nothing(
    client: redis.Redis, stream: str, server: PostgresServer
) -> None:
    """The database stops for 5 s while entries keep arriving and the writer keeps trying; once
    it is back every entry is there exactly once. (The 60 s outage under API load of the issue is
    measured by the benchmark; this is the same path, shorter.)"""
    migrate.upgrade(server.url)
    store = PredictionStore.from_url(server.url)
    writer = LogWriter(client, store, stream, consumer="w1", batch=100, gather_seconds=0)
    stop = threading.Event()
    failures: list[float] = []

    def sleep(seconds: float) -> bool:
        failures.append(seconds)
        return stop.wait(min(seconds, 0.2))  # the test's clock: retry fast

    thread = threading.Thread(target=writer.run, args=(stop, sleep), daemon=True)
    thread.start()
    sent = 0
    for _ in range(100):
        append(client, stream, entry(sent))
        sent += 1
    server.stop()
    outage_ends = time.monotonic() + 5
    while time.monotonic() < outage_ends:
        append(client, stream, entry(sent))
        sent += 1
        time.sleep(0.005)
    server.start()
    deadline = time.monotonic() + 60
    while (client.xlen(stream) or counts(store)[0] < sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=10)
    store.engine.dispose()
    assert failures, "the writer never saw the database down"
    assert counts(store) == (sent, sent)
    assert client.xlen(stream) == 0


def test_the_writer_waits_for_more_only_after_a_read_that_was_not_full(
    client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate.upgrade(url)
    store = PredictionStore.from_url(url)
    writer = LogWriter(client, store, stream, consumer="w1", batch=2, gather_seconds=0.5)
    writer.ensure_group()
    for i in range(3):
        append(client, stream, entry(i))
    stop = threading.Event()
    waits: list[tuple[float, int]] = []

    def sleep(seconds: float) -> bool:
        waits.append((seconds, counts(store)[0]))
        stop.set()
        return True

    writer.run(stop, sleep)
    # a read of 2 (full, no wait), then 1 (not full: wait to gather)
    assert waits == [(0.5, 3)]
    store.engine.dispose()


def test_a_writer_that_died_before_its_ack_is_taken_over_without_duplicates(
    client: redis.Redis, stream: str, store: PredictionStore
) -> None:
    first = LogWriter(client, store, stream, consumer="dead-writer", batch=50)
    first.ensure_group()
    for i in range(50):
        append(client, stream, entry(i))
    # what the first writer did before it died: read the batch, commit it, no ack
    read = first._new(block_ms=100)
    store.write([as_entry(fields) for _, fields in read])
    assert counts(store) == (50, 50)
    second = LogWriter(client, store, stream, consumer="w2", batch=50, claim_idle_seconds=0)
    assert second.run_once(block_ms=100) == 50  # claimed from the dead writer, written again
    assert counts(store) == (50, 50)
    assert client.xpending(stream, GROUP)["pending"] == 0 and client.xlen(stream) == 0


def as_entry(fields: dict[str, str] | None) -> dict[str, Any]:
    import json

    assert fields is not None
    return dict(json.loads(fields["entry"]))


def test_entries_that_cannot_be_written_are_set_aside_with_the_reason(
    client: redis.Redis, stream: str, store: PredictionStore
) -> None:
    writer = LogWriter(client, store, stream, consumer="w1")
    writer.ensure_group()
    append(client, stream, entry(1))
    client.xadd(stream, {"entry": "{not json"})
    broken = entry(2)
    del broken["model_id"]
    append(client, stream, broken)
    huge = entry(3)
    huge["deployment_version"] = 2**40  # the database refuses it (PostgreSQL: integer range)
    append(client, stream, huge)
    append(client, stream, entry(4))
    drain(writer)
    written = counts(store)[0]
    dead = client.xrange(f"{stream}:dead")
    reasons = [fields["reason"] for _, fields in dead]
    assert any(r.startswith("JSONDecodeError") for r in reasons)
    assert any(r.startswith("KeyError") for r in reasons)
    if store.engine.dialect.name == "postgresql":
        assert written == 2 and len(dead) == 3  # the out-of-range version set aside
    else:
        assert written == 3 and len(dead) == 2  # SQLite stores a 64-bit integer
    assert client.xlen(stream) == 0


def test_a_batch_message_is_written_entry_by_entry(
    client: redis.Redis, stream: str, store: PredictionStore
) -> None:
    """The API sends many entries per stream message: each is written once, one that cannot
    become rows is set aside alone, and a message that is not a JSON array as a whole is set
    aside whole with its bytes."""
    writer = LogWriter(client, store, stream, consumer="w1")
    writer.ensure_group()
    batch = [entry(i) for i in range(300)]
    del batch[7]["received_at"]
    append_many(client, stream, batch)
    append_many(client, stream, batch[:10])  # sent again (a flush retried after a timeout)
    client.xadd(stream, {"entries": '{"not": "an array"}'})
    client.xadd(stream, {"entries": "[{broken"})
    drain(writer)
    assert counts(store) == (299, 299)
    dead = [fields for _, fields in client.xrange(f"{stream}:dead")]
    assert [letter["reason"].split(":")[0] for letter in dead] == [
        "KeyError",
        "KeyError",  # the same entry in the repeated message
        "TypeError",
        "JSONDecodeError",
    ]
    assert json.loads(dead[0]["entry"])["request_id"] == batch[7]["request_id"]
    assert dead[3]["entries"] == "[{broken"
    assert client.xlen(stream) == 0 and client.xpending(stream, GROUP)["pending"] == 0


def test_the_api_buffer_keeps_entries_while_redis_is_away(
    client: redis.Redis, stream: str, redis_url: str
) -> None:
    """An API process's queue: a Redis that cannot be reached keeps the entries queued, in
    order, and they go out once it answers; past its bound the oldest are dropped and counted."""
    from flight_delay.devstack import free_port
    from flight_delay.prediction_log.buffer import LogBuffer

    away = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    buffer = LogBuffer(away, stream, flush_seconds=3600, max_entries=5)
    buffer._pid = os.getpid()  # no background thread: the test flushes
    for i in range(7):
        buffer.add(entry(i), 100)
    assert len(buffer) == 5 and buffer.dropped == 2
    with pytest.raises(redis.ConnectionError):
        buffer.flush()
    assert len(buffer) == 5  # nothing lost by the failed flush
    buffer.client = client  # Redis is back
    assert buffer.flush() == 5
    messages = [json.loads(fields["entries"]) for _, fields in client.xrange(stream)]
    assert len(messages) == 1  # one stream message for the flush
    assert [logged["flights"][0]["Vlo-I"] for logged in messages[0]] == ["2", "3", "4", "5", "6"]


# -- recovery by itself (issue 19, finding 9) -------------------------------------------------------
def start_writer(redis_url: str, prefix: str, url: str, log: Path) -> Any:
    """The writer process (`python -m flight_delay.prediction_log.writer`), bound by file
    permissions."""
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_DELAY_")}
    env.update(
        FLIGHT_DELAY_REDIS_URL=redis_url,
        FLIGHT_DELAY_KEY_PREFIX=prefix,
        FLIGHT_DELAY_PREDICTION_LOG_URL=url,
    )
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "flight_delay.prediction_log.writer"], cwd=REPO, env=env,
            stdout=output, stderr=subprocess.STDOUT, preexec_fn=without_file_privileges,
        )  # fmt: skip


def test_a_writer_started_while_its_database_was_read_only_recovers_by_itself(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The database file is read-only for a while (an operator's chmod, a volume remounted) and
    the writer is restarted meanwhile: its connection opens read-only. Once the file is writable
    again, the writer writes again by itself and says so; before, every batch kept failing with
    "attempt to write a readonly database" until the writer was restarted by hand."""
    import subprocess

    if not sys.platform.startswith("linux"):
        pytest.skip("drops Linux capabilities to make file permissions bind")
    database = tmp_path / "log.db"
    url = f"sqlite:///{database}"
    migrate.upgrade(url)
    prefix = f"fdtest{uuid.uuid4().hex[:8]}"
    stream = f"{prefix}:prediction-log"
    log = tmp_path / "writer.log"
    writers: list[subprocess.Popen[bytes]] = []
    try:
        writers.append(start_writer(redis_url, prefix, url, log))
        for i in range(5):
            append(client, stream, entry(i))
        store = PredictionStore.from_url(url)
        wait_until(lambda: counts(store) == (5, 5), 30, log)
        database.chmod(0o444)
        writers[-1].terminate()  # the writer restarts while the file is read-only
        writers[-1].wait(timeout=10)
        writers.append(start_writer(redis_url, prefix, url, log))
        for i in range(5, 10):
            append(client, stream, entry(i))
        wait_until(lambda: "readonly database" in log.read_text(errors="replace"), 30, log)
        database.chmod(0o644)
        writable_at = time.monotonic()
        wait_until(lambda: counts(store) == (10, 10), 60, log)
        recovered = time.monotonic() - writable_at
        print(f"\nwriter wrote again {recovered:.1f} s after the file was writable")
        assert "writing again after" in log.read_text(errors="replace")
        assert client.xlen(stream) == 0
        store.engine.dispose()
    finally:
        for writer in writers:
            writer.terminate()
            with contextlib.suppress(Exception):
                writer.wait(timeout=10)
        client.delete(stream, f"{stream}:dead", f"{stream}:bytes")


def wait_until(condition: Any, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def test_the_writer_applies_the_retention_by_age_and_by_size(
    client: redis.Redis, stream: str, store: PredictionStore
) -> None:
    """Requests older than the retention go, then the oldest beyond the size bound (down to
    nine tenths of it); the newest stay. Before, the log was never pruned (issue 19, finding 1)."""
    from datetime import timedelta

    now = datetime.now(UTC)
    old = [{**entry(i), "received_at": (now - timedelta(days=200)).isoformat()} for i in range(10)]
    recent = [
        {**entry(100 + i), "received_at": (now - timedelta(minutes=30 - i)).isoformat()}
        for i in range(30)
    ]
    store.write(old + recent)
    assert counts(store) == (40, 40)
    writer = LogWriter(client, store, stream, retention_seconds=90 * 86400, max_flights=None)
    assert writer.prune_when_due() == (10, 10)
    assert counts(store) == (30, 30)
    assert writer.prune_when_due() == (0, 0)  # not due again before prune_every_seconds
    sized = LogWriter(client, store, stream, retention_seconds=None, max_flights=20)
    assert sized.prune_when_due()[1] >= 12
    kept, _ = counts(store)
    assert kept <= 18
    assert all(store.get(e["request_id"]) is not None for e in recent[-kept:])
    assert all(store.get(e["request_id"]) is None for e in recent[: 30 - kept])
