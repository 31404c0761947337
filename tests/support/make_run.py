"""A real `make run` on free loopback ports with its own state directory, started, asked and
stopped by the tests (make run's own tests, the docs page and the dashboard in a browser)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from flight_delay.devstack import free_port
from tests.conftest import REPO
from tests.integration.filesystems import without_file_privileges

KEY = "make-run-test-key"
FLIGHT = {"Fecha-I": "2017-05-10 12:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "SKU",
          "OPERA": "Sky Airline", "TIPOVUELO": "N"}  # fmt: skip
GONE_WITHIN_SECONDS = 10


def request(
    base: str, method: str, path: str, body: Any = None, timeout: float = 5
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("X-API-Key", KEY)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


class Stack:
    """One `make run` in its own session (as a terminal would have it), on free ports."""

    def __init__(
        self, tmp_path: Path, repo: Path = REPO, own_defaults: bool = False, **env: str
    ) -> None:
        """``own_defaults``: make run with its own defaults (but the ports), as a user runs it;
        otherwise in scratch folders, with a known key, one web worker, a fast recovery, and
        a default model trained fast (no cross-validation folds, no compiled forest: what only
        the tests of those need)."""
        self.tmp, self.repo = tmp_path, repo
        self.port, self.redis_port = free_port(), free_port()
        self.worker_metrics_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        scratch = {
            "FLIGHT_DELAY_STATE_DIR": str(tmp_path / "state"),
            "FLIGHT_DELAY_MODEL_DIR": str(tmp_path / "models"),
            "FLIGHT_DELAY_EXPORT_DIR": str(tmp_path / "exports"),
            "FLIGHT_DELAY_DATA_ROOT": str(tmp_path / "data"),
            "FLIGHT_DELAY_API_KEYS": f"{KEY}=admin",
            "FLIGHT_DELAY_DATASET": str(tmp_path / "no-such-file.csv"),
            "FLIGHT_DELAY_WEB_WORKERS": "1",
            "FLIGHT_DELAY_RECOVERY_INTERVAL_SECONDS": "1",
            "FLIGHT_DELAY_DEFAULT_MODEL_SETTINGS": '{"cv_folds": 0}',
            "FLIGHT_DELAY_COMPILED_TREES": "false",
        }
        self.env = {
            # none of the test session's own settings (make test's FLIGHT_DELAY_DATASET among
            # them), but the redis-server binary the tests use
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith("FLIGHT_DELAY_") or k == "FLIGHT_DELAY_REDIS_SERVER"
            },
            "PORT": str(self.port),
            "FLIGHT_DELAY_REDIS_PORT": str(self.redis_port),
            "FLIGHT_DELAY_WORKER_METRICS_PORT": str(self.worker_metrics_port),
            **({} if own_defaults else scratch),
            **env,
        }
        (tmp_path / "data").mkdir(exist_ok=True)
        self.log = tmp_path / f"make-run-{self.port}.log"
        self.make: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, timeout: float = 120, unprivileged: bool = False) -> Stack:
        """``unprivileged``: file permissions bind the whole stack, although the tests run as
        root (as they bind a deployment under its own user)."""

        def as_in_a_terminal() -> None:
            # Ctrl-C reaches a terminal's foreground job: a runner that started these tests in
            # the background (`cmd &` in a script) passed SIGINT down ignored, and every stack
            # outlived the SIGINT that stops it
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)
            if unprivileged:
                without_file_privileges()

        with self.log.open("ab") as output:
            self.make = subprocess.Popen(
                ["make", "-s", "-C", str(self.repo), "run"], env=self.env, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=as_in_a_terminal,
            )  # fmt: skip
        if wait:
            self.wait_for("Stop with Ctrl-C", timeout)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            assert self.make is not None
            if self.make.poll() is not None:
                raise AssertionError(f"make run exited {self.make.returncode}:\n{self.output()}")
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output()[-3000:]}")

    def processes(self) -> list[psutil.Process]:
        """make, the supervisor and everything under it."""
        assert self.make is not None
        root = psutil.Process(self.make.pid)
        return [root, *root.children(recursive=True)]

    def supervisor(self) -> psutil.Process:
        return next(p for p in self.processes() if "flight_delay.devstack" in " ".join(p.cmdline()))

    def child(self, name: str) -> int:
        state = json.loads((self.tmp / "state" / "run.json").read_text())
        return int(state["children"][name]["pid"])

    def stop(self) -> None:
        if self.make is not None and self.make.poll() is None:
            processes = self.processes()
            os.killpg(self.make.pid, signal.SIGINT)
            assert_all_gone(processes)
        self.reap()

    def reap(self) -> None:
        if self.make is not None:
            self.make.wait(timeout=GONE_WITHIN_SECONDS)


def assert_all_gone(processes: list[psutil.Process]) -> float:
    """Wait until none of ``processes`` runs; the seconds it took."""
    started = time.monotonic()
    _, alive = psutil.wait_procs(processes, timeout=GONE_WITHIN_SECONDS)
    left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in alive if p.is_running()]
    for process in alive:  # never leave them behind, even when the test fails
        with contextlib.suppress(psutil.Error):
            process.kill()
    assert not left, f"still running {GONE_WITHIN_SECONDS}s after the signal: {left}"
    return time.monotonic() - started


def deploy_small_model(stack: Stack) -> str:
    status, created = request(
        stack.base, "POST", "/models",
        {"dataset": "synthetic:2000", "params": {"n_estimators": 40}, "cv_folds": 0},
    )  # fmt: skip
    assert status == 202, created
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, record = request(stack.base, "GET", f"/models/{created['id']}")
        if record["status"] in ("completed", "failed"):
            break
        time.sleep(0.3)
    assert record["status"] == "completed", record
    assert request(stack.base, "PUT", f"/deploy?model-id={created['id']}")[0] == 204
    deadline = time.monotonic() + 10
    while request(stack.base, "POST", "/predict", {"flights": [FLIGHT]})[0] != 200:
        assert time.monotonic() < deadline, "the deployed model was not served"
        time.sleep(0.2)
    return str(created["id"])
