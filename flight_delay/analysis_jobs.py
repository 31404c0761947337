"""Reports computed over caller-grown data (drift, live performance) as cached worker jobs.

A report is asked for by model and window; a window of request time has its open ends
normalised (an ``until`` in the future is "until now", a ``since`` before 1970 "from the start")
so that one report serves every request that means the same thing. The API answers from the
cache: a finished report at once, a missing one is queued once (one Lua script: the pending marker, the
cap on reports being computed at once, the entry) and answered 202 until the worker wrote it. A
caller who asks for new windows faster than the workers compute them meets the cap: 429 with
Retry-After, no job. Reports run on their own queue (``<prefix>-analysis``), so training never
waits behind them, and each reads a bounded input (the newest rows of a window, at most).

A job lost with its worker leaves its marker until it expires (the job time limit), then the
next request queues it again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask

from flight_delay.errors import FlightDelayError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TooManyReports(FlightDelayError):
    """As many reports (or comparisons) as FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE are being
    computed: ask later."""

    def __init__(self, active: int, retry_after: int) -> None:
        super().__init__(
            f"{active} reports are being computed already (FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE); "
            f"ask again in {retry_after} s, or for a window already computed",
            [{"field": "window", "problem": "too many reports being computed at once"}],
        )
        self.retry_after = retry_after


# KEYS: entry, pending marker, active set. ARGV: now, pending seconds, most active
# -> 'queued' (already pending), 'full' (the cap is reached) or 'new' (queue the job now)
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'queued' end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'full' end
local expires = tonumber(ARGV[1]) + tonumber(ARGV[2])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
redis.call('ZADD', KEYS[3], expires, KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'pending', 'queued_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 'new'
"""

# KEYS: entry, pending marker, active set. ARGV: seconds kept, field, value, ...
_FINISH = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], KEYS[1])
return 1
"""


def normalised_request_window(
    since: datetime | None, until: datetime | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """A window of request time (aware) with its open ends made explicit: an ``until`` in the
    future means "up to now" (None) and a ``since`` at 1970 or before "from the start" (None),
    so every way of asking for the whole log, or for everything until now, is one report."""
    moment = now or datetime.now(UTC)
    if since is not None and since <= EPOCH:
        since = None
    if until is not None and until >= moment:
        until = None
    return since, until


def report_key(
    prefix: str, kind: str, model_id: str, window: tuple[Any, Any], version: str = ""
) -> str:
    text = "|".join(w.isoformat() if w is not None else "" for w in window) + f"|{version}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{prefix}:{kind}:{model_id}:{digest}"


def _active_key(prefix: str) -> str:
    return f"{prefix}:analysis:active"


def lookup_or_queue(
    app: Flask, key: str, task: str, args: list[Any], decode: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The cached entry under ``key`` ({"status": "completed", ...fields} or {"status":
    "failed", "error"}), or {"status": "pending"} after queueing ``task(*args, key)`` once.
    ``decode`` names fields kept as JSON. Raises TooManyReports at the cap."""
    client: redis.Redis = app.extensions["model_registry"].redis
    prefix = str(app.config["KEY_PREFIX"])
    cached: dict[str, str] = client.hgetall(key)  # type: ignore[assignment]
    status = cached.get("status", "")
    if status == "completed":
        found: dict[str, Any] = dict(cached)
        for name in decode or {}:
            if name in found:
                found[name] = json.loads(found[name])
        return found
    if status in ("failed", "pending"):
        return dict(cached)
    pending_seconds = int(app.config["JOB_TIME_LIMIT_SECONDS"]) + 60
    outcome = client.eval(
        _CLAIM, 3, key, f"{key}:queued", _active_key(prefix),
        time.time(), pending_seconds, int(app.config["ANALYSIS_MAX_ACTIVE"]),
    )  # fmt: skip
    if outcome == "full":
        raise TooManyReports(
            int(app.config["ANALYSIS_MAX_ACTIVE"]), int(app.config["ANALYSIS_RETRY_AFTER_SECONDS"])
        )
    if outcome == "new":
        app.extensions["celery"].send_task(task, args=[*args, key])
    return {"status": "pending"}


def queue_new(
    app: Flask, key: str, task: str, args: list[Any], fields: Mapping[str, str], keep_seconds: int
) -> None:
    """Queue a job whose entry is new (a comparison): the same cap as reports; its entry holds
    ``fields`` for ``keep_seconds``. Raises TooManyReports at the cap (nothing written)."""
    client: redis.Redis = app.extensions["model_registry"].redis
    prefix = str(app.config["KEY_PREFIX"])
    pending_seconds = int(app.config["JOB_TIME_LIMIT_SECONDS"]) + 60
    outcome = client.eval(
        _CLAIM, 3, key, f"{key}:queued", _active_key(prefix),
        time.time(), pending_seconds, int(app.config["ANALYSIS_MAX_ACTIVE"]),
    )  # fmt: skip
    if outcome == "full":
        raise TooManyReports(
            int(app.config["ANALYSIS_MAX_ACTIVE"]), int(app.config["ANALYSIS_RETRY_AFTER_SECONDS"])
        )
    with client.pipeline() as pipe:
        pipe.hset(key, mapping=dict(fields))  # type: ignore[arg-type]
        pipe.expire(key, max(keep_seconds, pending_seconds))
        pipe.execute()
    app.extensions["celery"].send_task(task, args=[*args])


def finish(app: Flask, key: str, fields: Mapping[str, str], keep_seconds: int) -> None:
    """Record a report's result (or failure) and free its place among the active ones."""
    client: redis.Redis = app.extensions["model_registry"].redis
    prefix = str(app.config["KEY_PREFIX"])
    flat = [item for pair in fields.items() for item in pair]
    client.eval(_FINISH, 3, key, f"{key}:queued", _active_key(prefix), max(1, keep_seconds), *flat)
