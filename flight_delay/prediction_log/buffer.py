"""The API side of the prediction log: requests never wait for Redis or the database.

``/predict`` hands each logged request to this process's ``LogBuffer`` (a deque append); a
background thread sends what has gathered to the Redis stream every ``flush_seconds``, serialising
there, off the request path: only the fields a model reads are kept of each flight, text cut to
``LOGGED_TEXT`` characters (flight_delay.prediction_log.store.logged_flight), packed into stream
messages of at most ``batch`` entries and about ``message_bytes`` bytes (one command and one JSON
document for many requests: 1.5 µs per entry against 10 µs for a message each, measured).

Everything on the way is bounded in bytes, not only in entries. The queue holds at most
``max_bytes`` of request bodies (a request's size is its body's, which the entry references until
it is sent); the stream holds at most ``backlog_bytes`` waiting for the writer (a counter kept
beside it by the same Lua script that appends, and decreased by the writer as it settles
messages). When Redis is away, refuses writes (a full disk) or the writer is behind, entries wait
here; past the bound the oldest are dropped and counted (``dropped``; logged). A long outage costs
log entries, never memory, disk or predictions. Entries still in memory when a process is killed
with SIGKILL are lost: at most one flush interval's worth; a graceful stop (SIGTERM) sends them
first (``close``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Any

import redis

from flight_delay.metrics import api_metrics
from flight_delay.prediction_log.writer import BacklogFull, append_packed, pack

log = logging.getLogger(__name__)


class LogBuffer:
    """One process's queue of logged requests on their way to the stream. Thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        flush_seconds: float = 0.1,
        max_entries: int = 100_000,
        batch: int = 500,
        max_bytes: int = 64 * 1024 * 1024,
        backlog_bytes: int = 128 * 1024 * 1024,
        message_bytes: int = 1024 * 1024,
    ) -> None:
        self.client = client
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.backlog_bytes = backlog_bytes
        # a message is a small part of the backlog, so the budget binds message by message (an
        # empty stream takes one message whatever its size: one entry alone larger than it)
        self.message_bytes = max(1, min(message_bytes, backlog_bytes // 8))
        self.batch = batch
        self.dropped = 0
        self._entries: deque[tuple[dict[str, Any], int]] = deque()
        self._bytes = 0
        self._sending = 0  # entries a flush took and has not sent (nor given back) yet
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one flush at a time
        self._queue_lock = threading.Lock()  # the deque and its byte count move together
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = threading.Event()

    def add(self, entry: dict[str, Any], size: int) -> None:
        """Queue ``entry`` (what POST /predict calls: an append, no I/O). ``size``: the bytes it
        holds on to, the request body's length."""
        with self._queue_lock:
            self._entries.append((entry, size))
            self._bytes += size
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, dropped_size = self._entries.popleft()
                self._bytes -= dropped_size
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.error(
                        "prediction log: queue full (%d entries, %d bytes waiting for Redis); "
                        "%d entries dropped so far",
                        len(self._entries), self._bytes, self.dropped,
                    )  # fmt: skip
        if self._pid != os.getpid():  # first use in this process (gunicorn forks after import)
            self._start()

    def __len__(self) -> int:
        """Entries not yet on the stream: queued, or taken by a flush that is sending them."""
        with self._queue_lock:
            return len(self._entries) + self._sending

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except BacklogFull as exc:
                log.warning("prediction log: %s; %d entries wait here", exc, len(self))
            except redis.RedisError as exc:
                log.warning(
                    "prediction log: Redis unreachable or refusing writes (%s); %d entries wait",
                    exc, len(self),
                )  # fmt: skip
            except Exception:  # the thread must outlive any surprise, or the log stops
                log.exception("prediction log: sending the queue failed; trying again")
            try:
                api_metrics().log_buffered.set(len(self))
            except Exception:
                log.exception("prediction log: the queue's gauge could not be set")

    def _take(self) -> list[tuple[dict[str, Any], int]]:
        with self._queue_lock:
            taken: list[tuple[dict[str, Any], int]] = []
            while self._entries and len(taken) < self.batch:
                taken.append(self._entries.popleft())
            # their bytes stay counted until they are sent: what a flush holds is held in memory
            self._sending += len(taken)
            return taken

    def _settled(
        self, taken: list[tuple[dict[str, Any], int]], sent: int, give_back: bool = False
    ) -> None:
        """The flush that took ``taken`` is done with them: the first ``sent`` are on the
        stream; the rest go back to the front of the queue, in order (one step: never counted
        twice, nor lost from the count)."""
        with self._queue_lock:
            if give_back:
                self._entries.extendleft(reversed(taken[sent:]))
            self._sending -= len(taken)
            self._bytes -= sum(size for _, size in taken[:sent])

    def flush(self) -> int:
        """Send every queued entry to the stream now; the number sent. On a Redis error (or a
        full backlog) the unsent entries go back to the front of the queue, in order, and the
        error is raised."""
        sent = 0
        with self._lock:
            while self._entries:
                taken = self._take()
                done = 0
                try:
                    messages = pack([entry for entry, _ in taken], self.message_bytes)
                    for payload, count in messages:
                        append_packed(self.client, self.stream, payload, self.backlog_bytes)
                        done += count
                except BaseException:  # Redis away, a full backlog, a surprise: nothing lost
                    self._settled(taken, done, give_back=True)
                    raise
                self._settled(taken, done)
                sent += done
        return sent

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (a graceful stop) and stop the background thread; gives up
        sending after ``timeout`` seconds."""
        self._closed.set()
        self._wake.set()
        done = threading.Event()

        def send() -> None:
            try:
                self.flush()
            except (redis.RedisError, BacklogFull) as exc:
                log.error("prediction log: %d entries not sent at shutdown: %s", len(self), exc)
            done.set()

        threading.Thread(target=send, daemon=True).start()
        done.wait(timeout)
