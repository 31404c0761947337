"""Reports computed over caller-grown data (drift, live performance) as cached worker jobs.

A report is asked for by model and window; a window of request time has its open ends
normalised (an ``until`` in the future is "until now", a ``since`` before 1970 "from the start")
so that one report serves every request that means the same thing. The API answers from the
cache: a finished report at once, a missing one is queued once (one Lua script: the pending marker, the
cap on reports being computed at once, the entry) and answered 202 until the worker wrote it. A
caller who asks for new windows faster than the workers compute them meets the cap: 429 with
Retry-After, no job. Reports run on their own queue (``<prefix>-analysis``), so training never
waits behind them, and each reads a bounded input (the newest rows of a window, at most).

Each job holds the lease every job has (flight_delay.tasks.lease) on its entry: a job whose
worker was killed is sent again by recovery (flight_delay.tasks.recovery) from the task and
arguments its entry keeps, and after ``JOB_MAX_ATTEMPTS`` attempts is failed with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask

from flight_delay.errors import FlightDelayError
from flight_delay.tasks.lease import (
    Attempt,
    ClaimResult,
    JobCancelled,
    JobKind,
    JobLease,
    holder_name,
    now_iso,
)

log = logging.getLogger(__name__)

#: the analysis queue's jobs: an entry is pending, running (leased), completed or failed
ANALYSIS = JobKind("analysis")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TooManyReports(FlightDelayError):
    """As many reports (or comparisons) as FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE are being
    computed: ask later."""

    http_status = 429

    def __init__(self, active: int, retry_after: int) -> None:
        super().__init__(
            f"{active} reports are being computed already (FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE); "
            f"ask again in {retry_after} s, or for a window already computed",
            [{"field": "window", "problem": "too many reports being computed at once"}],
        )
        self.retry_after = retry_after


# KEYS: entry, pending marker, active set. ARGV: now, pending seconds, most active, task, args
# (JSON), field, value, ... -> 'queued' (already pending), 'full' (the cap is reached) or 'new'
# (queue the job now: the entry keeps the task and its arguments, for recovery to resend them)
_QUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'queued' end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'full' end
local expires = tonumber(ARGV[1]) + tonumber(ARGV[2])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
redis.call('ZADD', KEYS[3], expires, KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'pending', 'queued_at', ARGV[1], 'task', ARGV[4],
  'args', ARGV[5], 'attempts', 0)
if #ARGV > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 6)) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 'new'
"""

# KEYS: entry, pending marker, active set. ARGV: seconds kept. A finished entry (its attempt's
# outcome recorded through the lease) is kept that long and frees its place among the active.
_RELEASE = """
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


def _queue(
    app: Flask, key: str, task: str, args: list[Any], fields: Mapping[str, str] | None = None
) -> str:
    """Record a pending entry and send ``task(*args)``, unless it is pending already or the cap
    is reached: 'new', 'queued' or 'full'."""
    client: redis.Redis = app.extensions["model_registry"].redis
    prefix = str(app.config["KEY_PREFIX"])
    pending_seconds = int(app.config["JOB_TIME_LIMIT_SECONDS"]) + 60
    flat = [item for pair in (fields or {}).items() for item in pair]
    outcome = str(client.eval(
        _QUEUE, 3, key, f"{key}:queued", _active_key(prefix),
        time.time(), pending_seconds, int(app.config["ANALYSIS_MAX_ACTIVE"]),
        task, json.dumps(args), *flat,
    ))  # fmt: skip
    if outcome == "full":
        raise TooManyReports(
            int(app.config["ANALYSIS_MAX_ACTIVE"]), int(app.config["ANALYSIS_RETRY_AFTER_SECONDS"])
        )
    if outcome == "new":
        app.extensions["celery"].send_task(task, args=args)
    return outcome


def lookup_or_queue(
    app: Flask, key: str, task: str, args: list[Any], decode: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The cached entry under ``key`` ({"status": "completed", ...fields} or {"status":
    "failed", "error"}), or {"status": "pending"} after queueing ``task(*args, key)`` once.
    ``decode`` names fields kept as JSON. Raises TooManyReports at the cap."""
    client: redis.Redis = app.extensions["model_registry"].redis
    cached: dict[str, str] = client.hgetall(key)  # type: ignore[assignment]
    status = cached.get("status", "")
    if status == "completed":
        found: dict[str, Any] = dict(cached)
        for name in decode or {}:
            if name in found:
                found[name] = json.loads(found[name])
        return found
    if status == "failed":
        return {"status": "failed", "error": cached.get("error", "")}
    if status in ("pending", "running"):
        return {"status": "pending"}
    _queue(app, key, task, [*args, key])
    return {"status": "pending"}


def queue_new(app: Flask, key: str, task: str, args: list[Any], fields: Mapping[str, str]) -> None:
    """Queue a job whose entry is new (a comparison): the same cap as reports; its entry holds
    ``fields`` until it finishes. Raises TooManyReports at the cap (nothing written)."""
    _queue(app, key, task, args, fields)


def _release(app: Flask, key: str, keep_seconds: int) -> None:
    client: redis.Redis = app.extensions["model_registry"].redis
    prefix = str(app.config["KEY_PREFIX"])
    client.eval(_RELEASE, 3, key, f"{key}:queued", _active_key(prefix), max(1, keep_seconds))


class JobFailed(Exception):
    """An analysis job that cannot be done: ``reason`` is shown to the caller, kept
    ``keep_seconds``."""

    def __init__(self, reason: str, keep_seconds: int) -> None:
        super().__init__(reason)
        self.reason, self.keep_seconds = reason, keep_seconds


def run(
    app: Flask,
    key: str,
    work: Callable[[Attempt], Mapping[str, str]],
    keep_seconds: int,
    what: str,
) -> str:
    """One attempt at the analysis job whose entry is ``key``: claim it, do ``work`` while
    holding its lease, record ``work``'s fields as completed (or the JobFailed reason as failed)
    and keep the entry ``keep_seconds``. An unexpected error fails the entry for at most a
    minute and is raised again (the worker logs it)."""
    lease: JobLease = app.extensions["model_registry"].lease
    seconds = float(app.config["JOB_LEASE_SECONDS"])
    token = uuid.uuid4().hex[:12]
    claim = lease.claim(
        ANALYSIS, key, token, holder_name(), seconds,
        int(app.config["JOB_MAX_ATTEMPTS"]), on_claim={"started_at": now_iso()},
    )  # fmt: skip
    if claim.outcome == ClaimResult.EXHAUSTED:
        _release(app, key, min(keep_seconds, 60))
    if not claim.claimed:
        log.info("%s not run: %s", what, claim.outcome)
        return claim.outcome
    with Attempt(lambda: lease.renew(ANALYSIS, key, token, seconds), seconds, key) as held:
        status, fields, keep = "completed", {}, keep_seconds
        try:
            fields = dict(work(held))
        except JobCancelled:
            log.info("%s lost its lease; another attempt owns it", what)
            return "cancelled"
        except JobFailed as exc:
            status, fields, keep = "failed", {"error": exc.reason[:2000]}, exc.keep_seconds
        except Exception as exc:
            fields = {"error": f"internal error: {type(exc).__name__}"}
            held.retrying(
                lambda: lease.finish(ANALYSIS, key, token, "failed", **fields), f"failing {what}"
            )
            _release(app, key, min(keep_seconds, 60))
            raise
        if held.retrying(
            lambda: lease.finish(ANALYSIS, key, token, status, finished_at=now_iso(), **fields),
            f"recording {what}",
        ):
            _release(app, key, keep)
        return status


def recover(app: Flask) -> dict[str, list[str]]:
    """Send again every analysis job whose worker is gone (its lease lapsed) or whose message
    waited longer than PENDING_RESEND_SECONDS; fail one whose attempts are used up."""
    client: redis.Redis = app.extensions["model_registry"].redis
    lease: JobLease = app.extensions["model_registry"].lease
    prefix = str(app.config["KEY_PREFIX"])
    done: dict[str, list[str]] = {"requeued": [], "failed": [], "resent": []}
    stale = time.time() - float(app.config["PENDING_RESEND_SECONDS"])
    keys: list[str] = client.zrangebyscore(_active_key(prefix), time.time(), "+inf")  # type: ignore[assignment]
    for key in keys:
        outcome = lease.expire(ANALYSIS, key, int(app.config["JOB_MAX_ATTEMPTS"]))
        if outcome == "failed":
            _release(app, key, 60)
            done["failed"].append(key)
            continue
        entry: dict[str, str] = client.hgetall(key)  # type: ignore[assignment]
        if not entry.get("task"):
            continue
        if outcome == "requeue":
            action = "requeued"
        elif entry.get("status") == "pending" and float(entry.get("queued_at") or 0) < stale:
            action = "resent"  # Redis restarted, or the message waited too long: send it again
        else:
            continue
        client.hset(key, "queued_at", str(time.time()))
        app.extensions["celery"].send_task(entry["task"], args=json.loads(entry["args"]))
        done[action].append(key)
    return done
