"""One lease for every kind of background job: training, schedule evaluation, comparison, reports.

A job is a Redis hash (its *record*: a model, a scheduled run, a comparison, a cached report)
with a ``status`` and these lease fields:

- ``attempt``      the token of the attempt that holds the job now
- ``attempts``     how many attempts started (a claim counts one)
- ``worker``       host:pid of the holder (shown, never trusted)
- ``lease_until``  when the holder's lease lapses, on Redis' own clock

Every delivery of a job's message first **claims** the record: only a job waiting in one of its
kind's claimable statuses, or held by an attempt whose lease lapsed, is claimed; a finished job is
never run again; past ``max_attempts`` the claim fails the job with the reason. The attempt then
**renews** its lease from a heartbeat thread (:class:`Attempt`) and **finishes** the job with a
write that succeeds only while it still holds it. An attempt whose worker was SIGKILLed stops
renewing; **recovery** notices the lapsed lease (:meth:`JobLease.expire`, or a claim that takes
the job over) and sends the job's message again. Each step is one Lua script keyed by the
record, so two attempts, or an attempt and a delete, never interleave inside one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import redis

log = logging.getLogger(__name__)

#: Redis' clock, at the top of every script that decides something by time (never the caller's)
REDIS_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "

# Arguments that vary in length are passed as counted lists: n, item1 .. itemn.
_READ_LISTS = """
local function list(at)
  local n = tonumber(ARGV[at])
  local items = {}
  for i = 1, n do items[#items + 1] = ARGV[at + i] end
  return items, at + n + 1
end
local function member(items, value)
  for _, item in ipairs(items) do if item == value then return true end end
  return false
end
"""

# KEYS: 1 record, [2 a queue set the job leaves once claimed]. ARGV: 1 token, 2 worker, 3 lease
# seconds, 4 most attempts, 5 now (display), 6 job id (the queue set's member), 7 running status,
# 8 failed status, then counted lists: claimable statuses, fields set on a claim, fields set when
# the job gives up. -> {'claimed', attempts} | {'leased', ''} | {'missing', ''} |
# {'exhausted', ''} | {'finished', status}
_CLAIM = (
    REDIS_NOW
    + _READ_LISTS
    + """
local k = KEYS[1]
local claimable, at = list(9)
local on_claim, at2 = list(at)
local on_give_up = list(at2)
local status = redis.call('HGET', k, 'status')
if not status then
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[6]) end
  return {'missing', ''}
end
if status == ARGV[7] then
  local holder = redis.call('HGET', k, 'attempt')
  -- this very claim, retried after a lost reply: it holds the job
  if holder == ARGV[1] then return {'claimed', redis.call('HGET', k, 'attempts')} end
  local lease = tonumber(redis.call('HGET', k, 'lease_until') or '0') or 0
  if holder and lease > now then return {'leased', ''} end
elseif not member(claimable, status) then
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[6]) end
  return {'finished', status}
end
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[6]) end
local attempts = (tonumber(redis.call('HGET', k, 'attempts') or '0') or 0) + 1
if attempts > tonumber(ARGV[4]) then
  redis.call('HSET', k, 'status', ARGV[8], 'finished_at', ARGV[5], unpack(on_give_up))
  redis.call('HDEL', k, 'lease_until', 'attempt')
  return {'exhausted', ''}
end
redis.call('HSET', k, 'status', ARGV[7], 'attempt', ARGV[1], 'attempts', attempts,
  'worker', ARGV[2], 'lease_until', now + tonumber(ARGV[3]))
if #on_claim > 0 then redis.call('HSET', k, unpack(on_claim)) end
redis.call('HDEL', k, 'error')
return {'claimed', tostring(attempts)}
"""
)

# KEYS: record. ARGV: 1 token, 2 lease seconds, 3 running status, field, value, ... -> 1, or 0
# when the record is gone or another attempt holds it now. Renews the lease.
_RENEW = (
    REDIS_NOW
    + """
local k = KEYS[1]
if redis.call('HGET', k, 'attempt') ~= ARGV[1] or redis.call('HGET', k, 'status') ~= ARGV[3] then
  return 0
end
redis.call('HSET', k, 'lease_until', now + tonumber(ARGV[2]))
if #ARGV > 3 then redis.call('HSET', k, unpack(ARGV, 4)) end
return 1
"""
)

# KEYS: record. ARGV: 1 token, 2 running status, field, value, ... (the new status among them)
# -> 1, or 0 when the attempt no longer holds the job (nothing written)
_FINISH = """
local k = KEYS[1]
if redis.call('HGET', k, 'attempt') ~= ARGV[1] or redis.call('HGET', k, 'status') ~= ARGV[2] then
  return 0
end
redis.call('HSET', k, unpack(ARGV, 3))
redis.call('HDEL', k, 'lease_until')
return 1
"""

# KEYS: 1 record, [2 the queue set it goes back to]. ARGV: 1 most attempts, 2 now (display),
# 3 job id, 4 running status, 5 requeue status, 6 failed status, then counted lists: fields set
# on a requeue, fields set when the job gives up
# -> 'requeue' (send its message again) | 'failed' | 'alive' (its holder renews it) | 'idle'
_EXPIRE = (
    REDIS_NOW
    + _READ_LISTS
    + """
local k = KEYS[1]
local on_requeue, at = list(7)
local on_give_up = list(at)
if redis.call('HGET', k, 'status') ~= ARGV[4] then return 'idle' end
local lease = tonumber(redis.call('HGET', k, 'lease_until') or '0') or 0
if lease > now then return 'alive' end
local attempts = tonumber(redis.call('HGET', k, 'attempts') or '0') or 0
redis.call('HDEL', k, 'lease_until', 'attempt')
if attempts >= tonumber(ARGV[1]) then
  redis.call('HSET', k, 'status', ARGV[6], 'finished_at', ARGV[2], unpack(on_give_up))
  return 'failed'
end
redis.call('HSET', k, 'status', ARGV[5], 'requeued_at', now)
if #on_requeue > 0 then redis.call('HSET', k, unpack(on_requeue)) end
if KEYS[2] then redis.call('ZADD', KEYS[2], now, ARGV[3]) end
return 'requeue'
"""
)

LOST_WORKER = "the worker running it stopped renewing its lease (killed, or cut off from Redis)"


def holder_name() -> str:
    """host:pid of this process: the ``worker`` an attempt records when it claims a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _flat(fields: Mapping[str, Any]) -> list[str]:
    return [item for k, v in fields.items() for item in (k, "" if v is None else str(v))]


def _counted(items: Iterable[str]) -> list[Any]:
    listed = list(items)
    return [len(listed), *listed]


class JobCancelled(Exception):
    """Raised inside a job whose attempt lost its lease (another attempt took over, or the
    record was deleted) while it ran: the attempt stops and writes nothing more."""


class ClaimResult:
    """What a claim decided for one delivery of a job's message."""

    CLAIMED = "claimed"  # this attempt runs the job
    DELETED = "missing"  # the record is gone: drop the message
    FINISHED = "finished"  # finished already: a duplicate or redelivered message
    LEASED = "leased"  # another live attempt holds it: drop the message
    EXHAUSTED = "exhausted"  # too many attempts: marked failed with the reason


@dataclass(frozen=True)
class JobKind:
    """The statuses one kind of job moves through (its record keeps the status)."""

    name: str
    claimable: tuple[str, ...] = ("pending",)
    running: str = "running"
    failed: str = "failed"
    requeued: str = "pending"


@dataclass(frozen=True)
class Claim:
    outcome: str
    attempt: int = 0
    detail: str = ""

    @property
    def claimed(self) -> bool:
        return self.outcome == ClaimResult.CLAIMED


class JobLease:
    """The lease scripts, bound to one Redis client (decode_responses=True)."""

    def __init__(self, client: Any) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(_FINISH)
        self._expire = client.register_script(_EXPIRE)

    def claim(
        self,
        kind: JobKind,
        key: str,
        token: str,
        worker: str,
        lease_seconds: float,
        max_attempts: int,
        *,
        job_id: str = "",
        queue: str | None = None,
        on_claim: Mapping[str, Any] | None = None,
        on_give_up: Mapping[str, Any] | None = None,
    ) -> Claim:
        """Start an attempt at the job whose record is ``key`` (see the module's docstring).

        A claim whose reply is lost (Redis restarting, a failover) is sent again with the same
        token for up to one lease: the script knows its own token, so the retried claim holds
        the job as the same attempt instead of leaving a claimed, unrenewed record behind to
        lapse and count a second attempt. Past the lease the error is raised."""
        give_up = on_give_up or {"error": f"gave up after {max_attempts} attempt(s): {LOST_WORKER}"}
        args = [
            token, worker, lease_seconds, max_attempts, now_iso(), job_id,
            kind.running, kind.failed,
            *_counted(kind.claimable), *_counted(_flat(on_claim or {})),
            *_counted(_flat(give_up)),
        ]  # fmt: skip
        outcome, detail = retry_while_away(
            lambda: self._claim(keys=[key] + ([queue] if queue else []), args=args),
            f"claiming {key}",
            lease_seconds,
        )
        if outcome == ClaimResult.CLAIMED:
            return Claim(outcome, int(detail))
        return Claim(str(outcome), 0, str(detail))

    def renew(
        self, kind: JobKind, key: str, token: str, lease_seconds: float, **fields: Any
    ) -> bool:
        """Renew the attempt's lease (and set informative ``fields``); False once another
        attempt holds the job or the record is gone: the caller must stop."""
        return bool(
            self._renew(keys=[key], args=[token, lease_seconds, kind.running, *_flat(fields)])
        )

    def finish(self, kind: JobKind, key: str, token: str, status: str, **fields: Any) -> bool:
        """Record the attempt's outcome; False (nothing written) when it no longer holds the job."""
        return bool(
            self._finish(
                keys=[key], args=[token, kind.running, *_flat({"status": status, **fields})]
            )
        )

    def expire(
        self,
        kind: JobKind,
        key: str,
        max_attempts: int,
        *,
        job_id: str = "",
        queue: str | None = None,
        on_requeue: Mapping[str, Any] | None = None,
        on_give_up: Mapping[str, Any] | None = None,
    ) -> str:
        """For a running job whose lease lapsed: 'requeue' (back to ``kind.requeued``: send its
        message again) or 'failed' (attempts used up); 'alive' while its holder renews the
        lease, 'idle' when it is not running."""
        give_up = on_give_up or {
            "error": f"{LOST_WORKER} after {max_attempts} attempt(s); start it again"
        }
        return str(
            self._expire(
                keys=[key] + ([queue] if queue else []),
                args=[
                    max_attempts,
                    now_iso(),
                    job_id,
                    kind.running,
                    kind.requeued,
                    kind.failed,
                    *_counted(_flat(on_requeue or {})),
                    *_counted(_flat(give_up)),
                ],
            )
        )


class Attempt:
    """Holds a job's lease while it runs: a heartbeat thread renews it every sixth of the
    lease; once a renewal says the lease is lost, :meth:`checkpoint` raises JobCancelled.

    ``renew`` is any call that renews and answers whether the lease is still held (a
    :meth:`JobLease.renew` bound to the job)."""

    def __init__(self, renew: Callable[[], bool], seconds: float, name: str) -> None:
        self.renew, self.lease, self.name = renew, seconds, name
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{name}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 6):
            try:
                held = self.renew()
            except redis.RedisError as exc:  # Redis away for a moment: the lease decides
                log.warning("renewing the lease of %s failed: %s", self.name, exc)
                continue
            if not held:
                self.lost.set()
                return

    def checkpoint(self) -> None:
        if self.lost.is_set():
            raise JobCancelled(self.name)

    def retrying(self, call: Callable[[], Any], what: str) -> Any:
        """``call`` (a Redis write that ends the job), retried while Redis is away for up to one
        lease; None when it never came back (the lease runs out and recovery redoes the job)."""
        try:
            return retry_while_away(call, what, self.lease)
        except redis.RedisError as exc:
            log.error("%s failed: %s", what, exc)
            return None


def retry_while_away(call: Callable[[], Any], what: str, seconds: float) -> Any:
    """``call`` (an idempotent Redis script or read), sent again while Redis is away for up to
    ``seconds``, backing off from 0.2 s to 5 s; the last error is raised past that."""
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            # every kind: a demoted master answers READONLY, a ResponseError, until clients move
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: Redis away (%s); trying again in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
