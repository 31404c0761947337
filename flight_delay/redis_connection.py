"""Every Redis connection of the service, made from one set of settings: one server
(``REDIS_URL``) or a master found through Redis Sentinel (``REDIS_SENTINELS`` +
``REDIS_MASTER``), for the registry, the lease and schedule scripts, the prediction-log stream
and Celery's broker alike.

Two guarantees hold for every client made here:

* **Bounded waits.** Each command gives up after ``REDIS_SOCKET_TIMEOUT_SECONDS`` (a hung master,
  SIGSTOPped or behind a dead link, never holds a request, a job or beat for longer) and is
  retried on a fresh connection, which asks the Sentinels where the master is now.
* **Acknowledged means replicated.** Redis replicates asynchronously: a master that dies right
  after answering a write takes the write with it when a replica is promoted. Behind Sentinel a
  write therefore answers only once ``REDIS_WAIT_REPLICAS`` replicas have it (``WAIT`` on the
  same connection, right after the write); a master that has replicas and cannot get the write
  to them in ``REDIS_WAIT_TIMEOUT_MS`` raises :class:`NotReplicated` (the API answers 503).
  A master left with no replica at all (its only replica was just promoted, or is down) accepts
  writes alone and logs it, but only while the Sentinels still name it the master:
  an old master back from a hang, already replaced, refuses them (they would be dropped when
  the Sentinels demote it). One more failure before a replica is back could lose writes
  accepted alone.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from kombu.transport import redis as kombu_redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

log = logging.getLogger(__name__)

#: commands that change nothing: every other command is a write and waits for the replicas.
#: (EVALSHA and EVAL count as writes: every script of this service writes.)
READ_ONLY_COMMANDS = frozenset(
    {
        "PING", "INFO", "ECHO", "TIME", "ROLE", "DBSIZE", "CLIENT", "COMMAND", "CONFIG",
        "SCRIPT", "WAIT", "SELECT", "AUTH", "HELLO", "READONLY",
        "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "SCAN", "KEYS",
        "HGET", "HGETALL", "HMGET", "HEXISTS", "HLEN", "HKEYS", "HVALS", "HSCAN",
        "LRANGE", "LLEN", "LINDEX",
        "SMEMBERS", "SISMEMBER", "SCARD", "SSCAN",
        "ZRANGE", "ZREVRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZSCORE", "ZMSCORE",
        "ZCARD", "ZCOUNT", "ZRANK", "ZREVRANK", "ZSCAN",
        "XLEN", "XRANGE", "XREVRANGE", "XINFO", "XPENDING",
        "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
    }
)  # fmt: skip


class NotReplicated(redis.RedisError):
    """A write reached the master but not its replicas in time: it is not acknowledged, as a
    failover now could lose it. The caller retries (the API answers 503)."""


class StaleMaster(redis.ConnectionError):
    """The server that took a write is no longer the master the Sentinels name (an old master
    back from a hang, not yet demoted): the write will be dropped. A connection error, so the
    write is sent again on a new connection, which finds the new master."""


#: how long a master found alone (no replica) is trusted before it is asked again
ALONE_RECHECK_SECONDS = 1.0
_alone_logged_at = 0.0


class _WaitPolicy:
    """How many replicas must have a write before it is acknowledged, and for how long to wait."""

    def __init__(self, replicas: int, timeout_ms: int) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        #: servers found with no replica (and still the named master), and when: their writes
        #: skip WAIT (it could only time out) until they are asked again
        self._alone: dict[tuple[str, int], float] = {}

    def after_write(self, connection: Any) -> None:
        """Send WAIT on ``connection``, the one that carried the write (WAIT waits for the
        replication offset of its own connection's last write)."""
        address = (str(connection.host), int(connection.port))
        found_alone = self._alone.get(address)
        if found_alone is not None:
            if time.monotonic() - found_alone < ALONE_RECHECK_SECONDS:
                return
            if _connected_replicas(connection) == 0:
                self._accept_alone(connection, address)
                return
            self._alone.pop(address, None)
        connection.send_command("WAIT", self.replicas, self.timeout_ms)
        acknowledged = int(connection.read_response())
        if acknowledged >= self.replicas:
            return
        connected = _connected_replicas(connection)
        if connected == 0:
            self._accept_alone(connection, address)
            return
        raise NotReplicated(
            f"Redis: {acknowledged} of {self.replicas} replicas had the write after "
            f"{self.timeout_ms} ms ({connected} connected); not acknowledged"
        )

    def _accept_alone(self, connection: Any, address: tuple[str, int]) -> None:
        """A master with no replica takes writes alone, unless the Sentinels name another one."""
        global _alone_logged_at
        self._alone.pop(address, None)
        if not _still_named_master(connection):
            connection.disconnect()
            raise StaleMaster(
                f"Redis at {address[0]}:{address[1]} is no longer the master the Sentinels name"
            )
        now = time.monotonic()
        self._alone[address] = now
        if now - _alone_logged_at > 60:
            _alone_logged_at = now
            log.warning(
                "Redis master %s:%s has no replica: writes are accepted unreplicated until one "
                "is back (a failure of this master before then would lose them)",
                *address,
            )


def _connected_replicas(connection: Any) -> int:
    connection.send_command("INFO", "replication")
    info = connection.read_response()
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("connected_slaves:"):
            return int(line.split(":", 1)[1])
    return 0


def _still_named_master(connection: Any) -> bool:
    """True unless the Sentinels name another master than ``connection``'s server (a server
    reached without Sentinel has no one to ask: true)."""
    if not isinstance(connection, SentinelManagedConnection):
        return True
    try:
        host, port = connection.connection_pool.get_master_address()
    except redis.RedisError:
        return False
    return (str(host), int(port)) == (str(connection.host), int(connection.port))


def _writes(commands: Any) -> bool:
    return any(str(args[0]).split(" ", 1)[0].upper() not in READ_ONLY_COMMANDS for args in commands)


class _WaitsForReplicas:
    """Makes a ``redis.Redis`` wait for the replicas after each write (see the module).

    The hook is redis-py's own seam where the borrowed connection is known; the test
    ``test_a_write_is_acknowledged_once_the_replica_has_it`` fails if a release moves it."""

    wait_policy: _WaitPolicy | None = None

    def _send_command_parse_response(
        self, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        response = super()._send_command_parse_response(  # type: ignore[misc]
            conn, command_name, *args, **options
        )
        if self.wait_policy is not None and _writes([args]):
            self.wait_policy.after_write(conn)
        return response


class ReplicatedRedis(_WaitsForReplicas, redis.Redis):
    """``redis.Redis`` whose writes, pipelines included, wait for the replicas."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = ReplicatedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.wait_policy = self.wait_policy
        return pipe


class ReplicatedPipeline(Pipeline):
    """A pipeline (or MULTI/EXEC transaction) whose writes wait for the replicas, once for
    the whole batch, on the connection that carried it."""

    wait_policy: _WaitPolicy | None = None

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        result = super()._execute_transaction(connection, commands, raise_on_error)
        if self.wait_policy is not None and _writes(args for args, _ in commands):
            self.wait_policy.after_write(connection)
        return result

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        result = super()._execute_pipeline(connection, commands, raise_on_error)
        if self.wait_policy is not None and _writes(args for args, _ in commands):
            self.wait_policy.after_write(connection)
        return result


class _SentinelConnection(SentinelManagedConnection):
    """Asks the Sentinels for the master on every new socket.

    redis-py (8.2) reopens a dropped connection from ``send_packed_command`` through
    ``connect_check_health``, which skips the master discovery of ``connect()``: after a
    timeout on a hung master every retry went back to the same, replaced, server (measured:
    3 x the socket timeout, never reaching the promoted replica)."""

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


def sentinel_addresses(raw: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` -> [(host, port), ...]; a clear error for anything else."""
    addresses = []
    for item in (part.strip() for part in str(raw).split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"FLIGHT_DELAY_REDIS_SENTINELS: expected host:port[,host:port...], got {item!r}"
            )
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def wait_replicas(config: Mapping[str, Any]) -> int:
    """``REDIS_WAIT_REPLICAS``; -1 (the default) is one behind Sentinel, none otherwise."""
    wanted = int(config["REDIS_WAIT_REPLICAS"])
    if wanted < 0:
        return 1 if sentinel_addresses(config["REDIS_SENTINELS"]) else 0
    return wanted


def _timeouts(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "socket_timeout": float(config["REDIS_SOCKET_TIMEOUT_SECONDS"]),
        "socket_connect_timeout": float(config["REDIS_CONNECT_TIMEOUT_SECONDS"]),
    }


def connect(config: Mapping[str, Any]) -> ReplicatedRedis:
    """A client (``decode_responses=True``) for the configured Redis or Sentinel master."""
    options: dict[str, Any] = {
        "decode_responses": True,
        **_timeouts(config),
        # a connection that a restart or a failover closed is replaced at once (asking the
        # Sentinels where the master is now), not reported as an outage on the next command
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 30,
    }
    sentinels = sentinel_addresses(config["REDIS_SENTINELS"])
    client: ReplicatedRedis
    if sentinels:
        url = urlsplit(str(config["REDIS_URL"]))
        sentinel_options = _timeouts(config)
        if config["REDIS_SENTINEL_PASSWORD"]:
            sentinel_options["password"] = str(config["REDIS_SENTINEL_PASSWORD"])
        sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_options)
        client = sentinel.master_for(
            str(config["REDIS_MASTER"]),
            redis_class=ReplicatedRedis,
            connection_class=_SentinelConnection,
            db=_database(url.path),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
            **options,
        )
    else:
        client = ReplicatedRedis.from_url(str(config["REDIS_URL"]), **options)  # type: ignore[assignment]
    replicas = wait_replicas(config)
    if replicas > 0:
        client.wait_policy = _WaitPolicy(replicas, _wait_timeout_ms(config))
    return client


def _wait_timeout_ms(config: Mapping[str, Any]) -> int:
    """``REDIS_WAIT_TIMEOUT_MS``, which must end before the socket timeout: a WAIT cut off by
    the socket would be retried with its write, and the write would run twice."""
    waited = int(config["REDIS_WAIT_TIMEOUT_MS"])
    socket_ms = float(config["REDIS_SOCKET_TIMEOUT_SECONDS"]) * 1000
    if not 0 < waited < socket_ms:
        raise ValueError(
            f"FLIGHT_DELAY_REDIS_WAIT_TIMEOUT_MS: expected 1 .. {socket_ms:.0f} (below "
            f"FLIGHT_DELAY_REDIS_SOCKET_TIMEOUT_SECONDS), got {waited}"
        )
    return waited


def _database(path: str) -> int:
    name = path.strip("/") or "0"
    if not name.isdigit():
        raise ValueError(f"FLIGHT_DELAY_REDIS_URL: the database must be a number, got {name!r}")
    return int(name)


class _BrokerClient(_WaitsForReplicas, kombu_redis.PrefixedStrictRedis):
    """kombu's client (keys under the global prefix) whose writes, publishes among them, wait
    for the replicas: a queued job's message survives a failover like its record does."""


class _BrokerChannel(kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with this module's connection and replication policy."""

    connection_class = _SentinelConnection
    from_transport_options: tuple[str, ...] = (  # type: ignore[assignment]
        *kombu_redis.SentinelChannel.from_transport_options,
        "wait_replicas",
        "wait_timeout_ms",
    )
    wait_replicas = 0
    wait_timeout_ms = 1000

    def _get_client(self) -> Any:
        super()._get_client()  # kombu's own check of the redis-py version
        return functools.partial(_BrokerClient, global_keyprefix=self.global_keyprefix or "")

    _wait_policy: _WaitPolicy | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        client = super()._create_client(asynchronous)
        if self.wait_replicas > 0 and not asynchronous:  # the consumer's BRPOP loop: no writes
            if self._wait_policy is None:
                self._wait_policy = _WaitPolicy(int(self.wait_replicas), int(self.wait_timeout_ms))
            client.wait_policy = self._wait_policy
        return client


class SentinelBrokerTransport(kombu_redis.SentinelTransport):
    """Celery's broker behind Sentinel (``broker_transport``; the URLs stay ``sentinel://``)."""

    Channel = _BrokerChannel


def celery_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Celery's ``broker_url``, ``broker_transport`` and the transport options that bound its
    waits (to merge with the service's own transport options).

    Behind Sentinel the URL lists every Sentinel (``sentinel://h:p;sentinel://h:p/db``), the
    options name the master, and publishes wait for the replicas as the registry's writes do.
    ``health_check_interval`` also drops a consumer's BRPOP that a hung master never answers
    (kombu: after ``brpop_timeout + health_check_interval`` seconds)."""
    options: dict[str, Any] = {**_timeouts(config), "health_check_interval": 5}
    sentinels = sentinel_addresses(config["REDIS_SENTINELS"])
    if not sentinels:
        return {"broker_url": str(config["REDIS_URL"]), "broker_transport_options": options}
    url = urlsplit(str(config["REDIS_URL"]))
    credentials = ""
    if url.username or url.password:
        credentials = f"{quote(unquote(url.username or ''), safe='')}:"
        credentials += f"{quote(unquote(url.password or ''), safe='')}@"
    database = _database(url.path)
    broker = ";".join(
        f"sentinel://{credentials}{host}:{port}/{database}" for host, port in sentinels
    )
    sentinel_options = _timeouts(config)
    if config["REDIS_SENTINEL_PASSWORD"]:
        sentinel_options["password"] = str(config["REDIS_SENTINEL_PASSWORD"])
    options.update(
        master_name=str(config["REDIS_MASTER"]),
        sentinel_kwargs=sentinel_options,
        wait_replicas=wait_replicas(config),
        wait_timeout_ms=_wait_timeout_ms(config),
    )
    return {
        "broker_url": broker,
        "broker_transport": f"{__name__}:{SentinelBrokerTransport.__name__}",
        "broker_transport_options": options,
    }
