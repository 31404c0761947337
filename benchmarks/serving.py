"""Serving benchmark: load on loopback against a running stack, figures from one run.

Without --base-url it starts its own stack on 127.0.0.1 (redis-server, one Celery worker, gunicorn
with 2 gevent workers, the default), trains a model through the API on the real data (or synthetic flights when the
file is absent), timing POST /models to completed, and deploys it. Then, for each of
GET /healthz, single-flight POST /predict (without and with ?explain=true) and 1,000- and
10,000-flight POST /predict, client processes send requests for a fixed time and it prints
requests/s and p50/p99 latency (healthz and single flights in alternating rounds, their
ratio the median of the rounds'). In the same run it starts the naive server of issue 10
(benchmarks/naive_flask.py: JSON -> DataFrame -> pipeline.predict_proba, gunicorn with 2 sync
workers) on the same deployed pipeline file and measures it the same way, and it splits one
10,000-flight request into its stages in process. Every request goes to 127.0.0.1; every loop
is bounded in time. The client runs on the same 2 cores as the servers.

The stack logs every prediction and runs the prediction log's writer, as make run does (the
defaults); a second gunicorn with FLIGHT_DELAY_PREDICTION_LOG=false is measured against the
stack's, single flights in alternating rounds, for the cost of logging.

With --worker-models it also starts gunicorn with other worker models (sync workers, more
processes, gthread threads) on the same stack and measures healthz, single flights and
10,000-flight batches on each, and compares the stack's gevent workers with 2 sync workers on
single flights in alternating rounds.

Usage: python benchmarks/serving.py [--base-url URL --api-key KEY] [--seconds 8] [--clients 2]
       [--worker-models]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path | None:
    """The dataset setting of make run and the tests (flight_delay.devstack.default_dataset)."""
    from flight_delay.devstack import default_dataset

    found = default_dataset(os.environ, REPO)
    return Path(found) if found else None


FLIGHT = {"Fecha-I": "2018-01-15 19:30:00", "Vlo-I": "1234", "Des-I": "SPJC", "Emp-I": "LAN",
          "OPERA": "Grupo LATAM", "TIPOVUELO": "I"}  # fmt: skip


def request(host: str, port: int, method: str, path: str, body: bytes | None) -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - started


def client(args: tuple[str, int, str, str, bytes | None, float, int]) -> tuple[list[float], int]:
    """One load process: requests back to back until the deadline or the request cap."""
    host, port, method, path, body, seconds, cap = args
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(latencies) < cap:
        status, elapsed = request(host, port, method, path, body)
        if status == 200:
            latencies.append(elapsed)
        else:
            errors += 1
    return latencies, errors


def measure(
    base: str, method: str, path: str, body: bytes | None, seconds: float, clients: int, cap: int
) -> dict[str, Any]:
    parsed = urlparse(base)
    assert parsed.hostname in ("127.0.0.1", "localhost", "::1"), "load goes to loopback only"
    host, port = parsed.hostname, parsed.port or 80
    print(f"load: {method} {path} ({clients} clients)", file=sys.stderr)
    request(host, port, method, path, body)  # warm up
    started = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(client, [(host, port, method, path, body, seconds, cap)] * clients)
    wall = time.monotonic() - started
    latencies = sorted(x for result in results for x in result[0])
    errors = sum(result[1] for result in results)
    if not latencies:
        raise RuntimeError(f"{method} {path}: no successful request ({errors} errors)")
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


Target = tuple[str, str, str, bytes | None]  # base URL, method, path, body


def measure_alternating(
    reference: Target, other: Target, rounds: int, seconds: float, clients: int
) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """``reference`` and ``other`` loaded in alternating short rounds: on a noisy 2-core machine
    one long run of each drifts apart (seen here: 0.69x to 0.83x for the same code), so a ratio
    is the median of the rounds' ratios. Returns the pooled figures of each and every round's
    throughput ratio, ``other`` over ``reference``."""
    runs: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    ratios = []
    for _ in range(rounds):
        first = measure(*reference, seconds, clients, 10**9)
        second = measure(*other, seconds, clients, 10**9)
        runs[0].append(first)
        runs[1].append(second)
        ratios.append(second["rps"] / first["rps"])

    def pool(measured: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "requests": sum(r["requests"] for r in measured),
            "errors": sum(r["errors"] for r in measured),
            "rps": statistics.median(r["rps"] for r in measured),
            "p50_ms": statistics.median(r["p50_ms"] for r in measured),
            "p99_ms": statistics.median(r["p99_ms"] for r in measured),
        }

    return pool(runs[0]), pool(runs[1]), ratios


def workers_missing(base: str) -> bool:
    """Whether /readyz says no worker answers (errors: one {field, problem} per failed check)."""
    from flight_delay.devstack import call

    status, body = call("GET", f"{base}/readyz")
    return status != 200 and any(e.get("field") == "workers" for e in body.get("errors", []))


def batch_body(data: Path | None, size: int) -> bytes:
    from flight_delay.data import load_flights, make_synthetic_flights

    if data and data.is_file():
        frame = load_flights(data).frame
        frame = frame[frame["Fecha-I"] < "2017-11-01"].sample(size, random_state=0)
        frame = frame.assign(**{"Fecha-I": frame["Fecha-I"].dt.strftime("%Y-%m-%d %H:%M:%S")})
    else:
        frame = make_synthetic_flights(size, seed=5)
    flights = frame[["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO"]].to_dict("records")
    return json.dumps({"flights": flights}).encode()


@contextmanager
def own_stack(
    data: Path | None, **settings: str
) -> Iterator[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """redis-server, a worker, the log writer and gunicorn (2 workers) on free loopback ports;
    a trained, deployed model. ``settings`` are more FLIGHT_DELAY_* variables for every process.
    Yields (base URL, admin key, training figures, the stack's environment)."""
    from flight_delay.devstack import (
        call,
        free_port,
        start_gunicorn,
        start_log_writer,
        start_redis,
        start_worker,
        stop_processes,
        wait_until_healthy,
    )

    workdir = Path(tempfile.mkdtemp(prefix="fd-bench-"))
    data_root = data.parent if data and data.is_file() else workdir
    key = "benchmark-admin"
    env = dict(os.environ, OMP_NUM_THREADS="1", FLIGHT_DELAY_API_KEYS=f"{key}=admin",
               FLIGHT_DELAY_MODEL_DIR=str(workdir / "models"), FLIGHT_DELAY_DATA_ROOT=str(data_root),
               FLIGHT_DELAY_EXPORT_DIR=str(workdir),
               FLIGHT_DELAY_PREDICTION_LOG_URL=f"sqlite:///{workdir / 'predictions.db'}")  # fmt: skip
    env.update({f"FLIGHT_DELAY_{name}": value for name, value in settings.items()})
    processes: list[subprocess.Popen[Any]] = []
    try:
        redis_port = free_port()
        processes.append(start_redis(redis_port, None))
        env["FLIGHT_DELAY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        processes.append(start_worker(env, log=workdir / "worker.log"))
        # the prediction log's writer, as make run runs it
        processes.append(start_log_writer(env, log=workdir / "log-writer.log"))
        web_port = free_port()
        # the production gunicorn settings, access log included, written to a file
        processes.append(start_gunicorn(env, web_port, workers=2, log=workdir / "gunicorn.log"))
        base = f"http://127.0.0.1:{web_port}"
        wait_until_healthy(base, processes)
        print("stack up; waiting for the worker", file=sys.stderr)
        # wait for the worker to answer before timing a job
        deadline = time.monotonic() + 60
        while workers_missing(base):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            time.sleep(0.5)
        print("training through the API", file=sys.stderr)
        dataset = data.name if data and data.is_file() else "synthetic"
        started = time.monotonic()
        status, created = call("POST", f"{base}/models", {"dataset": dataset}, key)
        assert status == 202, created
        while True:
            record = call("GET", f"{base}/models/{created['id']}")[1]
            if record["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        training = {
            "dataset": dataset,
            "status": record["status"],
            "seconds": time.monotonic() - started,
            "model_dir": str(workdir / "models" / created["id"]),
        }
        assert record["status"] == "completed", record
        assert call("PUT", f"{base}/deploy?model-id={created['id']}", key=key)[0] == 204
        time.sleep(1.0)  # every worker has picked it up
        yield base, key, training, env
    finally:
        stop_processes(processes)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def another_server(
    env: dict[str, str], workers: int = 2, threads: int = 1, **settings: str
) -> Iterator[str]:
    """One more gunicorn of the API (production settings, ``workers`` x ``threads``, plus
    ``settings`` as FLIGHT_DELAY_* variables, WEB_WORKER_CLASS among them) beside the stack, on
    the same Redis and model."""
    from flight_delay.devstack import free_port, start_gunicorn, stop_processes, wait_until_healthy

    port = free_port()
    env = {**env, **{f"FLIGHT_DELAY_{name}": value for name, value in settings.items()}}
    process = start_gunicorn(env, port, workers=workers, threads=threads, log=Path(os.devnull))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, [process])
        time.sleep(1.0)  # every worker has loaded the deployed model
        yield base
    finally:
        stop_processes([process])


#: gunicorn worker models compared by --worker-models: (processes, threads per process)
#: (processes, threads, gunicorn worker class): the stack's default is 2 gevent
WORKER_MODELS = ((2, 1, "sync"), (4, 1, "gevent"), (2, 4, "gthread"), (1, 8, "gthread"))


@contextmanager
def naive_server(model_dir: str) -> Iterator[str]:
    """benchmarks/naive_flask.py under gunicorn (2 sync workers, one thread each) on loopback,
    serving the same pipeline file."""
    from flight_delay.devstack import free_port, stop_processes, wait_until_healthy

    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", NAIVE_MODEL=str(Path(model_dir) / "model.joblib"))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--chdir", str(REPO / "benchmarks"), "naive_flask:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, [process])
        yield base
    finally:
        stop_processes([process])


def stage_split(model_dir: str, body: bytes) -> dict[str, float]:
    """One 10,000-flight request's stages in this process, on the deployed model (median of 5,
    milliseconds): what the API does, step by step, with the functions it calls."""
    from flight_delay.api.base import parse_request_json
    from flight_delay.api.predict import dump_json
    from flight_delay.api.schemas import PredictRequestSchema
    from flight_delay.ml import load_model

    model = load_model(model_dir)
    model.limit_threads(1)
    features = model.features

    def timed(step: Any) -> tuple[float, Any]:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            result = step()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs) * 1000, result

    stages: dict[str, float] = {}
    stages["parse JSON"], parsed = timed(lambda: parse_request_json(body))
    schema = PredictRequestSchema()
    stages["request schema"], loaded = timed(lambda: schema.load(parsed))
    flights = loaded["flights"]
    stages["validate flights"], _ = timed(lambda: features.check_flights(flights))
    stages["features"], matrix = timed(lambda: model._matrix(flights))
    stages[f"model ({model.forest_status})"], probabilities = timed(
        lambda: model.calibration.apply(model._predict_matrix(matrix))
    )
    stages["warnings"], _ = timed(lambda: model.warnings(flights))

    def serialise() -> bytes:
        predictions = [
            {"delay_probability": round(p, 6), "delayed": p >= model.threshold}
            for p in probabilities.tolist()
        ]
        return dump_json({"predictions": predictions, "warnings": []})

    stages["serialise"], _ = timed(serialise)
    return stages


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", help="a running stack on loopback (default: start one)")
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per endpoint")
    parser.add_argument("--clients", type=int, default=2, help="concurrent client processes")
    parser.add_argument(
        "--rounds", type=int, default=7, help="alternating healthz / single-flight rounds"
    )
    parser.add_argument(
        "--batch-requests", type=int, default=25, help="10,000-flight requests (cap)"
    )
    parser.add_argument(
        "--worker-models",
        action="store_true",
        help="also measure gunicorn with other worker models (processes x threads: "
        + ", ".join(f"{w}x{t} {c}" for w, t, c in WORKER_MODELS)
        + ") on the same stack",
    )
    args = parser.parse_args()

    batch = batch_body(args.data, 10_000)
    single = json.dumps({"flights": [FLIGHT]}).encode()

    ratios: list[float] = []

    def run(base: str) -> dict[str, dict[str, Any]]:
        healthz, predict, ratios[:] = measure_alternating(
            (base, "GET", "/healthz", None),
            (base, "POST", "/predict", single),
            args.rounds,
            args.seconds / 2,
            args.clients,
        )
        return {
            "GET /healthz": healthz,
            "POST /predict, 1 flight": predict,
            "POST /predict?explain=true, 1": measure(
                base, "POST", "/predict?explain=true", single, args.seconds, args.clients, 10**9
            ),
            # one client: the latency of a batch on an otherwise idle server
            "POST /predict, 1,000 flights": measure(
                base, "POST", "/predict", batch_1k, args.seconds, 1, args.batch_requests * 4
            ),
            "POST /predict, 10,000 flights": measure(
                base, "POST", "/predict", batch, args.seconds * 3, 1, args.batch_requests
            ),
        }

    def run_naive(base: str) -> dict[str, dict[str, Any]]:
        return {
            "naive: POST /predict, 1 flight": measure(
                base, "POST", "/predict", single, args.seconds, args.clients, 10**9
            ),
            "naive: POST /predict, 10,000": measure(
                base, "POST", "/predict", batch, args.seconds * 3, 1, args.batch_requests
            ),
        }

    def run_worker_model(
        base: str, workers: int, threads: int, kind: str
    ) -> dict[str, dict[str, Any]]:
        name = f"{workers}x{threads} {kind}"
        return {
            f"{name}: GET /healthz": measure(
                base, "GET", "/healthz", None, args.seconds, args.clients, 10**9
            ),
            f"{name}: predict 1": measure(
                base, "POST", "/predict", single, args.seconds, args.clients, 10**9
            ),
            f"{name}: predict 10,000": measure(
                base, "POST", "/predict", batch, args.seconds * 3, 1, args.batch_requests
            ),
        }

    logging_ratios: list[float] = []
    gevent_ratios: list[float] = []
    batch_1k = batch_body(args.data, 1_000)
    training = None
    stages: dict[str, float] = {}
    models: dict[str, dict[str, Any]] = {}
    if args.base_url:
        results = run(args.base_url)
    else:
        with own_stack(args.data) as (base, _, training, env):
            results = run(base)
            with naive_server(training["model_dir"]) as naive_base:
                results.update(run_naive(naive_base))
            stages = stage_split(training["model_dir"], batch)
            with another_server(env, PREDICTION_LOG="false") as unlogged:
                # single flights, this gunicorn (log off) against the stack's (the default: on)
                logging_ratios[:] = measure_alternating(
                    (unlogged, "POST", "/predict", single),
                    (base, "POST", "/predict", single),
                    args.rounds,
                    args.seconds / 2,
                    args.clients,
                )[2]
            if args.worker_models:
                for workers, threads, kind in WORKER_MODELS:
                    with another_server(env, workers, threads, WEB_WORKER_CLASS=kind) as other:
                        models.update(run_worker_model(other, workers, threads, kind))
                with another_server(env, 2, 1, WEB_WORKER_CLASS="sync") as sync:
                    # single flights, the stack's gevent workers against 2 sync workers
                    gevent_ratios[:] = measure_alternating(
                        (sync, "POST", "/predict", single),
                        (base, "POST", "/predict", single),
                        args.rounds,
                        args.seconds / 2,
                        args.clients,
                    )[2]

    print(
        f"serving benchmark, {os.cpu_count()} cores, gunicorn 2 gevent workers, {args.clients} client processes"
    )
    if training:
        print(f"POST /models -> completed on {training['dataset']}: {training['seconds']:.1f} s")
    print(f"{'endpoint':<32}{'requests':>9}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, figures in results.items():
        print(f"{name:<32}{figures['requests']:>9}{figures['errors']:>8}{figures['rps']:>10.1f}"
              f"{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}")  # fmt: skip
    single_rps = results["POST /predict, 1 flight"]["rps"]
    print(
        f"single-flight predict throughput / healthz: {statistics.median(ratios):.2f}x, median of "
        f"{len(ratios)} alternating rounds ({', '.join(f'{r:.2f}' for r in ratios)}; "
        "target >= 0.8x)"
    )
    if logging_ratios:
        print(
            f"single-flight throughput, prediction log on / off: "
            f"{statistics.median(logging_ratios):.2f}x, median of {len(logging_ratios)} "
            f"alternating rounds ({', '.join(f'{r:.2f}' for r in logging_ratios)}; "
            "target >= 0.9x)"
        )
    if gevent_ratios:
        print(
            f"single-flight throughput, 2 gevent / 2 sync workers: "
            f"{statistics.median(gevent_ratios):.2f}x, median of {len(gevent_ratios)} "
            f"alternating rounds ({', '.join(f'{r:.2f}' for r in gevent_ratios)})"
        )
    explained = results["POST /predict?explain=true, 1"]["p50_ms"]
    plain = results["POST /predict, 1 flight"]["p50_ms"]
    print(f"single-flight explain=true median / without: {explained / plain:.2f}x (target <= 2x)")
    ours_batch = results["POST /predict, 10,000 flights"]["p50_ms"]
    print(f"10,000-flight batch median: {ours_batch:.0f} ms (target < 100 ms)")
    if "naive: POST /predict, 10,000" in results:
        naive_batch = results["naive: POST /predict, 10,000"]["p50_ms"]
        naive_single = results["naive: POST /predict, 1 flight"]["rps"]
        print(f"10,000-flight batch, naive / ours: {naive_batch / ours_batch:.2f}x (target >= 2x)")
        print(
            f"single-flight throughput, ours / naive: {single_rps / naive_single:.1f}x (target >= 15x)"
        )
    if models:
        print("gunicorn worker models (processes x threads), same stack and model:")
        for name, figures in models.items():
            print(f"{name:<32}{figures['requests']:>9}{figures['errors']:>8}{figures['rps']:>10.1f}"
                  f"{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}")  # fmt: skip
    if stages:
        total = sum(stages.values())
        print("one 10,000-flight request in process, by stage (median of 5):")
        for name, ms in stages.items():
            print(f"    {name:<28}{ms:>8.1f} ms  {ms / total:>4.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
