"""The web front. Slow clients do not stop /predict (issue 19, finding 3): the stack's gunicorn (its command and
configuration, 2 worker processes) while 50 connections send their headers or their body a
byte a second. Before, two such connections (one per sync worker) held both workers until the
60 s worker timeout, and /predict did not answer meanwhile. Loopback only, bounded in time."""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from flight_delay.devstack import free_port, start_gunicorn, stop_processes, wait_until_healthy
from tests.integration.conftest import admin, environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
          "OPERA": "Latin American Wings", "TIPOVUELO": "N"}  # fmt: skip
SLOW_CONNECTIONS = 50
ATTACK_SECONDS = 20


@pytest.fixture
def gunicorn(stack_settings: dict[str, Any], worker: Any, client: Any, train: Any) -> Iterator[str]:
    record = train()
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    port = free_port()
    process = start_gunicorn(environment(stack_settings), port, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, [process])
        deadline = time.monotonic() + 30
        while predict(base)[0] != 200:  # both processes have loaded the model
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield base
    finally:
        stop_processes([process])


def predict(base: str, timeout: float = 5) -> tuple[int, float]:
    """(status, seconds) of one single-flight prediction on a new connection; 0 on a timeout."""
    body = json.dumps({"flights": [FLIGHT]}).encode()
    request = urllib.request.Request(
        f"{base}/predict", data=body, method="POST",
        headers={"Content-Type": "application/json", "Connection": "close"},
    )  # fmt: skip
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status, time.monotonic() - started
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, time.monotonic() - started


def slow_client(port: int, kind: str, stop: threading.Event) -> None:
    """One connection that sends its headers (or, after them, its body) a byte a second."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as sock:
        if kind == "headers":
            start, trickle = b"POST /predict HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 500
        else:
            start = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n")  # fmt: skip
            trickle = b" " * 5000
        sock.sendall(start)
        for byte in trickle:
            if stop.wait(1.0):
                return
            sock.sendall(bytes([byte]))


def test_slow_connections_do_not_stop_predictions(gunicorn: str) -> None:
    port = int(gunicorn.rsplit(":", 1)[1])
    stop = threading.Event()
    attackers = [
        threading.Thread(target=slow_client, args=(port, kind, stop), daemon=True)
        for kind in ("headers", "body") * (SLOW_CONNECTIONS // 2)
    ]
    for attacker in attackers:
        attacker.start()
    time.sleep(1)  # every slow connection is open and has started sending
    results: list[tuple[int, float]] = []
    ends = time.monotonic() + ATTACK_SECONDS
    try:
        while time.monotonic() < ends and len(results) < 5_000:
            results.append(predict(gunicorn))
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(timeout=5)
    failed = [status for status, _ in results if status != 200]
    seconds = sorted(s for _, s in results)
    p50 = statistics.median(seconds) * 1000
    p99 = seconds[int(len(seconds) * 0.99) - 1] * 1000 if len(seconds) > 1 else float("inf")
    print(
        f"\n{SLOW_CONNECTIONS} slow connections for {ATTACK_SECONDS} s: {len(results)} "
        f"predictions, {len(failed)} failed, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    assert failed == []
    assert len(results) > 100
    assert p99 < 1000


def test_what_gunicorn_refuses_itself_is_answered_in_the_api_error_shape(gunicorn: str) -> None:
    """A request line over 4,094 bytes (414) or header fields too large (431) never reach the
    app: gunicorn answered them as HTML pages (issue 19, finding 12)."""
    for request, status in (
        (f"{gunicorn}/healthz?{'a' * 5000}", 414),
        (urllib.request.Request(f"{gunicorn}/healthz", headers={"X-Big": "b" * 9000}), 431),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        with refused.value:
            assert refused.value.code == status
            assert refused.value.headers["Content-Type"] == "application/json"
            body = json.loads(refused.value.read())
        assert body["code"] == status and body["errors"] == [] and body["message"]
