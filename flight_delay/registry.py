"""Model records in Redis: one hash per model, an index by creation time, the deployed pointer.

Keys (``fd`` is the configurable prefix):

- ``fd:model:{id}``          hash: status, times, settings, progress, metrics, schema, error
- ``fd:models``              sorted set of ids scored by creation time (newest first on read)
- ``fd:deployment``          hash: ``model_id``, ``version`` (incremented on every deploy), time
- ``fd:deployment:history``  list of JSON deploy events, newest first
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis

from flight_delay import redis_connection
from flight_delay.config import DefaultConfig, settings_of
from flight_delay.errors import Conflict, FlightDelayError, NotFound
from flight_delay.tasks.lease import (
    LOST_WORKER,
    ClaimResult,
    JobCancelled,
    JobKind,
    JobLease,
    now_iso,
)

__all__ = ["ClaimResult", "JobCancelled", "now_iso"]  # the job vocabulary, re-exported


class Status:
    """A model's lifecycle, in one place."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ALL = (PENDING, RUNNING, COMPLETED, FAILED)
    UNFINISHED = (PENDING, RUNNING)


class ModelNotFound(NotFound):
    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"no model with id {model_id!r}", [{"field": "model_id", "problem": "not found"}]
        )
        self.model_id = model_id


class ModelNotReady(Conflict):
    """The model exists but is not in a state that allows the operation."""

    def __init__(self, model_id: str, status: str, action: str) -> None:
        super().__init__(
            f"model {model_id} is {status}; {action} needs a completed model",
            [{"field": "model_id", "problem": f"status is {status}"}],
        )


class ModelDeployed(Conflict):
    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model {model_id} is deployed; deploy another model before deleting it",
            [{"field": "model_id", "problem": "deployed"}],
        )


class DeploymentMoved(Conflict):
    """A conditional deploy found another model deployed than the one it was decided against."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(
            f"the deployment moved to {current or 'nothing'} (expected {expected or 'nothing'})",
            [{"field": "deployment", "problem": f"now {current or 'nothing'}"}],
        )
        self.current = current


class TooManyPendingJobs(FlightDelayError):
    """MAX_PENDING_JOBS training jobs wait for a worker already."""

    http_status = 429

    def __init__(self, pending: int, retry_after: int) -> None:
        super().__init__(
            f"{pending} training jobs are waiting for a worker already "
            f"(FLIGHT_DELAY_MAX_PENDING_JOBS); nothing was created: try again in {retry_after} s",
            [{"field": "jobs", "problem": "too many training jobs waiting"}],
        )
        self.retry_after = retry_after


_JSON_FIELDS = ("settings", "metrics", "input_schema", "data", "importances", "cross_validation")


# Lifecycle rules run inside Redis as Lua scripts: each reads and writes in one atomic step, so a
# check can never be overtaken by a concurrent request between the read and the write. Times that
# decide something (leases) come from Redis' own clock (TIME), never from the callers' clocks.
# A training job's lease is the one every kind of job has (flight_delay.tasks.lease).
TRAINING = JobKind("training")

# KEYS: record. ARGV: field, value, ... -> 1, or 0 when the record is gone (never resurrected)
_UPDATE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV)) return 1
"""

# KEYS: record, index, deployment, pending set. ARGV: id -> 'deployed', 'missing', or the
# deleted status
_DELETE_UNLESS_DEPLOYED = """
if redis.call('HGET', KEYS[3], 'model_id') == ARGV[1] then return 'deployed' end
redis.call('ZREM', KEYS[4], ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then redis.call('ZREM', KEYS[2], ARGV[1]) return 'missing' end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return status
"""

# KEYS: record, index, pending set. ARGV: id, created (epoch), most pending (0: no limit),
# field, value, ... -> 1 created, or 0 (nothing written) when that many jobs wait already. Ids
# in the pending set whose record is no longer pending (claimed, deleted by hand) are dropped
# first: the set never overstates the queue. (Their record keys are derived from KEYS[1]'s
# prefix: one Redis, or one master behind Sentinel, holds every key.)
_CREATE_WITHIN_QUOTA = """
local limit = tonumber(ARGV[3])
if limit > 0 then
  local waiting = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    local record = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1]) .. id
    if redis.call('HGET', record, 'status') == 'pending' then
      waiting = waiting + 1
    else
      redis.call('ZREM', KEYS[3], id)
    end
  end
  if waiting >= limit then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

#: The deploy itself, shared by every script that deploys: KEYS[2] deployment, KEYS[3] history;
#: ARGV[1] model id, ARGV[2] deployed_at, ARGV[3] by. Leaves the history event (JSON) in
#: ``event`` and the new deployment version in ``version``.
_DEPLOY_STEP = """
local previous = redis.call('HGET', KEYS[2], 'model_id')
redis.call('HSET', KEYS[2], 'model_id', ARGV[1], 'deployed_at', ARGV[2])
local version = redis.call('HINCRBY', KEYS[2], 'version', 1)
local event = cjson.encode({model_id = ARGV[1], deployed_at = ARGV[2],
  previous_model_id = previous or cjson.null, by = ARGV[3], version = version})
redis.call('LPUSH', KEYS[3], event)
redis.call('LTRIM', KEYS[3], 0, 999)
"""

# KEYS: record, deployment, history. ARGV: id, deployed_at, by -> {'ok', event} or {reason, status}
_DEPLOY_IF_COMPLETED = (
    """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
if status ~= 'completed' then return {'not_completed', status} end
"""
    + _DEPLOY_STEP
    + """
return {'ok', event}
"""
)

#: The conditional deploy: the model is deployed only while the deployment still points at
#: ARGV[4] ('' = nothing deployed) and the model is completed. A script that must deploy
#: together with changes of its own (a scheduled run's promotion, in
#: flight_delay.scheduling.lifecycle) starts with this fragment, passing ``deploy_keys`` as its
#: KEYS[1..3] and ``deploy_args`` as its ARGV[1..4]; it returns early {'moved', current id} or
#: {'not_completed', status}, else leaves ``event`` and ``version`` for the rest of the script.
CONDITIONAL_DEPLOY = (
    """
local current = redis.call('HGET', KEYS[2], 'model_id') or ''
if current ~= ARGV[4] then return {'moved', current} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'completed' then return {'not_completed', status or 'deleted'} end
"""
    + _DEPLOY_STEP
)
#: the number of KEYS and ARGV that CONDITIONAL_DEPLOY takes (a composing script's own follow)
CONDITIONAL_DEPLOY_KEYS = 3
CONDITIONAL_DEPLOY_ARGS = 4

# KEYS, ARGV: as CONDITIONAL_DEPLOY -> {'ok', event} | {'moved', current} | {'not_completed', status}
_DEPLOY_IF_CURRENT = (
    CONDITIONAL_DEPLOY
    + """
return {'ok', event}
"""
)


class ModelRegistry:
    """Reads and writes model records. Created unbound; ``init_app`` connects it."""

    def __init__(self) -> None:
        # decode_responses=True: every value is str (redis-py's stubs cannot say so)
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self.prefix = "fd"

    def init_app(self, app: Any) -> None:
        """Give ``app`` its own connected registry (``app.extensions["model_registry"]``), so
        several apps in one process (tests, tools) never share a connection or a key prefix."""
        app.extensions["model_registry"] = ModelRegistry().connect(
            redis_connection.connect(app.config), app.config["KEY_PREFIX"]
        )

    def connect(self, client: redis.Redis | str, prefix: str = "fd") -> ModelRegistry:
        """Bind to ``client`` (one made by :func:`flight_delay.redis_connection.connect`, with
        its bounds and replication policy), or to a single server's URL with the defaults."""
        if isinstance(client, str):
            client = redis_connection.connect({**settings_of(DefaultConfig), "REDIS_URL": client})
        self._redis = client
        self.prefix = prefix
        self.lease = JobLease(self._redis)
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("update_if_exists", _UPDATE_IF_EXISTS),
                ("delete_unless_deployed", _DELETE_UNLESS_DEPLOYED),
                ("deploy_if_completed", _DEPLOY_IF_COMPLETED),
                ("deploy_if_current", _DEPLOY_IF_CURRENT),
                ("create_within_quota", _CREATE_WITHIN_QUOTA),
            )
        }
        return self

    @property
    def redis(self) -> Any:
        if self._redis is None:
            raise RuntimeError("ModelRegistry is not connected (init_app was not called)")
        return self._redis

    def _script(self, name: str) -> Any:
        if not self._scripts:
            raise RuntimeError("ModelRegistry is not connected (init_app was not called)")
        return self._scripts[name]

    # -- keys ----------------------------------------------------------------------------------
    def model_key(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:models"

    @property
    def deployment_key(self) -> str:
        return f"{self.prefix}:deployment"

    @property
    def history_key(self) -> str:
        return f"{self.prefix}:deployment:history"

    @property
    def _pending_key(self) -> str:
        """Ids of the jobs waiting for a worker (pending), for the quota."""
        return f"{self.prefix}:jobs:pending"

    @property
    def _server_key(self) -> str:
        return f"{self.prefix}:redis-run-id"

    # -- records -------------------------------------------------------------------------------
    def create(
        self,
        settings: Mapping[str, Any],
        dataset: str,
        description: str = "",
        extra: Mapping[str, str] | None = None,
        max_pending: int | None = None,
        retry_after: int = 30,
    ) -> dict[str, Any]:
        """A pending model record; ``extra`` adds plain fields (``schedule_run``: the scheduled
        run that trains it).

        Raises:
            TooManyPendingJobs: ``max_pending`` jobs wait already (nothing was written).
        """
        model_id = str(uuid.uuid4())
        created = time.time()
        record: dict[str, str] = {
            "id": model_id,
            "status": Status.PENDING,
            "created_at": now_iso(),
            "dataset": dataset,
            "description": description,
            "model_type": settings.get("model_type", ""),
            "features": settings.get("features", ""),
            "settings": json.dumps(dict(settings)),
            "stage": "queued",
            "percent": "0",
            "attempts": "0",
            "enqueued_at": str(created),
            **(extra or {}),
        }
        fields = [item for pair in record.items() for item in pair]
        made = self._script("create_within_quota")(
            keys=[self.model_key(model_id), self._index_key, self._pending_key],
            args=[model_id, created, max_pending or 0, *fields],
        )
        if not made:
            raise TooManyPendingJobs(int(max_pending or 0), retry_after)
        return self.get(model_id)

    def get(self, model_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self.model_key(model_id))
        if not raw:
            raise ModelNotFound(model_id)
        return self._decode(raw)

    def models(self, status: str | None = None) -> list[dict[str, Any]]:
        ids = self.redis.zrevrange(self._index_key, 0, -1)
        with self.redis.pipeline() as pipe:
            for model_id in ids:
                pipe.hgetall(self.model_key(model_id))
            rows = pipe.execute()
        records = [self._decode(raw) for raw in rows if raw]
        return [r for r in records if status is None or r["status"] == status]

    def models_page(
        self, status: str | None, limit: int, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` records, newest first, starting after the model ``after`` (the last
        one of the previous page); (the records, the id to pass as ``after`` for the next page,
        or None on the last page).

        Raises:
            ModelNotFound: ``after`` is not a model (deleted since, or never one).
        """
        start = 0
        if after is not None:
            rank = self.redis.zrevrank(self._index_key, after)
            if rank is None:
                raise ModelNotFound(after)
            start = rank + 1
        found: list[dict[str, Any]] = []
        chunk = max(limit, 100)
        while len(found) <= limit:
            ids = self.redis.zrevrange(self._index_key, start, start + chunk - 1)
            if not ids:
                break
            with self.redis.pipeline() as pipe:
                for model_id in ids:
                    pipe.hgetall(self.model_key(model_id))
                rows = pipe.execute()
            for raw in rows:
                if raw and (status is None or raw.get("status") == status):
                    found.append(self._decode(raw))
            start += len(ids)
        more = len(found) > limit
        return found[:limit], (str(found[limit - 1]["id"]) if more else None)

    def update(self, model_id: str, **fields: Any) -> bool:
        """Set fields on an existing record; False (and nothing written) when it was deleted."""
        args = self._args(fields)
        return bool(self._script("update_if_exists")(keys=[self.model_key(model_id)], args=args))

    def delete(self, model_id: str) -> str:
        """Delete a record unless it is deployed, in one atomic step.

        Returns:
            the status the record had.

        Raises:
            ModelDeployed: it is the deployed model (nothing changed).
            ModelNotFound: there is no such record.
        """
        outcome = self._script("delete_unless_deployed")(
            keys=[
                self.model_key(model_id),
                self._index_key,
                self.deployment_key,
                self._pending_key,
            ],
            args=[model_id],
        )
        if outcome == "deployed":
            raise ModelDeployed(model_id)
        if outcome == "missing":
            raise ModelNotFound(model_id)
        return str(outcome)

    # -- job attempts --------------------------------------------------------------------------
    def claim(
        self, model_id: str, token: str, worker: str, lease_seconds: float, max_attempts: int
    ) -> tuple[str, int]:
        """Start an attempt at a training job: (a ClaimResult value, the attempt number when
        claimed). Only a pending job, or a running one whose lease lapsed, is claimed."""
        claim = self.lease.claim(
            TRAINING, self.model_key(model_id), token, worker, lease_seconds, max_attempts,
            job_id=model_id, queue=self._pending_key,
            on_claim={"started_at": now_iso(), "stage": "starting", "percent": 1},
            on_give_up={
                "stage": "failed",
                "error": f"gave up after {max_attempts} attempt(s): {LOST_WORKER}",
            },
        )  # fmt: skip
        return claim.outcome, claim.attempt

    def attempt_update(
        self, model_id: str, token: str, lease_seconds: float, **fields: Any
    ) -> bool:
        """Renew the attempt's lease and set ``fields``; False when the model was deleted or
        another attempt holds it now (the caller must stop)."""
        args = dict(zip(fields, (self._encode(k, v) for k, v in fields.items()), strict=True))
        return self.lease.renew(TRAINING, self.model_key(model_id), token, lease_seconds, **args)

    def attempt_finish(self, model_id: str, token: str, status: str, **fields: Any) -> bool:
        """Record the attempt's outcome; False when it no longer holds the job."""
        args = dict(zip(fields, (self._encode(k, v) for k, v in fields.items()), strict=True))
        return self.lease.finish(TRAINING, self.model_key(model_id), token, status, **args)

    def expire_lease(self, model_id: str, max_attempts: int) -> str:
        """For a running job whose lease ran out: 'requeue' (back to pending: send its message
        again) or 'failed' (attempts used up); 'alive' when its worker still renews it."""
        outcome = self.lease.expire(
            TRAINING, self.model_key(model_id), max_attempts,
            job_id=model_id, queue=self._pending_key,
            on_requeue={"stage": "queued again: its worker was lost", "percent": 0},
            on_give_up={
                "stage": "failed",
                "error": f"{LOST_WORKER} after {max_attempts} attempt(s); train it again",
            },
        )  # fmt: skip
        return "alive" if outcome == "idle" else outcome

    def unfinished_ids(self) -> dict[str, list[str]]:
        """Ids of pending and running jobs, by status."""
        found: dict[str, list[str]] = {Status.PENDING: [], Status.RUNNING: []}
        ids = self.redis.zrevrange(self._index_key, 0, -1)
        with self.redis.pipeline() as pipe:
            for model_id in ids:
                pipe.hget(self.model_key(model_id), "status")
            statuses = pipe.execute()
        for model_id, status in zip(ids, statuses, strict=True):
            if status in found:
                found[status].append(model_id)
        return found

    def server_restarted(self) -> bool:
        """True once after Redis restarted (its run_id changed) since the last call anywhere."""
        run_id = self.redis.info("server").get("run_id", "")
        previous = self.redis.getset(self._server_key, run_id)
        return previous is not None and previous != run_id

    # -- deployment ----------------------------------------------------------------------------
    def deploy(self, model_id: str, by: str = "") -> dict[str, Any]:
        """Point every process at a completed model, atomically: the status check, the new
        pointer, the version and the history event (with the previous id) are one step.

        Raises:
            ModelNotFound: no such record (deleted meanwhile).
            ModelNotReady: the model is not completed.
        """
        outcome, detail = self._script("deploy_if_completed")(
            keys=[self.model_key(model_id), self.deployment_key, self.history_key],
            args=[model_id, now_iso(), by],
        )
        if outcome == "missing":
            raise ModelNotFound(model_id)
        if outcome == "not_completed":
            raise ModelNotReady(model_id, detail, "deploying")
        event: dict[str, Any] = json.loads(detail)
        return event

    def deploy_keys(self, model_id: str) -> list[str]:
        """KEYS[1..3] of ``CONDITIONAL_DEPLOY`` for deploying ``model_id``."""
        return [self.model_key(model_id), self.deployment_key, self.history_key]

    @staticmethod
    def deploy_args(model_id: str, by: str, expected: str | None) -> list[str]:
        """ARGV[1..4] of ``CONDITIONAL_DEPLOY``: deploy ``model_id`` while ``expected`` (None:
        nothing) is deployed."""
        return [model_id, now_iso(), by, expected or ""]

    def deploy_if_current(
        self, model_id: str, expected: str | None, by: str = ""
    ) -> dict[str, Any]:
        """Deploy ``model_id`` only while ``expected`` (None: nothing) is still deployed: a
        caller that decided on what it read is never applied over a deploy it did not see.

        Raises:
            DeploymentMoved: another model was deployed meanwhile.
            ModelNotReady: the model is not completed (or was deleted).
        """
        outcome, detail = self._script("deploy_if_current")(
            keys=self.deploy_keys(model_id), args=self.deploy_args(model_id, by, expected)
        )
        if outcome == "moved":
            raise DeploymentMoved(expected, detail or None)
        if outcome == "not_completed":
            raise ModelNotReady(model_id, detail, "deploying")
        event: dict[str, Any] = json.loads(detail)
        return event

    def deployment(self) -> tuple[str | None, int]:
        """(deployed model id, deployment version): one round trip, read by every API process."""
        model_id, version = self.redis.hmget(self.deployment_key, ["model_id", "version"])
        return model_id, int(version or 0)

    def deployment_state(self) -> tuple[str | None, int, list[dict[str, Any]]]:
        """(deployed id, version, history newest first) read in one transaction: never a
        pointer from one deploy with the history of another."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self.deployment_key, ["model_id", "version"])
            pipe.lrange(self.history_key, 0, -1)
            (model_id, version), history = pipe.execute()
        return model_id, int(version or 0), [json.loads(item) for item in history]

    def keep_deploy_trace(self, version: int, carrier: Mapping[str, str]) -> None:
        """The trace context of the request that made deployment ``version`` (W3C headers), so
        that every process's load of it joins that trace; kept an hour."""
        if carrier:
            self.redis.set(
                f"{self.deployment_key}:trace:{version}", json.dumps(dict(carrier)), ex=3600
            )

    def deploy_trace(self, version: int) -> dict[str, str]:
        raw = self.redis.get(f"{self.deployment_key}:trace:{version}")
        return dict(json.loads(raw)) if raw else {}

    def deployed_id(self) -> str | None:
        return self.deployment()[0]

    def deployment_history(self) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.redis.lrange(self.history_key, 0, -1)]

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def check_writable(self) -> None:
        """Raise the Redis error when Redis answers but refuses writes (MISCONF: it cannot
        persist, say its disk is full), which a ping does not show."""
        self.redis.set(f"{self.prefix}:write-check", "1", ex=60)

    def _args(self, fields: Mapping[str, Any]) -> list[str]:
        return [item for k, v in fields.items() for item in (k, self._encode(k, v))]

    # -- encoding ------------------------------------------------------------------------------
    @staticmethod
    def _encode(name: str, value: Any) -> str:
        if name in _JSON_FIELDS:
            return json.dumps(value)
        return "" if value is None else str(value)

    @staticmethod
    def _decode(raw: Mapping[str, str]) -> dict[str, Any]:
        record: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            if record.get(name):
                record[name] = json.loads(record[name])
        for name in ("percent", "attempts"):
            if name in record:
                record[name] = int(record[name] or 0)
        return record
