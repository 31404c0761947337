"""The departures feed flooded: ``--events`` departures (1,000,000 by default) posted through the
real API (gunicorn, 2 processes) in batches of 10,000, ten minutes of schedule per 1,000 events
so the feed's newest departure keeps moving. Reports the answers, the time, the feed's size and
Redis' memory before and after: the feed must stay within FLIGHT_DELAY_DEPARTURES_MAX_EVENTS
and its 49 hours, whatever is sent.

    python benchmarks/departure_flood.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flight_delay.config import DefaultConfig
from flight_delay.devstack import (
    call,
    free_port,
    start_gunicorn,
    start_redis,
    stop_processes,
    wait_until_healthy,
)

KEY = "benchmark-feed-key"
BATCH = 10_000


def batch(first: int, start: datetime) -> bytes:
    events = []
    for number in range(first, first + BATCH):
        scheduled = start + timedelta(minutes=number // 100)
        events.append(
            {
                "Fecha-I": scheduled.strftime("%Y-%m-%d %H:%M:%S"),
                "Vlo-I": str(number % 9000),
                "Des-I": "SCIE",
                "Emp-I": ("LAN", "SKU", "JAT")[number % 3],
                "Fecha-O": (scheduled + timedelta(minutes=number % 40)).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
            }
        )
    return json.dumps({"departures": events}).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="departure-flood-"))
    redis_port, api_port = free_port(), free_port()
    processes = [start_redis(redis_port, data_dir=None)]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_DELAY_")},
        "FLIGHT_DELAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "FLIGHT_DELAY_API_KEYS": f"{KEY}=departures",
        "FLIGHT_DELAY_MODEL_DIR": str(root / "models"),
        "FLIGHT_DELAY_PREDICTION_LOG": "false",
    }
    client = redis.Redis(port=redis_port)
    try:
        processes.append(start_gunicorn(env, api_port, workers=2, log=root / "api.log"))
        base = f"http://127.0.0.1:{api_port}"
        wait_until_healthy(base, processes)
        memory_before = int(client.info("memory")["used_memory"])
        start = datetime(2017, 3, 1)
        seconds: list[float] = []
        statuses: dict[int, int] = {}
        began = time.monotonic()
        for first in range(0, args.events, BATCH):
            body = batch(first, start)
            request = urllib.request.Request(
                f"{base}/departures", data=body, method="POST",
                headers={"Content-Type": "application/json", "X-api-key": KEY},
            )  # fmt: skip
            sent = time.monotonic()
            with urllib.request.urlopen(request, timeout=120) as response:
                statuses[response.status] = statuses.get(response.status, 0) + 1
                answer = json.loads(response.read())
            seconds.append(time.monotonic() - sent)
        took = time.monotonic() - began
        memory_after = int(client.info("memory")["used_memory"])
        summary = call("GET", f"{base}/departures")[1]
    finally:
        client.close()
        stop_processes(processes)
    print(f"{args.events:,} departures in {len(seconds)} requests of {BATCH:,}: {took:.1f} s, "
          f"answers {statuses}, per request p50 {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s")  # fmt: skip
    print(f"last answer: {answer}")
    print(f"feed: {summary} (cap FLIGHT_DELAY_DEPARTURES_MAX_EVENTS = "
          f"{DefaultConfig.DEPARTURES_MAX_EVENTS:,})")  # fmt: skip
    print(f"Redis used_memory: {memory_before / 2**20:.1f} MiB before, "
          f"{memory_after / 2**20:.1f} MiB after")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
