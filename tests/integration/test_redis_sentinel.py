"""Redis behind Sentinel: real redis-server processes (a master, a replica, three Sentinels) on
loopback, the service's own clients, a real Celery worker. The master is SIGKILLed or SIGSTOPped;
nothing acknowledged may be lost and nothing may wait without bound."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flight_delay import create_app, redis_connection
from flight_delay.config import DefaultConfig, settings_of
from flight_delay.devstack import stop_processes
from tests.integration.conftest import FAST, admin, finished, start_worker, wait_for
from tests.support.make_run import FLIGHT
from tests.support.sentinel import SentinelGroup, running_sentinel_group

pytestmark = pytest.mark.integration

JOB = {"dataset": "flights.csv", "params": FAST, "cv_folds": 0}


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with running_sentinel_group(tmp_path / "redis") as running:
        yield running


@pytest.fixture
def client_of(
    group: SentinelGroup,
) -> Iterator[Callable[..., redis_connection.ReplicatedRedis]]:
    """The service's own client of ``group`` (closed at the end), with settings overridden."""
    made: list[redis_connection.ReplicatedRedis] = []

    def connect(**overrides: Any) -> redis_connection.ReplicatedRedis:
        settings = {**settings_of(DefaultConfig), **group.settings(), **overrides}
        made.append(redis_connection.connect(settings))
        return made[-1]

    yield connect
    for client in made:
        client.close()


def test_a_write_is_acknowledged_once_the_replica_has_it(
    group: SentinelGroup, client_of: Callable[..., Any]
) -> None:
    client = client_of(REDIS_WAIT_TIMEOUT_MS=300)
    script = client.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    client.set("before", "1")
    assert group.read("b", "GET", "before") == "1"  # WAIT returned: the replica has it
    group.signal("b", signal.SIGSTOP)  # connected, but it acknowledges nothing
    try:
        for write in (
            lambda: client.set("k", "v"),
            lambda: script(keys=["k"], args=["v"]),
            lambda: client.pipeline().hset("h", "f", "v").execute(),
            lambda: client.pipeline(transaction=False).hset("h", "f", "v").execute(),
        ):
            started = time.monotonic()
            with pytest.raises(redis_connection.NotReplicated, match="0 of 1 replicas"):
                write()
            assert time.monotonic() - started < 2
        assert client.get("before") == "1"  # reads do not wait
    finally:
        group.signal("b", signal.SIGCONT)
    group.wait_replicating("b")
    client.set("after", "1")
    assert group.read("b", "GET", "after") == "1"


def test_an_old_master_back_from_a_hang_takes_no_write(
    group: SentinelGroup, client_of: Callable[..., Any]
) -> None:
    """SIGSTOP the master, let the Sentinels promote the replica, SIGCONT it before they demote
    it: a pooled connection to it must not land a write there (it would be dropped)."""
    client = client_of()
    client.set("warm", "1")  # a pooled connection to the master, "a"
    group.signal("a", signal.SIGSTOP)
    group.wait_for_failover("a")
    group.signal("a", signal.SIGCONT)
    assert group.read("a", "ROLE")[0] == "master"  # not demoted yet: it would take the write
    client.set("written", "after the failover")
    assert group.read("b", "GET", "written") == "after the failover"
    group.wait_replicating("a", timeout=60)
    assert client.get("written") == "after the failover"
    assert group.read("a", "GET", "written") == "after the failover"


def test_a_hung_master_holds_a_command_for_one_socket_timeout(
    group: SentinelGroup, client_of: Callable[..., Any]
) -> None:
    """A pooled connection to a master that hung: the command times out once, and its retry asks
    the Sentinels, who name the promoted replica. (redis-py 8.2 alone reconnected to the old
    address: three timeouts on the hung master, then an error.)"""
    client = client_of(REDIS_SOCKET_TIMEOUT_SECONDS=3.0)
    client.set("k", "v")  # leaves a pooled connection to "a"
    group.signal("a", signal.SIGSTOP)
    group.wait_for_failover("a")
    started = time.monotonic()
    assert client.get("k") == "v"  # from "b"
    took = time.monotonic() - started
    assert 3.0 <= took < 2 * 3.0, took


def test_a_change_no_replica_confirms_is_answered_503_naming_why(
    group: SentinelGroup, stack_settings: dict[str, Any]
) -> None:
    settings = {**stack_settings, **group.settings(), "REDIS_WAIT_TIMEOUT_MS": 300}
    client = create_app({"TESTING": True, **settings, "KEY_PREFIX": "unconfirmed"}).test_client()
    group.signal("b", signal.SIGSTOP)
    try:
        answer = client.post("/models", json=JOB, headers=admin())
    finally:
        group.signal("b", signal.SIGCONT)
    assert answer.status_code == 503, answer.get_json()
    assert "no replica confirmed it in time" in answer.get_json()["message"]


@pytest.fixture
def service(
    group: SentinelGroup, stack_settings: dict[str, Any], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    settings = {
        **stack_settings,
        **group.settings(),
        "KEY_PREFIX": f"sentinel{uuid.uuid4().hex[:6]}",
        "PREDICTION_LOG": False,
        "DEPLOYMENT_POLL_SECONDS": 0.0,
        "WORKER_PING_CACHE_SECONDS": 3600.0,
    }
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        yield settings
    finally:
        stop_processes([worker])


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_the_service_loses_nothing_acknowledged_when_the_master_fails(
    group: SentinelGroup, service: dict[str, Any], fault: str
) -> None:
    client = create_app({"TESTING": True, **service}).test_client()
    created = client.post("/models", json=JOB, headers=admin())
    assert created.status_code == 202, created.get_json()
    first = created.get_json()["id"]
    assert wait_for(client, first, finished)["status"] == "completed"
    assert client.put(f"/deploy?model-id={first}", headers=admin()).status_code == 204
    # a second job, queued just before the fault: it must run once, whatever happens
    queued = client.post("/models", json=JOB, headers=admin())
    assert queued.status_code == 202
    second = queued.get_json()["id"]

    # predictions never touch Redis on their way: they go on through the fault
    predicted: list[int] = []
    stop = threading.Event()

    def predict() -> None:
        while not stop.is_set():
            predicted.append(client.post("/predict", json={"flights": [FLIGHT]}).status_code)

    predictor = threading.Thread(target=predict)
    predictor.start()
    try:
        if fault == "SIGKILL":
            group.kill("a")
        else:
            group.signal("a", signal.SIGSTOP)
        started = time.monotonic()
        # a request during the fault answers, 2xx or 503, within the documented bound
        answer = client.get("/deployment", headers=admin())
        assert answer.status_code in (200, 503)
        assert time.monotonic() - started < 3 * DefaultConfig.REDIS_SOCKET_TIMEOUT_SECONDS + 2
        group.wait_for_failover("a")
    finally:
        stop.set()
        predictor.join()
        if fault == "SIGSTOP":
            group.signal("a", signal.SIGCONT)
    assert predicted and set(predicted) == {200}, set(predicted)

    deployment = client.get("/deployment", headers=admin()).get_json()
    assert deployment["model_id"] == first  # the acknowledged deploy survived
    assert wait_for(client, second, finished, timeout=180)["status"] == "completed"
    # and the service writes again: a new job runs and deploys
    third = client.post("/models", json=JOB, headers=admin())
    assert third.status_code == 202, third.get_json()
    third_id = third.get_json()["id"]
    assert wait_for(client, third_id, finished, timeout=120)["status"] == "completed"
    assert client.put(f"/deploy?model-id={third_id}", headers=admin()).status_code == 204
    assert client.post("/predict", json={"flights": [FLIGHT]}).get_json()["model_id"] == third_id
    attempts = [wait_for(client, m, finished)["attempts"] for m in (first, second, third_id)]
    assert attempts == [1, 1, 1], attempts  # each job ran once


def test_stopping_the_group_leaves_no_process(tmp_path: Path) -> None:
    with running_sentinel_group(tmp_path / "redis") as running:
        processes = list(running.processes.values())
        running.signal("a", signal.SIGSTOP)  # a stopped server must be stopped too
    assert all(isinstance(p, subprocess.Popen) and p.poll() is not None for p in processes)
