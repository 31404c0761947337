"""The log writer: moves logged requests from the Redis stream into SQL, in batches.

Entries are read through a consumer group and acknowledged (and deleted from the stream) only
after the transaction that wrote them committed, so nothing is lost when the database is down or
the writer dies: a writer reads its own unacknowledged entries again first, and takes over those
a dead writer left behind once they have been idle for ``claim_idle_seconds``. Writing is
idempotent by request id, so an entry written twice (a crash between commit and ack) is kept
once. An entry that cannot become rows is moved to ``<stream>:dead`` with the reason rather than
retried forever.

Run it with ``python -m flight_delay.prediction_log.writer`` (settings from ``FLIGHT_DELAY_*``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from flight_delay import redis_connection
from flight_delay.prediction_log.store import LoggedRows, PredictionStore, compact_entry

log = logging.getLogger(__name__)

GROUP = "sql-writer"
#: a stream message's field: one entry (JSON object) or, from the API, several (JSON array)
FIELD = "entry"
BATCH_FIELD = "entries"
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0


#: a message's size as counted in the backlog (the packed JSON's bytes)
SIZE_FIELD = "bytes"
#: dead letters kept for inspection (the oldest go first)
DEAD_LETTERS_KEPT = 10_000
#: the most of an unwritable message a dead letter keeps (enough to see what it was)
DEAD_LETTER_TEXT = 64 * 1024


class BacklogFull(Exception):
    """The stream already holds its byte budget of entries waiting for the writer."""


def stream_key(prefix: str) -> str:
    """The Redis stream of logged requests for a deployment's key prefix."""
    return f"{prefix}:prediction-log"


def backlog_key(stream: str) -> str:
    """The bytes of the stream's messages not yet settled by a writer."""
    return f"{stream}:bytes"


# KEYS: stream, backlog counter. ARGV: packed entries, their size, the byte budget -> 1, or 0
# when the budget is spent (nothing added). An empty stream owes nothing: the counter starts
# over (it would drift only if messages were removed by hand).
_APPEND = """
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[2], 0)
elseif tonumber(redis.call('GET', KEYS[2]) or '0') + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return 0
end
redis.call('XADD', KEYS[1], '*', 'entries', ARGV[1], 'bytes', ARGV[2])
redis.call('INCRBY', KEYS[2], ARGV[2])
return 1
"""


def pack(entries: list[dict[str, Any]], message_bytes: int) -> list[tuple[bytes, int]]:
    """Logged requests as stream payloads of about ``message_bytes`` at most (a larger entry
    goes alone): (JSON array, entries in it). Only what a model reads is kept of each flight."""
    messages: list[tuple[bytes, int]] = []
    current: list[bytes] = []
    size = 0
    for entry in entries:
        encoded = _dumps(compact_entry(entry))
        if current and size + len(encoded) + 1 > message_bytes:
            messages.append((b"[" + b",".join(current) + b"]", len(current)))
            current, size = [], 0
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        messages.append((b"[" + b",".join(current) + b"]", len(current)))
    return messages


def append_packed(client: redis.Redis, stream: str, payload: bytes, budget: int) -> None:
    """Put one packed payload on the stream, counted in its backlog; BacklogFull when the
    stream already holds ``budget`` bytes waiting for the writer."""
    added = client.eval(_APPEND, 2, stream, backlog_key(stream), payload, len(payload), budget)
    if not added:
        raise BacklogFull(
            f"{budget} bytes of logged requests already wait in Redis for the log writer "
            "(is it running?)"
        )


def append(client: redis.Redis, stream: str, entry: dict[str, Any]) -> None:
    """Put one logged request on the stream as a message of its own (no budget: tests, tools)."""
    client.xadd(stream, {FIELD: _dumps(entry)})


def append_many(client: redis.Redis, stream: str, entries: list[dict[str, Any]]) -> None:
    """Put logged requests on the stream as the API's buffer does, without a byte budget."""
    for payload, _ in pack(entries, 1 << 62):
        append_packed(client, stream, payload, 1 << 62)


def _dumps(value: Any) -> bytes:
    """orjson; the standard library for what orjson refuses (integers beyond 64 bits, text that
    is not valid Unicode), which the API accepts in flights."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value).encode("utf-8", "surrogatepass")


def _loads(raw: str | bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # what orjson refuses and the standard library wrote (above)


def _size(fields: dict[str, str] | None) -> int:
    """The bytes a message counts in the backlog (0: deleted, or from an earlier version)."""
    try:
        return int((fields or {}).get(SIZE_FIELD, 0))
    except ValueError:
        return 0


def _letter(message_id: str, field: str, raw: str | bytes, reason: str) -> dict[str, str]:
    """A dead letter: what could not be written, the message it came in and why."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "surrogatepass")
    return {field: text[:DEAD_LETTER_TEXT], "id": message_id, "reason": reason}


def _unpack(
    message_id: str, fields: dict[str, str]
) -> tuple[list[tuple[str, Any, LoggedRows]], list[dict[str, str]]]:
    """A message's entries as rows, and dead letters for what cannot become rows (a message
    that is not JSON as a whole; within a batch, each entry alone)."""
    field = BATCH_FIELD if BATCH_FIELD in fields else FIELD
    raw = fields.get(field, "")
    try:
        loaded = _loads(raw)
        entries = loaded if field == BATCH_FIELD else [loaded]
        if not isinstance(entries, list):
            raise TypeError(f"{field} is not a JSON array")
    except (ValueError, TypeError) as exc:
        return [], [_letter(message_id, field, raw, f"{type(exc).__name__}: {exc}")]
    good, dead = [], []
    for entry in entries:
        try:
            good.append((message_id, entry, PredictionStore.rows(entry)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # the original bytes when the message held this entry alone
            text = raw if field == FIELD else _dumps(entry)
            dead.append(_letter(message_id, FIELD, text, f"{type(exc).__name__}: {exc}"))
    return good, dead


class LogWriter:
    """One writer process's loop (several may run: the consumer group shares the entries)."""

    def __init__(
        self,
        client: redis.Redis,
        store: PredictionStore,
        stream: str,
        consumer: str | None = None,
        batch: int = 20,
        claim_idle_seconds: float = 60.0,
        gather_seconds: float = 0.5,
        retention_seconds: float | None = None,
        max_flights: int | None = None,
        prune_every_seconds: float = 300.0,
    ) -> None:
        self.client = client
        self.store = store
        self.stream = stream
        self.dead_letters = f"{stream}:dead"
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.gather_seconds = gather_seconds
        self.last_read = 0
        self.retention_seconds = retention_seconds
        self.max_flights = max_flights
        self.prune_every_seconds = prune_every_seconds
        self._pruned_at: float | None = None

    # -- retention ---------------------------------------------------------------------------
    def prune_when_due(self) -> tuple[int, int]:
        """Apply the retention (age, then size) at start and every ``prune_every_seconds``;
        (requests, flights) deleted."""
        now = time.monotonic()
        if self.retention_seconds is None and self.max_flights is None:
            return 0, 0
        if self._pruned_at is not None and now - self._pruned_at < self.prune_every_seconds:
            return 0, 0
        older_than = (
            datetime.now(UTC) - timedelta(seconds=self.retention_seconds)
            if self.retention_seconds
            else None
        )
        requests, flights = self.store.prune(older_than, self.max_flights or None)
        self._pruned_at = now
        if requests:
            log.info(
                "prediction log: retention deleted %d requests (%d flights)", requests, flights
            )
        return requests, flights

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- one batch ---------------------------------------------------------------------------
    def run_once(self, block_ms: int = 1000) -> int:
        """Write one batch of messages and acknowledge them; the number of entries settled
        (written or set aside). Raises on a database or Redis failure, with nothing
        acknowledged."""
        messages = self._mine() or self._abandoned() or self._new(block_ms)
        self.last_read = len(messages)
        if not messages:
            return 0
        good: list[tuple[str, Any, LoggedRows]] = []
        dead: list[dict[str, str]] = []
        for message_id, fields in messages:
            if fields is None:  # deleted after its write, before its ack
                continue
            entries, refused = _unpack(message_id, fields)
            dead.extend(refused)
            good.extend(entries)
        if good:
            try:
                self.store.write_rows([rows for _, _, rows in good])
            except (OperationalError, DBAPIError) as exc:
                if not _is_data_error(exc):
                    raise  # the database is away: retry the batch later, nothing acked
                good, more_dead = self._one_by_one(good)
                dead.extend(more_dead)
        if dead:
            pipeline = self.client.pipeline()
            for letter in dead:
                pipeline.xadd(
                    self.dead_letters,
                    letter,  # type: ignore[arg-type]
                    maxlen=DEAD_LETTERS_KEPT,
                    approximate=True,
                )
            pipeline.execute()
            log.error(
                "%d log entries could not be written; kept in %s", len(dead), self.dead_letters
            )
        settled = [message_id for message_id, _ in messages]
        # one transaction: a settled message leaves the stream and the backlog together
        pipeline = self.client.pipeline(transaction=True)
        pipeline.xack(self.stream, GROUP, *settled)
        pipeline.xdel(self.stream, *settled)
        freed = sum(_size(fields) for _, fields in messages)
        if freed:
            pipeline.decrby(backlog_key(self.stream), freed)
        pipeline.execute()
        return len(good) + len(dead)

    def _one_by_one(
        self, entries: list[tuple[str, Any, LoggedRows]]
    ) -> tuple[list[tuple[str, Any, LoggedRows]], list[dict[str, str]]]:
        """A batch the database refused for its data: write each entry alone, setting aside the
        ones it refuses."""
        written, dead = [], []
        for message_id, entry, rows in entries:
            try:
                self.store.write_rows([rows])
                written.append((message_id, entry, rows))
            except (OperationalError, DBAPIError) as exc:
                if not _is_data_error(exc):
                    raise
                reason = f"{type(exc.orig).__name__}: {exc.orig}"
                dead.append(_letter(message_id, FIELD, _dumps(entry), reason))
        return written, dead

    def _mine(self) -> list[tuple[str, dict[str, str] | None]]:
        """This consumer's entries read before but not acknowledged (a write that failed)."""
        return self._read("0", block_ms=None)

    def _abandoned(self) -> list[tuple[str, dict[str, str] | None]]:
        """Entries another writer read and never acknowledged, idle long enough: it died."""
        answer: Any = self.client.xautoclaim(
            self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.batch
        )
        claimed = answer[1]
        deleted = answer[2] if len(answer) > 2 else []  # Redis 7 lists deleted entries apart
        return [(i, f or None) for i, f in claimed] + [(i, None) for i in deleted]

    def _new(self, block_ms: int) -> list[tuple[str, dict[str, str] | None]]:
        return self._read(">", block_ms=block_ms)

    def _read(self, start: str, block_ms: int | None) -> list[tuple[str, dict[str, str] | None]]:
        answer: Any = self.client.xreadgroup(
            GROUP, self.consumer, {self.stream: start}, count=self.batch, block=block_ms
        )
        if not answer:
            return []
        return [(i, f or None) for i, f in answer[0][1]]

    # -- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event, sleep: Callable[[float], bool] | None = None) -> None:
        """Write batches until ``stop`` is set; a failure waits 1 s, doubling to 30 s.

        After a read that was not full it waits ``gather_seconds`` for more to gather: each
        transaction has a fixed cost (a commit, a sync to disk), and under a steady load
        transactions of a few entries cost more than the entries (writer CPU per logged request
        72 µs with a transaction per arrival, measured). Entries reach the database within
        about ``gather_seconds`` plus the API's flush interval."""
        wait = sleep or stop.wait
        delay = BACKOFF_FIRST_SECONDS
        failing_since: float | None = None
        self.ensure_group()
        while not stop.is_set():
            try:
                settled = self.run_once()
                delay = BACKOFF_FIRST_SECONDS
                if failing_since is not None:
                    log.warning(
                        "prediction log: writing again after %.0f s of failures",
                        time.monotonic() - failing_since,
                    )
                    failing_since = None
                self.prune_when_due()
                if settled and self.last_read < self.batch and self.gather_seconds:
                    wait(self.gather_seconds)
            except (SQLAlchemyError, redis.RedisError, OSError) as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                log.warning("prediction log: %s; trying again in %.0f s", _short(exc), delay)
                # the next attempt opens new connections: a pooled SQLite connection opened
                # while the file could not be written stays read-only ("attempt to write a
                # readonly database") long after the file is writable again
                self.store.engine.dispose()
                wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                with contextlib.suppress(redis.RedisError):
                    self.ensure_group()  # a Redis that lost its data lost the group too


def _is_data_error(exc: DBAPIError) -> bool:
    """Whether the database refused the data (not: could not be reached)."""
    return not isinstance(exc, OperationalError) and not exc.connection_invalidated


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def main() -> int:
    """Run a writer with the FLIGHT_DELAY_* settings until SIGTERM or SIGINT."""
    from flight_delay.config import load_config
    from flight_delay.prediction_log import migrate

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config()
    url = str(config["PREDICTION_LOG_URL"])
    migrate.upgrade(url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    days = float(config["PREDICTION_LOG_RETENTION_DAYS"])
    writer = LogWriter(
        redis_connection.connect(config),
        PredictionStore.from_url(url),
        stream_key(str(config["KEY_PREFIX"])),
        retention_seconds=days * 86400 if days > 0 else None,
        max_flights=int(config["PREDICTION_LOG_MAX_FLIGHTS"]) or None,
        prune_every_seconds=float(config["PREDICTION_LOG_PRUNE_SECONDS"]),
    )
    log.info("prediction log writer: %s -> %s", writer.stream, _display(url))
    # A batch is thousands of short-lived, acyclic dicts; with the default thresholds the cyclic
    # collector ran over every imported module's objects again and again: a third of the
    # writer's time per entry (39 -> 26 µs, measured). Startup objects are frozen out of its
    # scans and it runs less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    writer.run(stop)
    return 0


def _display(url: str) -> str:
    """The database URL without its password, for the log."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
