"""A deploy is seen by every gunicorn worker process within one second (run with 2 workers)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flight_delay.devstack import (
    call,
    free_port,
    start_gunicorn,
    stop_processes,
    wait_until_healthy,
)
from tests.integration.conftest import ADMIN, environment

pytestmark = pytest.mark.integration

FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
          "OPERA": "Latin American Wings", "TIPOVUELO": "N"}  # fmt: skip


@pytest.fixture
def gunicorn(stack_settings: dict[str, Any], worker: Any) -> Iterator[str]:
    port = free_port()
    process = start_gunicorn(environment(stack_settings), port, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, [process])
        yield base
    finally:
        stop_processes([process])


def predict_once(base: str, allow_unavailable: bool = False) -> tuple[str, str | None]:
    """(process that answered, model it served); a new connection each time, so the
    kernel spreads requests over both workers. With ``allow_unavailable``, a 503 (nothing
    deployed yet in that process) gives model None."""
    request = urllib.request.Request(
        f"{base}/predict", data=json.dumps({"flights": [FLIGHT]}).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"}, method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["X-Served-By"], json.loads(response.read())["model_id"]
    except urllib.error.HTTPError as exc:
        if allow_unavailable and exc.code == 503:
            return exc.headers["X-Served-By"], None
        pytest.fail(f"{exc.headers['X-Served-By']} answered {exc.code}: {exc.read().decode()}")


def test_every_worker_serves_a_new_deployment_within_one_second(
    gunicorn: str, train: Callable[..., dict[str, Any]]
) -> None:
    first, second = train(), train()
    assert call("PUT", f"{gunicorn}/deploy?model-id={first['id']}", key=ADMIN)[0] == 204
    # both workers up and serving the first model (before it, they had nothing to serve)
    seen: dict[str, str | None] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        len(seen) == 2 and set(seen.values()) == {first["id"]}
    ):
        process, model = predict_once(gunicorn, allow_unavailable=True)
        seen[process] = model
    assert len(seen) == 2, f"requests reached only {seen}"
    assert set(seen.values()) == {first["id"]}, seen

    assert call("PUT", f"{gunicorn}/deploy?model-id={second['id']}", key=ADMIN)[0] == 204
    deployed_at = time.monotonic()
    switched: dict[str, float] = {}
    late: list[tuple[str, float]] = []
    lock = threading.Lock()

    def client() -> None:
        # three clients at once keep one sync worker busy, so the other gets requests too
        while time.monotonic() - deployed_at < 2.0:
            process, model = predict_once(gunicorn)
            elapsed = time.monotonic() - deployed_at
            with lock:
                if model == second["id"]:
                    switched.setdefault(process, elapsed)
                elif elapsed > 1.0:
                    late.append((process, elapsed))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(switched) == set(seen), f"not every worker switched: {switched}"
    assert max(switched.values()) < 1.0, switched
    assert not late, f"old model served after 1 s: {late}"
    print(f"seconds from deploy to the new model, per worker: {switched}")
