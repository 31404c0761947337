"""The Redis settings' pure parts: Sentinel addresses, the replication default, Celery's URL."""

from __future__ import annotations

import pytest

from flight_delay import create_app
from flight_delay.config import DefaultConfig, settings_of
from flight_delay.redis_connection import (
    SentinelBrokerTransport,
    _writes,
    celery_settings,
    sentinel_addresses,
    wait_replicas,
)


def settings(**overrides: object) -> dict[str, object]:
    return {**settings_of(DefaultConfig), **overrides}


def test_sentinel_addresses_are_read_from_a_comma_separated_list() -> None:
    assert sentinel_addresses("") == []
    assert sentinel_addresses(" s1:26379, 10.0.0.2:26380 ,") == [
        ("s1", 26379),
        ("10.0.0.2", 26380),
    ]
    assert sentinel_addresses("[::1]:26379") == [("::1", 26379)]


@pytest.mark.parametrize("bad", ["s1", "s1:", ":26379", "s1:port", "s1:0", "s1:70000"])
def test_a_malformed_sentinel_address_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=r"FLIGHT_DELAY_REDIS_SENTINELS: expected host:port"):
        sentinel_addresses(bad)


def test_the_app_refuses_malformed_sentinels_at_start() -> None:
    with pytest.raises(ValueError, match="FLIGHT_DELAY_REDIS_SENTINELS"):
        create_app({"TESTING": True, "REDIS_SENTINELS": "sentinel-without-port"})


def test_writes_wait_for_one_replica_behind_sentinel_and_none_otherwise() -> None:
    assert wait_replicas(settings()) == 0
    assert wait_replicas(settings(REDIS_SENTINELS="s1:26379")) == 1
    assert wait_replicas(settings(REDIS_SENTINELS="s1:26379", REDIS_WAIT_REPLICAS=2)) == 2
    assert wait_replicas(settings(REDIS_SENTINELS="s1:26379", REDIS_WAIT_REPLICAS=0)) == 0
    assert wait_replicas(settings(REDIS_WAIT_REPLICAS=1)) == 1


def test_reads_do_not_wait_and_writes_do() -> None:
    assert not _writes([("HGETALL", "k"), ("ZREVRANGE", "i", 0, -1), ("PING",)])
    assert _writes([("HGETALL", "k"), ("HSET", "k", "f", "v")])
    assert _writes([("EVALSHA", "abc", 1, "k")])
    assert _writes([("lpush", "q", "m")])


def test_a_single_server_broker_is_its_url_with_bounded_waits() -> None:
    celery = celery_settings(settings(REDIS_URL="redis://r:6379/3"))
    assert celery["broker_url"] == "redis://r:6379/3"
    assert "broker_transport" not in celery
    options = celery["broker_transport_options"]
    assert options["socket_timeout"] == DefaultConfig.REDIS_SOCKET_TIMEOUT_SECONDS
    assert options["health_check_interval"] > 0


def test_a_sentinel_broker_lists_every_sentinel_with_the_database_and_password() -> None:
    celery = celery_settings(
        settings(
            REDIS_URL="redis://:p%40ss@ignored:6379/2",
            REDIS_SENTINELS="s1:26379,s2:26380",
            REDIS_MASTER="prod",
            REDIS_SENTINEL_PASSWORD="sentinel-secret",
        )
    )
    assert celery["broker_url"] == "sentinel://:p%40ss@s1:26379/2;sentinel://:p%40ss@s2:26380/2"
    module, name = celery["broker_transport"].split(":")
    assert name == SentinelBrokerTransport.__name__ and module == "flight_delay.redis_connection"
    options = celery["broker_transport_options"]
    assert options["master_name"] == "prod"
    assert options["sentinel_kwargs"]["password"] == "sentinel-secret"
    assert options["wait_replicas"] == 1


def test_a_database_that_is_not_a_number_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="FLIGHT_DELAY_REDIS_URL: the database must be a number"):
        celery_settings(settings(REDIS_URL="redis://r:6379/x", REDIS_SENTINELS="s1:1"))


@pytest.mark.parametrize("waited", [0, 5000, 9000])
def test_a_wait_that_outlasts_the_socket_timeout_is_refused_by_name(waited: int) -> None:
    """A WAIT the socket cuts off would be retried together with its write."""
    with pytest.raises(
        ValueError, match=r"FLIGHT_DELAY_REDIS_WAIT_TIMEOUT_MS: expected 1 \.\. 5000"
    ):
        celery_settings(settings(REDIS_SENTINELS="s1:1", REDIS_WAIT_TIMEOUT_MS=waited))
