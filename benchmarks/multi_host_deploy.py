"""Deploy-to-served across hosts that share no disk.

Two API "hosts" (gunicorn, 2 processes each) and two training workers, each with a model cache
of its own and no model folder, meet only in a Redis and a real SeaweedFS (S3 API), all on
loopback. The workers train ``--models`` models; then ``--deploys`` deploys alternate between
a model never served before (every process fetches it from the store) and a rollback to the one
before (still in every host's cache). For each deploy: the seconds from PUT /deploy's answer until
every process of both hosts answers /predict with the new model (each process identified by the
X-Served-By header).

    python benchmarks/multi_host_deploy.py --deploys 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flight_delay.data import make_synthetic_flights
from flight_delay.devstack import (
    call,
    free_port,
    start_gunicorn,
    start_redis,
    start_worker,
    stop_processes,
    wait_until_healthy,
)
from tests.support.object_store import BUCKET, running_object_store
from tests.support.sentinel import running_sentinel_group

KEY = "benchmark-admin-key"
FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
          "OPERA": "Latin American Wings", "TIPOVUELO": "N"}  # fmt: skip


def predict(base: str) -> tuple[str, str | None]:
    request = urllib.request.Request(
        f"{base}/predict", data=json.dumps({"flights": [FLIGHT]}).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"}, method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["X-Served-By"], json.loads(response.read())["model_id"]
    except urllib.error.HTTPError as exc:
        return exc.headers.get("X-Served-By", "?"), None


def processes_of(base: str, count: int) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < count and time.monotonic() < deadline:
        seen.add(predict(base)[0])
    if len(seen) < count:
        raise SystemExit(f"{base}: only {sorted(seen)} answered")
    return seen


def time_to_served(hosts: dict[str, set[str]], model_id: str, limit: float = 30.0) -> float:
    """Seconds until every process of every host has answered with ``model_id``."""
    started = time.monotonic()
    waiting = {(base, p) for base, processes in hosts.items() for p in processes}
    lock = threading.Lock()
    done_at: list[float] = []

    def client(base: str) -> None:
        while time.monotonic() - started < limit:
            with lock:
                if not any(b == base for b, _ in waiting):
                    return
            process, served = predict(base)
            if served == model_id:
                with lock:
                    waiting.discard((base, process))
                    if not waiting and not done_at:
                        done_at.append(time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(b,)) for b in hosts for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if not done_at:
        raise SystemExit(f"model {model_id} not served by {sorted(waiting)} within {limit} s")
    return done_at[0]


@contextlib.contextmanager
def hosts_sharing_no_disk(
    models: int,
    root: Path | None = None,
    redis_env: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[dict[str, set[str]], list[str], Any]]:
    """Redis, SeaweedFS, two workers and two API hosts (2 gunicorn processes each), each with a
    cache of its own; ``models`` models trained, the first deployed and served everywhere.
    ``redis_env``: the FLIGHT_DELAY_REDIS_* settings of a Redis already running (say, behind
    Sentinel); else one is started. ``extra_env``: more settings for every process. Yields (host base URL -> its processes, model ids, the
    running object store)."""
    root = root or Path(tempfile.mkdtemp(prefix="multi-host-"))
    (root / "data").mkdir(parents=True, exist_ok=True)
    make_synthetic_flights(4000, seed=3).to_csv(root / "data" / "flights.csv", index=False)
    processes = []
    if redis_env is None:
        redis_port = free_port()
        processes.append(start_redis(redis_port, data_dir=None))
        redis_env = {"FLIGHT_DELAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    with running_object_store(root / "seaweedfs") as store:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_DELAY_")}
        settings = {
            **redis_env,
            "FLIGHT_DELAY_ARTIFACT_URL": f"s3://{BUCKET}/benchmark",
            "FLIGHT_DELAY_S3_ENDPOINT_URL": store.endpoint,
            "FLIGHT_DELAY_S3_REGION": "us-east-1",
            "FLIGHT_DELAY_S3_ACCESS_KEY_ID": store.settings()["access_key_id"],
            "FLIGHT_DELAY_S3_SECRET_ACCESS_KEY": store.settings()["secret_access_key"],
            "FLIGHT_DELAY_MODEL_DIR": str(root / "no-shared-folder"),
            "FLIGHT_DELAY_DATA_ROOT": str(root / "data"),
            "FLIGHT_DELAY_API_KEYS": f"{KEY}=admin",
            "FLIGHT_DELAY_PREDICTION_LOG": "false",
            "OMP_NUM_THREADS": "1",
            **(extra_env or {}),
        }

        def env(name: str) -> dict[str, str]:
            return {**base_env, **settings, "FLIGHT_DELAY_MODEL_CACHE_DIR": str(root / name)}

        try:
            for name in ("worker-1", "worker-2"):
                processes.append(start_worker(env(name), root / f"{name}.log"))
            hosts: dict[str, set[str]] = {}
            for name in ("api-1", "api-2"):
                port = free_port()
                processes.append(
                    start_gunicorn(env(name), port, workers=2, log=root / f"{name}.log")
                )
                hosts[f"http://127.0.0.1:{port}"] = set()
            for base in hosts:
                wait_until_healthy(base, processes)
            first = next(iter(hosts))
            ids = []
            for _ in range(models):
                body = {"dataset": "flights.csv", "params": {"n_estimators": 200}, "cv_folds": 0}
                status, created = call("POST", f"{first}/models", body, key=KEY)
                assert status == 202, created
                ids.append(created["id"])
            for model_id in ids:
                while (record := call("GET", f"{first}/models/{model_id}")[1])["status"] not in (
                    "completed",
                    "failed",
                ):
                    time.sleep(0.2)
                assert record["status"] == "completed", record
            assert call("PUT", f"{first}/deploy?model-id={ids[0]}", key=KEY)[0] == 204
            for base in hosts:
                hosts[base] = processes_of(base, 2)
            time_to_served(hosts, ids[0])
            yield hosts, ids, store
        finally:
            stop_processes(processes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=20)
    parser.add_argument(
        "--sentinel",
        action="store_true",
        help="Redis behind three Sentinels (a master and a replica): writes wait for the replica",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_env = None
        if args.sentinel:
            root = Path(tempfile.mkdtemp(prefix="multi-host-"))
            group = stack.enter_context(running_sentinel_group(root / "redis"))
            redis_env = group.environment()
        return run(args.deploys, redis_env)


def run(deploys: int, redis_env: dict[str, str] | None) -> int:
    """``deploys`` deploys, alternating new models and rollbacks; prints the figures."""
    with hosts_sharing_no_disk(deploys // 2 + 1, redis_env=redis_env) as (hosts, ids, _):
        fresh: list[float] = []
        rollback: list[float] = []
        current, previous, newest = ids[0], ids[0], 0
        for number in range(deploys):
            if number % 2 == 0:  # a model never served before: every process fetches it
                newest += 1
                target, bucket = ids[newest % len(ids)], fresh
            else:  # back to the one before: in every cache
                target, bucket = previous, rollback
            via = list(hosts)[number % 2]  # deploys through either host
            status, body = call("PUT", f"{via}/deploy?model-id={target}", key=KEY)
            assert status == 204, body
            bucket.append(time_to_served(hosts, target))
            previous, current = current, target
        for label, values in (
            ("new model (fetched from the store)", fresh),
            ("rollback (in every host's cache)", rollback),
        ):
            print(
                f"{label}: {len(values)} deploys, p50 {statistics.median(values):.3f} s, "
                f"max {max(values):.3f} s"
            )
        both = fresh + rollback
        print(
            f"all: {len(both)} deploys to 2 hosts x 2 processes, p50 "
            f"{statistics.median(both):.3f} s, max {max(both):.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
