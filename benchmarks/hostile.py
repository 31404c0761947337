"""Hostile callers against `make run`'s stack, measured: what each attack costs the service.

    python benchmarks/hostile.py [--data datasets/dataset_SCL.csv] [--slow-seconds 60]

Starts `make run` (the user's path: its defaults, its processes) on free loopback ports with its
state directory on a 300 MB filesystem of its own (a tmpfs; needs root, else a plain folder and
the full-disk step is left out), waits for the default model (trained on the real file when
given), then, one after the other:

1. 60 predictions each carrying a 7 MB field -> growth of the state directory once logged;
2. 10,000 requests with invented HTTP methods -> size of /metrics before and after;
3. 50 connections sending their headers or body a byte a second for --slow-seconds, while one
   client predicts single flights -> p50 / p99 / failures meanwhile;
4. 100 distinct drift windows (anonymous), then a training job -> how long it waits to start;
5. four anonymous loops on live performance (a new window each time) and the model's dashboard
   page over 50,000 logged real flights with outcomes -> /predict p50 before and during;
6. a schedule on generated flights facing the real-data model -> its decision and reason;
7. the state filesystem filled while predictions keep coming, then freed -> seconds until
   Redis takes writes again and until every answered request is in the log.

Every request goes to 127.0.0.1 and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLIGHT = {"Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "SKU",
          "OPERA": "Sky Airline", "TIPOVUELO": "N"}  # fmt: skip


def http(
    base: str, method: str, path: str, body: Any = None, key: str | None = None,
    timeout: float = 30, raw: bytes | None = None,
) -> tuple[int, bytes]:  # fmt: skip
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("X-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, b""


def get_json(base: str, path: str, key: str | None = None) -> Any:
    _status, raw = http(base, "GET", path, key=key)
    return json.loads(raw) if raw else None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


def predict_latencies(base: str, seconds: float, limit: int = 20_000) -> tuple[list[float], int]:
    """Single-flight predictions on new connections for ``seconds``: (latencies, failures)."""
    body = json.dumps({"flights": [FLIGHT]}).encode()
    latencies: list[float] = []
    failures = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends and len(latencies) + failures < limit:
        started = time.monotonic()
        status, _ = http(base, "POST", "/predict", raw=body, timeout=5)
        if status == 200:
            latencies.append((time.monotonic() - started) * 1000)
        else:
            failures += 1
    return latencies, failures


def disk_usage(path: Path) -> int:
    """Bytes the files under ``path`` take on disk."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


@contextlib.contextmanager
def state_filesystem(folder: Path, size_mb: int) -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(folder)],
        capture_output=True, check=False,
    ).returncode == 0  # fmt: skip
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


@contextlib.contextmanager
def make_run(work: Path, data: Path | None) -> Iterator[tuple[str, str, Path]]:
    from flight_delay.devstack import free_port

    state = work / "state"
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "FLIGHT_DELAY_REDIS_PORT": str(free_port()),
        "FLIGHT_DELAY_WORKER_METRICS_PORT": str(free_port()),
        "FLIGHT_DELAY_STATE_DIR": str(state),
        "FLIGHT_DELAY_MODEL_DIR": str(work / "models"),
        "FLIGHT_DELAY_EXPORT_DIR": str(work / "exports"),
        "FLIGHT_DELAY_DATASET": str(data) if data else str(work / "none.csv"),
    }
    log = work / "make-run.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["make", "-s", "-C", str(REPO), "run"], env=env, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while "Stop with Ctrl-C" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        key = (state / "admin-key").read_text().strip()
        yield f"http://127.0.0.1:{port}", key, state
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def wait_logged(base: str, key: str, state: Path, timeout: float = 120) -> float:
    """Seconds until the log's Redis stream is empty (the writer caught up)."""
    import redis

    client = redis.Redis(port=_redis_port(state), decode_responses=True)
    started = time.monotonic()
    while client.xlen("fd:prediction-log"):
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def _redis_port(state: Path) -> int:
    config = (state / "redis" / "redis-server.log").read_text(errors="replace")
    marker = "Running mode=standalone, port="
    return int(config.rsplit(marker, 1)[1].split(".")[0])


# -- the attacks --------------------------------------------------------------------------------
def big_fields(base: str, key: str, state: Path) -> str:
    before = disk_usage(state)
    padded = json.dumps({"flights": [{**FLIGHT, "remarks": "x" * 7_000_000}]}).encode()
    answered = sum(http(base, "POST", "/predict", raw=padded)[0] == 200 for _ in range(60))
    wait_logged(base, key, state)
    time.sleep(2)
    grown = disk_usage(state) - before
    return f"60 x 7 MB predictions: {answered} answered; state directory grew {grown / 1e6:.2f} MB"


def invented_methods(base: str, key: str, state: Path) -> str:
    size = lambda: len(http(base, "GET", "/metrics")[1])  # noqa: E731
    before = size()
    rng = random.Random(19)
    started = time.monotonic()
    for _ in range(10_000):
        method = "".join(rng.choices(string.ascii_uppercase, k=10))
        http(base, method, "/healthz", timeout=5)
    seconds = time.monotonic() - started
    after = size()
    started = time.monotonic()
    size()
    scrape = (time.monotonic() - started) * 1000
    return (f"10,000 invented methods ({seconds:.0f} s): /metrics {before / 1e3:.1f} kB before, "
            f"{after / 1e3:.1f} kB after; a scrape {scrape:.0f} ms")  # fmt: skip


def slow_connections(base: str, seconds: float) -> str:
    port = int(base.rsplit(":", 1)[1])
    stop = threading.Event()

    def slow(kind: str) -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as sock:
            if kind == "headers":
                head, trickle = b"POST /predict HTTP/1.1\r\nHost: x\r\n", b"a" * 10_000
            else:
                head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                        b"\r\nContent-Length: 100000\r\n\r\n")  # fmt: skip
                trickle = b" " * 100_000
            sock.sendall(head)
            for byte in trickle:
                if stop.wait(1.0):
                    return
                sock.sendall(bytes([byte]))

    attackers = [threading.Thread(target=slow, args=(kind,), daemon=True)
                 for kind in ("headers", "body") * 25]  # fmt: skip
    for attacker in attackers:
        attacker.start()
    time.sleep(1)
    latencies, failures = predict_latencies(base, seconds, limit=200_000)
    stop.set()
    return (f"50 slow connections for {seconds:.0f} s: {len(latencies)} predictions, {failures} "
            f"failed, p50 {statistics.median(latencies):.2f} ms, p99 "
            f"{percentile(latencies, 0.99):.2f} ms")  # fmt: skip


def drift_windows(base: str, key: str, model_id: str) -> str:
    statuses: dict[int, int] = {}
    for n in range(100):
        since = f"2026-01-01T{n // 60:02d}:{n % 60:02d}:00Z"
        status = http(base, "GET", f"/models/{model_id}/drift?since={since}")[0]
        statuses[status] = statuses.get(status, 0) + 1
    asked = time.monotonic()
    status, raw = http(base, "POST", "/models", {"dataset": "synthetic:2000", "cv_folds": 0},
                       key=key)  # fmt: skip
    created = json.loads(raw)["id"]
    while get_json(base, f"/models/{created}")["status"] == "pending":
        if time.monotonic() - asked > 300:
            break
        time.sleep(0.05)
    waited = time.monotonic() - asked
    return (
        f"100 distinct drift windows: answers {statuses}; a training job asked for next "
        f"started {waited:.2f} s later"
    )


def performance_loops(base: str, key: str, model_id: str, data: Path | None, seconds: float) -> str:
    from flight_delay.data import load_flights

    if data is None:
        return "performance loops: skipped (needs the real file)"
    frame = load_flights(data).frame
    frame = frame[frame["Fecha-I"] >= "2017-07-01"].head(50_000)
    sent = frame.assign(**{"Fecha-I": frame["Fecha-I"].dt.strftime("%Y-%m-%d %H:%M:%S")})
    columns = ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO"]
    records = sent[columns].to_dict("records")
    for start in range(0, len(records), 10_000):
        http(base, "POST", "/predict", {"flights": records[start : start + 10_000]}, timeout=120)
    time.sleep(5)
    departed = frame["Fecha-O"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    outcomes = [{"Fecha-I": r["Fecha-I"], "Vlo-I": r["Vlo-I"], "Des-I": r["Des-I"], "Fecha-O": d}
                for r, d in zip(records, departed, strict=True)]  # fmt: skip
    post_seconds = []
    for start in range(0, len(outcomes), 10_000):
        started = time.monotonic()
        http(base, "POST", "/outcomes", {"outcomes": outcomes[start : start + 10_000]}, key=key,
             timeout=120)  # fmt: skip
        post_seconds.append(time.monotonic() - started)
    quiet, _ = predict_latencies(base, seconds / 2)
    stop = threading.Event()
    counts = {"performance": 0, "page": 0}

    def loop(kind: str, offset: int) -> None:
        n = offset
        while not stop.is_set() and n < offset + 100_000:
            n += 1
            if kind == "performance":
                http(
                    base,
                    "GET",
                    f"/models/{model_id}/performance?since=2017-07-01T00:{n % 60:02d}:{n // 60 % 60:02d}",
                    timeout=30,
                )
            else:
                http(base, "GET", f"/ui/models/{model_id}", timeout=30)
            counts[kind] += 1

    loops = [threading.Thread(target=loop, args=(kind, i * 1000), daemon=True)
             for i, kind in enumerate(("performance", "performance", "page", "page"))]  # fmt: skip
    for thread in loops:
        thread.start()
    busy, failures = predict_latencies(base, seconds)
    stop.set()
    for thread in loops:
        thread.join(timeout=60)
    # the control: four loops of the cheapest request there is, to tell load from cost
    stop = threading.Event()
    control = [0]

    def healthz() -> None:
        while not stop.is_set() and control[0] < 400_000:
            http(base, "GET", "/healthz", timeout=30)
            control[0] += 1

    loops = [threading.Thread(target=healthz, daemon=True) for _ in range(4)]
    for thread in loops:
        thread.start()
    against_healthz, _ = predict_latencies(base, seconds)
    stop.set()
    for thread in loops:
        thread.join(timeout=60)
    return (
        f"live performance over 50,000 logged real flights (outcomes posted in "
        f"{', '.join(f'{s:.2f}' for s in post_seconds)} s per 10,000): /predict p50 "
        f"{statistics.median(quiet):.2f} ms alone, {statistics.median(busy):.2f} ms during "
        f"four loops ({counts['performance']} performance and {counts['page']} page "
        f"requests; {failures} predictions failed), {statistics.median(against_healthz):.2f} ms "
        f"during four loops on /healthz ({control[0]} requests)"
    )


def synthetic_challenger(base: str, key: str) -> str:
    schedule = {"name": "generated", "dataset": "synthetic:20000", "every_seconds": 86400,
                "model": {"model_type": "lightgbm", "features": "schedule", "cv_folds": 0},
                "rule": {"min_margin": 0.0, "calibration_not_worse": False}}  # fmt: skip
    _, raw = http(base, "POST", "/schedules", schedule, key=key)
    created = json.loads(raw)
    _, raw = http(base, "POST", f"/schedules/{created['id']}/runs", key=key)
    location = f"/schedules/{created['id']}/runs/{json.loads(raw)['id']}"
    deadline = time.monotonic() + 600
    while (run := get_json(base, location))["status"] not in ("completed", "failed"):
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    return f"real model vs a challenger of generated flights: {run.get('decision')} -- {run.get('reason') or run.get('error')}"


def full_disk(base: str, key: str, state: Path) -> str:
    filler = state / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("ab") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(chunk)
            handle.flush()
    answered, failed = [], 0
    body = json.dumps({"flights": [FLIGHT] * 20}).encode()
    refused = ""
    ends = time.monotonic() + 5
    while time.monotonic() < ends:
        status, _raw = http(base, "POST", "/predict", raw=body)
        if status == 200:
            answered.append(1)
        else:
            failed += 1
        ready = get_json(base, "/readyz") or {}
        for problem in ready.get("errors", []):
            if problem.get("field") == "redis":
                refused = problem["problem"][:80]
    filler.unlink()
    freed = time.monotonic()
    while any(
        p.get("field") == "redis" for p in (get_json(base, "/readyz") or {}).get("errors", [])
    ):
        if time.monotonic() - freed > 120:
            break
        time.sleep(0.1)
    writable = time.monotonic() - freed
    logged = wait_logged(base, key, state) + writable
    return (
        f"full state disk for 5 s: {len(answered)} predictions answered, {failed} failed; "
        f"/readyz said: {refused!r}; Redis took writes again {writable:.1f} s after the space "
        f"came back; the log had caught up {logged:.1f} s after"
    )


def main() -> int:
    from flight_delay.devstack import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_dataset(os.environ, REPO) or "-"))
    parser.add_argument("--slow-seconds", type=float, default=60)
    parser.add_argument("--load-seconds", type=float, default=20)
    args = parser.parse_args()
    data = args.data.resolve() if args.data.is_file() else None
    work = Path(tempfile.mkdtemp(prefix="fd-hostile-"))
    lines: list[str] = []

    def step(name: str, call: Callable[[], str]) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
        lines.append(call())
        print("    " + lines[-1], flush=True)

    with (
        state_filesystem(work / "state", 300) as mounted,
        make_run(work, data) as (base, key, state),
    ):
        model_id = get_json(base, "/deployment")["model_id"]
        print(
            f"make run up: {base}, model {model_id}, state on {'a 300 MB tmpfs' if mounted else 'the disk'}"
        )
        step("big fields", lambda: big_fields(base, key, state))
        step("invented methods", lambda: invented_methods(base, key, state))
        step("slow connections", lambda: slow_connections(base, args.slow_seconds))
        step("drift windows", lambda: drift_windows(base, key, model_id))
        step(
            "performance loops",
            lambda: performance_loops(base, key, model_id, data, args.load_seconds),
        )
        step("synthetic challenger", lambda: synthetic_challenger(base, key))
        if mounted:
            step("full disk", lambda: full_disk(base, key, state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
