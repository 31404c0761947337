"""The prediction log through a database outage under load (issue 11).

Starts the stack as make run does (embedded redis-server, a Celery worker, the log writer,
gunicorn with 2 sync workers, FLIGHT_DELAY_PREDICTION_LOG=true) with a real PostgreSQL server
(Debian's binaries, on a loopback port) as the log's database, trains and deploys a model
through the API, then sends single-flight POST /predict from client processes for
``--before + --outage + --after`` seconds while PostgreSQL is stopped for ``--outage`` seconds
in the middle. Afterwards it waits for the writer to catch up and compares the request ids the
API answered (X-Request-Id) with the rows in the database. It prints the requests sent, the
failed ones, latency inside and outside the outage, the rows written, the missing and the time
the writer took to catch up. Every request goes to 127.0.0.1; load is bounded in time and count.

Usage: python benchmarks/log_outage.py [--outage 60] [--before 10] [--after 10] [--clients 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving import FLIGHT, default_data, own_stack

#: at most this many requests per client process, whatever the duration
REQUEST_CAP = 400_000


def client(args: tuple[int, float, str]) -> dict[str, Any]:
    """One load process: single-flight predictions back to back until the deadline; the request
    ids answered, the failures, and (send time, latency) of each answered request."""
    port, seconds, key = args
    body = json.dumps({"flights": [FLIGHT]}).encode()
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    ids: list[str] = []
    timings: list[tuple[float, float]] = []
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < deadline and len(ids) + len(failures) < REQUEST_CAP:
        sent = time.time()
        try:
            connection.request("POST", "/predict", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if response.status == 200:
            ids.append(response.headers["X-Request-Id"])
            timings.append((sent, time.time() - sent))
        else:
            failures.append(f"HTTP {response.status}")
        if response.will_close:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()
    return {"ids": ids, "timings": timings, "failures": failures}


def logged_ids(url: str) -> set[str]:
    from sqlalchemy import create_engine, select

    from flight_delay.prediction_log.tables import PredictionRequest

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(connection.scalars(select(PredictionRequest.request_id)))
    finally:
        engine.dispose()


def run(
    data: Path | None, outage: float, before: float, after: float, clients: int, drain: float
) -> dict[str, Any]:
    """The whole measurement; returns its figures."""
    from tests.integration.postgres import postgres_server, server_binaries

    if server_binaries() is None:
        raise SystemExit("PostgreSQL server not installed (apt-get install postgresql)")
    with postgres_server() as database:
        settings = {"PREDICTION_LOG": "true", "PREDICTION_LOG_URL": database.url}
        with own_stack(data, **settings) as (base, key, _training, _env):
            port = int(base.rsplit(":", 1)[1])
            seconds = before + outage + after
            print(f"load for {seconds:.0f} s, database down from {before:.0f} s for "
                  f"{outage:.0f} s", file=sys.stderr)  # fmt: skip
            with multiprocessing.Pool(clients) as pool:
                pending = pool.map_async(client, [(port, seconds, key)] * clients)
                time.sleep(before)
                down_from = time.time()
                database.stop()
                time.sleep(outage)
                database.start()
                down_until = time.time()
                results = pending.get(timeout=seconds + 120)
            answered = {i for result in results for i in result["ids"]}
            failures = [f for result in results for f in result["failures"]]
            started = time.monotonic()
            missing = answered - logged_ids(database.url)
            while missing and time.monotonic() - started < drain:
                time.sleep(1.0)
                missing = answered - logged_ids(database.url)
            caught_up = time.monotonic() - started
            timings = [t for result in results for t in result["timings"]]
            inside = [lat for at, lat in timings if down_from <= at < down_until]
            outside = [lat for at, lat in timings if not down_from <= at < down_until]
            return {
                "answered": len(answered),
                "failed": len(failures),
                "failures": sorted(set(failures))[:5],
                "missing": len(missing),
                "logged": len(logged_ids(database.url)),
                "caught_up_seconds": caught_up,
                "outage_seconds": down_until - down_from,
                "p50_ms_outage": statistics.median(inside) * 1000 if inside else float("nan"),
                "p50_ms_otherwise": statistics.median(outside) * 1000 if outside else float("nan"),
                "requests_during_outage": len(inside),
            }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the database is down")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of load after")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--drain", type=float, default=300.0, help="longest wait to catch up")
    args = parser.parse_args()
    figures = run(args.data, args.outage, args.before, args.after, args.clients, args.drain)
    print(f"prediction log, PostgreSQL stopped for {figures['outage_seconds']:.1f} s under load "
          f"({args.clients} client processes, single flights, gunicorn 2 sync workers)")  # fmt: skip
    print(f"answered {figures['answered']} ({figures['requests_during_outage']} while the "
          f"database was down), failed {figures['failed']} {figures['failures'] or ''}")  # fmt: skip
    print(f"p50 latency: {figures['p50_ms_outage']:.2f} ms during the outage, "
          f"{figures['p50_ms_otherwise']:.2f} ms otherwise")  # fmt: skip
    print(f"log rows {figures['logged']}, missing {figures['missing']}; the writer caught up "
          f"{figures['caught_up_seconds']:.1f} s after the load ended")  # fmt: skip
    return 0 if figures["failed"] == 0 and figures["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
