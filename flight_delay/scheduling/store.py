"""Retraining schedules and their runs in Redis; every lifecycle rule is one Lua script.

Keys (``fd`` is the configurable prefix):

- ``fd:schedule:{id}``             hash: name, dataset, timing, settings, rule, paused, next run,
                                   run counters, the unfinished run (``active_run``)
- ``fd:schedules``                 sorted set of schedule ids by creation time
- ``fd:schedules:due``             sorted set of schedule ids by next run time (epoch seconds);
                                   a paused schedule is not in it
- ``fd:schedule:{id}:runs``        sorted set of the schedule's run ids by run number
- ``fd:schedule-run:{id}``         hash: the run (a snapshot of the schedule's settings, the
                                   challenger, the evaluation, the decision and why)
- ``fd:schedule-runs:unfinished``  set of run ids not completed or failed

A run goes ``queued`` (a due time was claimed) -> ``training`` (its challenger model is queued
as an ordinary training job) -> ``evaluating`` (a worker holds the run's lease) -> ``completed``
(decision ``promoted`` or ``kept``) or ``failed`` (with the reason). A due time is claimed by a
compare-and-set on the schedule's score in the due set, so however many beats tick at once,
each due time starts at most one run; a schedule never has two unfinished runs (a due time that
finds one running is counted as skipped).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flight_delay.errors import Conflict, NotFound
from flight_delay.registry import ModelRegistry
from flight_delay.scheduling.lifecycle import RunLifecycle, RunStatus
from flight_delay.scheduling.timing import iso
from flight_delay.tasks.lease import now_iso


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(
            f"no schedule with id {schedule_id!r}",
            [{"field": "schedule_id", "problem": "not found"}],
        )


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"no run {run_id!r} of this schedule", [{"field": "run_id", "problem": "not found"}]
        )


class RunInProgress(Conflict):
    """A schedule has at most one unfinished run."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} of this schedule has not finished; a schedule runs once at a time",
            [{"field": "schedule_id", "problem": f"run {run_id} unfinished"}],
        )


class TooManySchedules(Conflict):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"there are {limit} schedules already (FLIGHT_DELAY_SCHEDULE_MAX); delete one first",
            [{"field": "schedules", "problem": f"at most {limit}"}],
        )


_JSON_FIELDS = ("settings", "rule", "evaluation", "reasons")
_INT_FIELDS = ("runs", "skipped", "number", "attempts", "every_seconds", "deployment_version")

# -- scripts ------------------------------------------------------------------------------------
# The start of a run. KEYS: 2 schedule, 3 run, 4 unfinished, 5 runs index. ARGV: 1 schedule id,
# 4 run id, 5 now, 6 the due time it runs for, 7 trigger, 8 requested by, 9 '1': a due time
# (counted as skipped when a run is unfinished)
_START = """
local function start()
  local active = redis.call('HGET', KEYS[2], 'active_run')
  if active and active ~= '' and redis.call('SISMEMBER', KEYS[4], active) == 1 then
    if ARGV[9] == '1' then
      redis.call('HINCRBY', KEYS[2], 'skipped', 1)
      redis.call('HSET', KEYS[2], 'last_skipped_at', ARGV[5])
    end
    return {'skipped', active}
  end
  local number = redis.call('HINCRBY', KEYS[2], 'runs', 1)
  local s = redis.call('HMGET', KEYS[2], 'dataset', 'settings', 'rule', 'name')
  redis.call('HSET', KEYS[3], 'id', ARGV[4], 'schedule_id', ARGV[1], 'number', number,
    'trigger', ARGV[7], 'requested_by', ARGV[8], 'scheduled_for', ARGV[6],
    'created_at', ARGV[5], 'status', 'queued', 'dataset', s[1], 'settings', s[2], 'rule', s[3],
    'schedule_name', s[4], 'attempts', 0)
  redis.call('HSET', KEYS[2], 'active_run', ARGV[4], 'last_run_id', ARGV[4])
  redis.call('SADD', KEYS[4], ARGV[4])
  redis.call('ZADD', KEYS[5], number, ARGV[4])
  return {'started', tostring(number)}
end
"""

# KEYS: 1 due, 2 schedule, 3 run, 4 unfinished, 5 runs index. ARGV: 1 schedule id, 2 the due
# time read, 3 the next due time, 4-8 as _START -> {'started', number} | {'skipped', run id}
# | {'taken', ''} (another beat claimed it first) | {'gone', ''} (deleted or paused meanwhile)
_CLAIM_DUE = (
    _START
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return {'taken', ''} end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {'gone', ''}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], 'next_run_at', ARGV[3])
return start()
"""
)

# as _CLAIM_DUE, for a run asked for now (POST /schedules/{id}/runs): no due time consumed
_START_NOW = (
    _START
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'gone', ''} end
return start()
"""
)

# KEYS: schedule, due, index, runs index, unfinished. ARGV: id -> 1, or 0 when missing. The
# finished runs go with it; an unfinished one completes without promoting (its schedule is gone)
# and expires a day later.
_DELETE_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for _, run_id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if redis.call('SISMEMBER', KEYS[5], run_id) == 0 then
    redis.call('DEL', ARGV[2] .. run_id)
  else
    redis.call('EXPIRE', ARGV[2] .. run_id, 86400)
  end
end
redis.call('DEL', KEYS[4])
return 1
"""

# KEYS: schedule, due. ARGV: id, the due time ('' = not due: paused; 'keep' = as it is now,
# which a beat may have moved since the caller read it), field, value, ...
# -> 1, or 0 when the schedule is gone
_UPDATE_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'next_run_at', '')
elseif ARGV[2] ~= 'keep' then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'next_run_at', ARGV[2])
end
return 1
"""

#: ScheduleStore.update's ``due`` that leaves the next run time as it is
KEEP_DUE = "keep"


class ScheduleStore:
    """Schedules and their runs' records, on the model registry's Redis connection and key
    prefix; a run's transitions are ``lifecycle``'s (flight_delay.scheduling.lifecycle)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.redis: Any = registry.redis
        self.prefix = registry.prefix
        self.lease = registry.lease
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in (
                ("claim_due", _CLAIM_DUE),
                ("start_now", _START_NOW),
                ("delete_schedule", _DELETE_SCHEDULE),
                ("update_schedule", _UPDATE_SCHEDULE),
            )
        }
        self.lifecycle = RunLifecycle(self)

    # -- keys ----------------------------------------------------------------------------------
    def _schedule_key(self, schedule_id: str) -> str:
        return f"{self.prefix}:schedule:{schedule_id}"

    def _runs_key(self, schedule_id: str) -> str:
        return f"{self.prefix}:schedule:{schedule_id}:runs"

    @property
    def _run_prefix(self) -> str:
        return f"{self.prefix}:schedule-run:"

    def run_key(self, run_id: str) -> str:
        return self._run_prefix + run_id

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:schedules"

    @property
    def _due_key(self) -> str:
        return f"{self.prefix}:schedules:due"

    @property
    def _unfinished_key(self) -> str:
        return f"{self.prefix}:schedule-runs:unfinished"

    def run_keys(self, run: Mapping[str, Any]) -> list[str]:
        """A run's record, its schedule's and the unfinished set: what finishing one touches."""
        return [
            self.run_key(run["id"]),
            self._schedule_key(run["schedule_id"]),
            self._unfinished_key,
        ]

    # -- schedules -----------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.redis.zcard(self._index_key))

    def create(self, fields: Mapping[str, Any], due: int | None) -> dict[str, Any]:
        """A new schedule with ``fields``; ``due`` is its first run time (None: paused)."""
        schedule_id = str(uuid.uuid4())
        record = {
            "id": schedule_id,
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "runs": 0,
            "skipped": 0,
            "active_run": "",
            "last_run_id": "",
            "next_run_at": "" if due is None else due,
            **fields,
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(self._schedule_key(schedule_id), mapping=self._encode_all(record))
            pipe.zadd(self._index_key, {schedule_id: time.time()})
            if due is not None:
                pipe.zadd(self._due_key, {schedule_id: due})
            pipe.execute()
        return self.get(schedule_id)

    def get(self, schedule_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self._schedule_key(schedule_id))
        if not raw:
            raise ScheduleNotFound(schedule_id)
        return _decode(raw)

    def schedules(self) -> list[dict[str, Any]]:
        ids = self.redis.zrevrange(self._index_key, 0, -1)
        with self.redis.pipeline() as pipe:
            for schedule_id in ids:
                pipe.hgetall(self._schedule_key(schedule_id))
            rows = pipe.execute()
        return [_decode(raw) for raw in rows if raw]

    def update(
        self, schedule_id: str, fields: Mapping[str, Any], due: int | str | None = KEEP_DUE
    ) -> None:
        """Set ``fields`` and the next run time (None: paused; KEEP_DUE: unchanged, whatever a
        beat made it meanwhile) in one step."""
        args = self.encode_args({**fields, "updated_at": now_iso()})
        done = self._scripts["update_schedule"](
            keys=[self._schedule_key(schedule_id), self._due_key],
            args=[schedule_id, "" if due is None else due, *args],
        )
        if not done:
            raise ScheduleNotFound(schedule_id)

    def delete(self, schedule_id: str) -> None:
        done = self._scripts["delete_schedule"](
            keys=[
                self._schedule_key(schedule_id),
                self._due_key,
                self._index_key,
                self._runs_key(schedule_id),
                self._unfinished_key,
            ],
            args=[schedule_id, self._run_prefix],
        )
        if not done:
            raise ScheduleNotFound(schedule_id)

    # -- starting runs -------------------------------------------------------------------------
    def due(self, now: float, limit: int = 100) -> list[tuple[str, int]]:
        """(schedule id, due time) of the schedules due at ``now``, earliest first."""
        found = self.redis.zrangebyscore(
            self._due_key, "-inf", now, start=0, num=limit, withscores=True
        )
        return [(schedule_id, int(score)) for schedule_id, score in found]

    def claim_due(
        self, schedule_id: str, due: int, following: int, requested_by: str
    ) -> tuple[str, str]:
        """Claim the due time ``due`` of a schedule and move it on to ``following``: (outcome,
        detail) as the script says; 'started' (the run is created) comes with the run's id,
        'skipped' with the unfinished run's."""
        run_id = str(uuid.uuid4())
        outcome, detail = self._scripts["claim_due"](
            keys=self._start_keys(schedule_id, run_id),
            args=[
                schedule_id,
                due,
                following,
                run_id,
                now_iso(),
                iso(due),
                "schedule",
                requested_by,
                "1",
            ],
        )
        return str(outcome), run_id if outcome == "started" else str(detail)

    def start_now(self, schedule_id: str, requested_by: str) -> dict[str, Any]:
        """A run asked for now; raises RunInProgress while the schedule has one unfinished."""
        run_id = str(uuid.uuid4())
        now = now_iso()
        outcome, detail = self._scripts["start_now"](
            keys=self._start_keys(schedule_id, run_id),
            args=[schedule_id, "", "", run_id, now, now, "manual", requested_by, "0"],
        )
        if outcome == "gone":
            raise ScheduleNotFound(schedule_id)
        if outcome == "skipped":
            raise RunInProgress(str(detail))
        return self.get_run(run_id)

    def _start_keys(self, schedule_id: str, run_id: str) -> list[str]:
        return [
            self._due_key,
            self._schedule_key(schedule_id),
            self.run_key(run_id),
            self._unfinished_key,
            self._runs_key(schedule_id),
        ]

    # -- runs ----------------------------------------------------------------------------------
    def get_run(self, run_id: str, schedule_id: str | None = None) -> dict[str, Any]:
        raw = self.redis.hgetall(self.run_key(run_id))
        if not raw or (schedule_id is not None and raw.get("schedule_id") != schedule_id):
            raise RunNotFound(run_id)
        return _decode(raw)

    def runs(
        self, schedule_id: str, limit: int = 20, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The schedule's runs, newest first: at most ``limit``, numbered below ``before``."""
        top = f"({before}" if before is not None else "+inf"
        ids = self.redis.zrevrangebyscore(
            self._runs_key(schedule_id), top, "-inf", start=0, num=limit
        )
        with self.redis.pipeline() as pipe:
            for run_id in ids:
                pipe.hgetall(self.run_key(run_id))
            rows = pipe.execute()
        return [_decode(raw) for raw in rows if raw]

    def unfinished(self) -> list[dict[str, Any]]:
        ids = sorted(self.redis.smembers(self._unfinished_key))
        with self.redis.pipeline() as pipe:
            for run_id in ids:
                pipe.hgetall(self.run_key(run_id))
            rows = pipe.execute()
        unfinished = []
        for run_id, raw in zip(ids, rows, strict=True):
            if not raw:  # expired with its deleted schedule
                self.redis.srem(self._unfinished_key, run_id)
            elif raw.get("status") not in RunStatus.UNFINISHED:
                self.lifecycle.release(raw)  # failed by its lease; its releaser died before this
            else:
                unfinished.append(_decode(raw))
        return unfinished

    def set_run_fields(self, run_id: str, **fields: Any) -> None:
        """Informative fields only (never status or ownership)."""
        self.redis.hset(self.run_key(run_id), mapping=self._encode_all(fields))

    def trim_runs(self, schedule_id: str, keep: int) -> int:
        """Delete the oldest finished runs beyond the newest ``keep``; how many went."""
        old = self.redis.zrange(self._runs_key(schedule_id), 0, -(keep + 1))
        unfinished = self.redis.smembers(self._unfinished_key)
        gone = [run_id for run_id in old if run_id not in unfinished]
        if gone:
            with self.redis.pipeline() as pipe:
                pipe.delete(*[self.run_key(run_id) for run_id in gone])
                pipe.zrem(self._runs_key(schedule_id), *gone)
                pipe.execute()
        return len(gone)

    # -- encoding ------------------------------------------------------------------------------
    @classmethod
    def encode_args(cls, fields: Mapping[str, Any]) -> list[str]:
        """``fields`` encoded as a script's field, value, ... arguments."""
        return [item for pair in cls._encode_all(fields).items() for item in pair]

    @staticmethod
    def _encode_all(fields: Mapping[str, Any]) -> dict[str, str]:
        encoded = {}
        for name, value in fields.items():
            if name in _JSON_FIELDS:
                encoded[name] = json.dumps(value)
            elif isinstance(value, bool):
                encoded[name] = "1" if value else "0"
            else:
                encoded[name] = "" if value is None else str(value)
        return encoded


def _decode(raw: Mapping[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = dict(raw)
    for name in _JSON_FIELDS:
        if record.get(name):
            record[name] = json.loads(record[name])
    for name in _INT_FIELDS:
        if record.get(name) not in (None, ""):
            record[name] = int(record[name])
    if "paused" in record:
        record["paused"] = record["paused"] == "1"
    return record
