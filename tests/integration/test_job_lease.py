"""A claim that meets a Redis going away (a restart, a Sentinel failover) is one attempt, not two.

Seen in CI: a worker claimed a job on a master that was SIGKILLed before the reply came back; the
task raised, the claimed record lapsed unrenewed, and recovery ran the job as attempt 2. The
claim is now sent again with its own token, which the script recognises.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from flight_delay.config import DefaultConfig
from flight_delay.devstack import free_port, start_redis, stop_processes
from flight_delay.redis_connection import connect
from flight_delay.registry import TRAINING
from flight_delay.tasks.lease import JobLease

pytestmark = pytest.mark.integration


class LosesFirstReply(redis.Redis):
    """A real client whose first script reply is lost after Redis ran the script."""

    lost = 0

    def evalsha(self, *args: Any) -> Any:
        answer = super().evalsha(*args)
        if not self.lost:
            self.lost += 1
            raise redis.ConnectionError("connection lost before the reply")
        return answer


def _pending(client: redis.Redis) -> str:
    key = f"lease-test:{uuid.uuid4().hex}"
    client.hset(key, mapping={"status": "pending", "attempts": "0"})
    return key


def test_a_claim_whose_reply_is_lost_holds_the_job_as_the_same_attempt(redis_url: str) -> None:
    client = LosesFirstReply.from_url(redis_url, decode_responses=True)
    assert isinstance(client, LosesFirstReply)
    try:
        key = _pending(client)
        claim = JobLease(client).claim(TRAINING, key, "token-1", "host:1", 30, 3)
        assert client.lost == 1  # the first claim ran, and its reply was lost
        assert claim.claimed and claim.attempt == 1
        record = client.hgetall(key)
        assert record["status"] == "running"
        assert record["attempt"] == "token-1" and record["attempts"] == "1"
        # another worker's claim of the same job now finds it held
        other = JobLease(client).claim(TRAINING, key, "token-2", "host:2", 30, 3)
        assert other.outcome == "leased"
    finally:
        client.close()


def test_a_claim_sent_to_a_hung_redis_holds_the_job_once_it_answers_again() -> None:
    """The claim times out on a stopped server (which runs it later, from its socket buffer),
    is sent again, and both land as one attempt."""
    port = free_port()
    server = start_redis(port, data_dir=None)
    config = {name: getattr(DefaultConfig, name) for name in dir(DefaultConfig) if name.isupper()}
    # the service's own client (its retries, its timeouts), with a short socket timeout
    client = connect(
        {**config, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "REDIS_SOCKET_TIMEOUT_SECONDS": 1.5}
    )
    resume = threading.Timer(6.0, lambda: server.send_signal(signal.SIGCONT))
    try:
        key = _pending(client)
        server.send_signal(signal.SIGSTOP)
        resume.start()
        started = time.monotonic()
        claim = JobLease(client).claim(TRAINING, key, "token-1", "host:1", 30, 3)
        waited = time.monotonic() - started
        assert claim.claimed and claim.attempt == 1
        assert 5.5 < waited < 30, waited  # it waited for the server, within one lease
        assert client.hget(key, "attempts") == "1"
    finally:
        resume.cancel()
        server.send_signal(signal.SIGCONT)
        client.close()
        stop_processes([server])
