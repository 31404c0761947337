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
from datetime import UTC, datetime
from typing import Any

import redis

from flight_delay.errors import FlightDelayError


class Status:
    """A model's lifecycle, in one place."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ALL = (PENDING, RUNNING, COMPLETED, FAILED)
    UNFINISHED = (PENDING, RUNNING)


class ModelNotFound(FlightDelayError):
    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"no model with id {model_id!r}", [{"field": "model_id", "problem": "not found"}]
        )
        self.model_id = model_id


class ModelNotReady(FlightDelayError):
    """The model exists but is not in a state that allows the operation."""

    def __init__(self, model_id: str, status: str, action: str) -> None:
        super().__init__(
            f"model {model_id} is {status}; {action} needs a completed model",
            [{"field": "model_id", "problem": f"status is {status}"}],
        )


class ModelDeployed(FlightDelayError):
    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model {model_id} is deployed; deploy another model before deleting it",
            [{"field": "model_id", "problem": "deployed"}],
        )


class JobCancelled(Exception):
    """Raised inside a training job whose model was deleted while it ran."""


_JSON_FIELDS = ("settings", "metrics", "input_schema", "data")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ModelRegistry:
    """Reads and writes model records. Created unbound; ``init_app`` connects it."""

    def __init__(self) -> None:
        # decode_responses=True: every value is str (redis-py's stubs cannot say so)
        self._redis: Any = None
        self._update_if_exists: Any = None
        self.prefix = "fd"

    def init_app(self, app: Any) -> None:
        """Give ``app`` its own connected registry (``app.extensions["model_registry"]``), so
        several apps in one process (tests, tools) never share a connection or a key prefix."""
        app.extensions["model_registry"] = ModelRegistry().connect(
            app.config["REDIS_URL"], app.config["KEY_PREFIX"]
        )

    def connect(self, url: str, prefix: str = "fd") -> ModelRegistry:
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        self.prefix = prefix
        # HSET only if the record still exists: a job must not resurrect a deleted model
        self._update_if_exists = self._redis.register_script(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
            "redis.call('HSET', KEYS[1], unpack(ARGV)) return 1"
        )
        return self

    @property
    def redis(self) -> Any:
        if self._redis is None:
            raise RuntimeError("ModelRegistry is not connected (init_app was not called)")
        return self._redis

    # -- keys ----------------------------------------------------------------------------------
    def _model_key(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:models"

    @property
    def _deployment_key(self) -> str:
        return f"{self.prefix}:deployment"

    @property
    def _history_key(self) -> str:
        return f"{self.prefix}:deployment:history"

    # -- records -------------------------------------------------------------------------------
    def create(
        self, settings: Mapping[str, Any], dataset: str, description: str = ""
    ) -> dict[str, Any]:
        model_id = str(uuid.uuid4())
        created = time.time()
        record = {
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
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(self._model_key(model_id), mapping=record)
            pipe.zadd(self._index_key, {model_id: created})
            pipe.execute()
        return self.get(model_id)

    def get(self, model_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self._model_key(model_id))
        if not raw:
            raise ModelNotFound(model_id)
        return self._decode(raw)

    def models(self, status: str | None = None) -> list[dict[str, Any]]:
        ids = self.redis.zrevrange(self._index_key, 0, -1)
        with self.redis.pipeline() as pipe:
            for model_id in ids:
                pipe.hgetall(self._model_key(model_id))
            rows = pipe.execute()
        records = [self._decode(raw) for raw in rows if raw]
        return [r for r in records if status is None or r["status"] == status]

    def update(self, model_id: str, **fields: Any) -> bool:
        """Set fields on an existing record; False (and nothing written) when it was deleted.

        Runs as one Lua script so that a record deleted meanwhile is not resurrected.
        """
        if self._update_if_exists is None:
            raise RuntimeError("ModelRegistry is not connected (init_app was not called)")
        encoded = {k: self._encode(k, v) for k, v in fields.items()}
        args: list[str] = [item for pair in encoded.items() for item in pair]
        return bool(self._update_if_exists(keys=[self._model_key(model_id)], args=args))

    def delete(self, model_id: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(self._model_key(model_id))
            pipe.zrem(self._index_key, model_id)
            pipe.execute()

    # -- deployment ----------------------------------------------------------------------------
    def deploy(self, model_id: str, by: str = "") -> dict[str, Any]:
        previous = self.deployed_id()
        deployed_at = now_iso()
        with self.redis.pipeline() as pipe:
            pipe.hset(
                self._deployment_key, mapping={"model_id": model_id, "deployed_at": deployed_at}
            )
            pipe.hincrby(self._deployment_key, "version", 1)
            event = {
                "model_id": model_id,
                "deployed_at": deployed_at,
                "previous_model_id": previous,
                "by": by,
            }
            pipe.lpush(self._history_key, json.dumps(event))
            pipe.ltrim(self._history_key, 0, 999)
            pipe.execute()
        return event

    def deployment(self) -> tuple[str | None, int]:
        """(deployed model id, deployment version): one round trip, read by every API process."""
        model_id, version = self.redis.hmget(self._deployment_key, ["model_id", "version"])
        return model_id, int(version or 0)

    def deployed_id(self) -> str | None:
        return self.deployment()[0]

    def deployment_history(self) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.redis.lrange(self._history_key, 0, -1)]

    def ping(self) -> bool:
        return bool(self.redis.ping())

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
        if "percent" in record:
            record["percent"] = int(record["percent"] or 0)
        return record
