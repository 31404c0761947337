"""The API side of the prediction log: requests never wait for Redis or the database.

``/predict`` hands each logged request to this process's ``LogBuffer`` (a deque append); a
background thread sends what has gathered to the Redis stream every ``flush_seconds``, up to
``batch`` entries per stream message (one command and one JSON document for many requests: 1.5
µs per entry against 10 µs for a message each, measured), serialising there, off the request
path. If Redis is away the entries stay in the buffer and are sent when it is back; beyond
``max_entries`` the oldest are dropped and counted (``dropped``; logged), so a long Redis outage
costs log entries, never memory or predictions.
Entries still in memory when a process is killed with SIGKILL are lost: at most one flush
interval's worth; a graceful stop (SIGTERM) sends them first (``close``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Any

import redis

from flight_delay.metrics import api_metrics
from flight_delay.prediction_log.writer import append_many

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
    ) -> None:
        self.client = client
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.max_entries = max_entries
        self.batch = batch
        self.dropped = 0
        self._entries: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one flush at a time
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Queue ``entry`` (what POST /predict calls: an append, no I/O)."""
        self._entries.append(entry)
        if len(self._entries) > self.max_entries:
            self._entries.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("prediction log: buffer full, %d entries dropped so far", self.dropped)
        if self._pid != os.getpid():  # first use in this process (gunicorn forks after import)
            self._start()

    def __len__(self) -> int:
        return len(self._entries)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except redis.RedisError as exc:
                log.warning(
                    "prediction log: Redis unreachable (%s); %d entries wait", exc, len(self)
                )
            except Exception:  # the thread must outlive any surprise, or the log stops
                log.exception("prediction log: sending the queue failed; trying again")
            try:
                api_metrics().log_buffered.set(len(self))
            except Exception:
                log.exception("prediction log: the queue's gauge could not be set")

    def flush(self) -> int:
        """Send every queued entry to the stream now; the number sent. On a Redis error the
        unsent entries go back to the front of the queue, in order, and the error is raised."""
        sent = 0
        with self._lock:
            while self._entries:
                taken: list[dict[str, Any]] = []
                while self._entries and len(taken) < self.batch:
                    taken.append(self._entries.popleft())
                try:
                    append_many(self.client, self.stream, taken)
                except redis.RedisError:
                    self._entries.extendleft(reversed(taken))
                    raise
                sent += len(taken)
        return sent

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (a graceful stop); gives up after ``timeout`` seconds."""
        done = threading.Event()

        def send() -> None:
            try:
                self.flush()
            except redis.RedisError as exc:
                log.error("prediction log: %d entries not sent at shutdown: %s", len(self), exc)
            done.set()

        threading.Thread(target=send, daemon=True).start()
        done.wait(timeout)
