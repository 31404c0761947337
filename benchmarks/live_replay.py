"""November and December 2017 replayed as the days unfolded, through the real API.

Two models are trained by the service's worker (POST /models) on the flights scheduled before
``--cutoff`` (default 2017-11-01) only: ``live`` and ``schedule``, default settings otherwise.
Then, in time order, every departure after the cutoff is posted to POST /departures once it has
happened, and every flight is asked about through POST /predict with ``as_of`` at 30 min, 1, 2,
3 and 6 h before its scheduled time (each request: the flights asked at one moment). Before any
departure is posted, every flight is also asked with the feed empty. The schedule model answers
the same flights without ``as_of``. Reports ROC AUC, PR AUC and expected calibration error per
lead time next to the schedule model's on the same flights (the labels: the file's Fecha-O).

    python benchmarks/live_replay.py [--data PATH] [--cutoff 2017-11-01] [--json OUT]

Runs Redis, a Celery worker and gunicorn (2 processes) on 127.0.0.1; about 20 minutes here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flight_delay.data import schema
from flight_delay.devstack import (
    call,
    free_port,
    start_gunicorn,
    start_redis,
    start_worker,
    stop_processes,
    wait_until_healthy,
)
from flight_delay.ml.evaluation import expected_calibration_error

KEY = "benchmark-admin-key"
PER_ROUND = 100
LEADS = (30, 60, 120, 180, 360)
#: the fields a caller sends for a flight (what the schedule and live models read)
FLIGHT_FIELDS = ("Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO", "MES")
DEPARTURE_FIELDS = ("Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "Fecha-O")
FORMAT = "%Y-%m-%d %H:%M:%S"


def train(base: str, features: str, dataset: str) -> dict[str, Any]:
    status, created = call("POST", f"{base}/models", {"dataset": dataset, "features": features},
                           key=KEY)  # fmt: skip
    assert status == 202, created
    while True:
        status, record = call("GET", f"{base}/models/{created['id']}", key=KEY)
        if record["status"] in ("completed", "failed"):
            assert record["status"] == "completed", record
            return dict(record)
        time.sleep(2)


def deploy(base: str, model_id: str) -> None:
    status, body = call("PUT", f"{base}/deploy?model-id={model_id}", key=KEY)
    assert status == 204, body
    time.sleep(1.5)  # every process polls the deployment (0.25 s) and loads the model


def predict(base: str, flights: list[dict[str, Any]], as_of: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"flights": flights}
    if as_of is not None:
        body["as_of"] = as_of
    status, answer = call("POST", f"{base}/predict", body, timeout=120)
    assert status == 200, (status, answer)
    assert isinstance(answer, dict)
    return answer


def scores(labels: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": round(float(roc_auc_score(labels, probability)), 4),
        "pr_auc": round(float(average_precision_score(labels, probability)), 4),
        "ece": round(float(expected_calibration_error(labels, probability)), 4),
    }


def latency(
    env: dict[str, str],
    root: Path,
    live_base: str,
    schedule_model: dict[str, Any],
    processes: list[Any],
    rounds: int,
    replayed: pd.DataFrame,
    kept: np.ndarray,
) -> dict[str, Any]:
    """Single-flight POST /predict: the live model with as_of (the feed holding the replay's
    last two days) against the schedule model without it (the default path), each on its own
    gunicorn of 2 processes, in alternating rounds of ``PER_ROUND`` requests."""
    # the schedule model, deployed under a key prefix of its own (its own deployment)
    from flight_delay import create_app

    prefix = "fdschedule"
    app = create_app({"REDIS_URL": env["FLIGHT_DELAY_REDIS_URL"], "KEY_PREFIX": prefix,
                      "MODEL_DIR": env["FLIGHT_DELAY_MODEL_DIR"]})  # fmt: skip
    registry = app.extensions["model_registry"]
    record = registry.create(schedule_model["settings"], schedule_model["dataset"])
    models = Path(env["FLIGHT_DELAY_MODEL_DIR"])
    shutil.copytree(models / schedule_model["id"], models / record["id"])
    registry.update(
        record["id"], status="completed", threshold=schedule_model["threshold"],
        input_schema=schedule_model["input_schema"], metrics=schedule_model["metrics"],
    )  # fmt: skip
    registry.deploy(record["id"])
    registry.redis.close()
    port = free_port()
    processes.append(
        start_gunicorn(
            {**env, "FLIGHT_DELAY_KEY_PREFIX": prefix},
            port,
            workers=2,
            log=root / "api-schedule.log",
        )
    )
    schedule_base = f"http://127.0.0.1:{port}"
    wait_until_healthy(schedule_base, processes)
    time.sleep(1.5)
    last = replayed[kept].iloc[-1]
    flight = {k: last[k] for k in FLIGHT_FIELDS if last.get(k, "") != ""}
    as_of = (pd.Timestamp(flight["Fecha-I"]) - pd.Timedelta(minutes=30)).strftime(FORMAT)
    one_live = json.dumps({"flights": [flight], "as_of": as_of}).encode()
    one_schedule = json.dumps({"flights": [flight]}).encode()

    def timed(base: str, body: bytes) -> float:
        request = urllib.request.Request(f"{base}/predict", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        took = time.perf_counter() - started
        assert answer["predictions"][0]["delay_probability"] is not None
        return took

    answer = predict(live_base, [flight], as_of)
    assert answer["predictions"][0]["lead_minutes"] == 30, answer
    for _ in range(50):  # warm both
        timed(live_base, one_live), timed(schedule_base, one_schedule)
    live_medians, schedule_medians = [], []
    for _ in range(rounds):
        schedule_medians.append(statistics.median(
            timed(schedule_base, one_schedule) for _ in range(PER_ROUND)))  # fmt: skip
        live_medians.append(statistics.median(
            timed(live_base, one_live) for _ in range(PER_ROUND)))  # fmt: skip
    ratios = [a / b for a, b in zip(live_medians, schedule_medians, strict=True)]
    return {
        "rounds": rounds,
        "requests_per_round": PER_ROUND,
        "schedule_without_as_of_ms": round(statistics.median(schedule_medians) * 1000, 2),
        "live_with_as_of_ms": round(statistics.median(live_medians) * 1000, 2),
        "ratio_median_of_rounds": round(statistics.median(ratios), 3),
        "feed_departures_seen": answer["feed"]["departures"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FLIGHT_DELAY_DATASET",
                                                         "datasets/dataset_SCL.csv"))  # fmt: skip
    parser.add_argument("--cutoff", default="2017-11-01")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--latency-rounds", type=int, default=20,
                        help="alternating rounds of single-flight requests (0: none)")  # fmt: skip
    args = parser.parse_args()
    raw = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    before = raw[raw["Fecha-I"] < args.cutoff]
    replayed = raw[raw["Fecha-I"] >= args.cutoff].reset_index(drop=True)
    root = Path(tempfile.mkdtemp(prefix="live-replay-"))
    (root / "data").mkdir()
    before.to_csv(root / "data" / "before.csv", index=False)

    redis_port, api_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_DELAY_")},
        "FLIGHT_DELAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "FLIGHT_DELAY_API_KEYS": f"{KEY}=admin",
        "FLIGHT_DELAY_DATA_ROOT": str(root / "data"),
        "FLIGHT_DELAY_MODEL_DIR": str(root / "models"),
        "FLIGHT_DELAY_PREDICTION_LOG": "false",
        "FLIGHT_DELAY_METRICS_DIR": str(root / "metrics"),
    }
    processes = [start_redis(redis_port, data_dir=None)]
    base = f"http://127.0.0.1:{api_port}"
    result: dict[str, Any] = {"cutoff": args.cutoff, "trained_on_flights": len(before)}
    try:
        processes.append(start_worker(env, root / "worker.log"))
        processes.append(start_gunicorn(env, api_port, workers=2, log=root / "api.log"))
        wait_until_healthy(base, processes)
        began = time.monotonic()
        live_model = train(base, "live", "before.csv")
        result["live_training_seconds"] = round(time.monotonic() - began, 1)
        began = time.monotonic()
        schedule_model = train(base, "schedule", "before.csv")
        result["schedule_training_seconds"] = round(time.monotonic() - began, 1)
        result["live_model_holdout_by_lead"] = {
            lead: {k: round(v, 4) for k, v in figures.items() if k in ("roc_auc", "pr_auc", "ece")}
            for lead, figures in live_model["metrics"]["holdout"]["by_lead"].items()
        }

        flights = [{k: row[k] for k in FLIGHT_FIELDS if row.get(k, "") != ""}
                   for row in replayed.to_dict("records")]  # fmt: skip
        # the schedule model first: a flight it refuses (an airline it never saw) is left out
        deploy(base, schedule_model["id"])
        schedule_p = np.full(len(flights), np.nan)
        kept = np.ones(len(flights), dtype=bool)
        for start in range(0, len(flights), 10_000):
            chunk = flights[start : start + 10_000]
            status, answer = call("POST", f"{base}/predict", {"flights": chunk}, timeout=120)
            if status == 400:
                for issue in answer["errors"]:
                    kept[start + issue["index"]] = False
                status, answer = call(
                    "POST", f"{base}/predict",
                    {"flights": [f for i, f in enumerate(chunk) if kept[start + i]]}, timeout=120,
                )  # fmt: skip
            assert status == 200, answer
            positions = [start + i for i in range(len(chunk)) if kept[start + i]]
            schedule_p[positions] = [p["delay_probability"] for p in answer["predictions"]]
        result["flights_replayed"] = int(kept.sum())
        result["flights_left_out"] = int((~kept).sum())

        deploy(base, live_model["id"])
        scheduled = pd.to_datetime(replayed["Fecha-I"])
        asked: dict[pd.Timestamp, list[tuple[int, int | None]]] = defaultdict(list)
        for i in np.flatnonzero(kept).tolist():
            for lead in LEADS:
                asked[scheduled[i] - pd.Timedelta(minutes=lead)].append((i, lead))
        live_p = {lead: np.full(len(flights), np.nan) for lead in (*LEADS, None)}
        used = {lead: np.zeros(len(flights), dtype=bool) for lead in LEADS}
        # the feed empty: every flight asked 30 minutes ahead before anything is posted
        by_time: dict[pd.Timestamp, list[int]] = defaultdict(list)
        for i in np.flatnonzero(kept).tolist():
            by_time[scheduled[i] - pd.Timedelta(minutes=30)].append(i)
        began = time.monotonic()
        for moment, rows in sorted(by_time.items()):
            answer = predict(base, [flights[i] for i in rows], moment.strftime(FORMAT))
            for i, prediction in zip(rows, answer["predictions"], strict=True):
                assert prediction["lead_minutes"] is None
                live_p[None][i] = prediction["delay_probability"]
        # then the days as they unfolded: what left before each moment is posted, then asked
        departures = raw[raw["Fecha-O"] >= str(pd.Timestamp(args.cutoff) - pd.Timedelta(days=2))]
        departures = departures.sort_values("Fecha-O", kind="stable")
        actual = pd.to_datetime(departures["Fecha-O"]).to_numpy()
        events = departures[list(DEPARTURE_FIELDS)].to_dict("records")
        posted = requests = 0
        for moment, pairs in sorted(asked.items()):
            upto = int(np.searchsorted(actual, np.datetime64(moment), side="left"))
            while posted < upto:
                batch = events[posted : min(upto, posted + 10_000)]
                status, answer = call("POST", f"{base}/departures", {"departures": batch},
                                      key=KEY, timeout=120)  # fmt: skip
                assert status == 200, answer
                posted += len(batch)
            answer = predict(base, [flights[i] for i, _ in pairs], moment.strftime(FORMAT))
            requests += 1
            for (i, asked_lead), prediction in zip(pairs, answer["predictions"], strict=True):
                assert asked_lead is not None
                live_p[asked_lead][i] = prediction["delay_probability"]
                used[asked_lead][i] = prediction["lead_minutes"] == asked_lead
        result["replay_seconds"] = round(time.monotonic() - began, 1)
        result["prediction_requests"] = requests + len(by_time)
        result["departures_posted"] = posted
        if args.latency_rounds:
            result["latency"] = latency(
                env, root, base, schedule_model, processes, args.latency_rounds, replayed, kept
            )
    finally:
        stop_processes(processes[::-1])
    labels = schema.delay_label(
        pd.to_datetime(replayed["Fecha-I"]), pd.to_datetime(replayed["Fecha-O"])
    ).to_numpy()[kept]
    schedule_scores = scores(labels, schedule_p[kept])
    by_lead = {}
    for lead_time in (*LEADS, None):
        by_lead["none" if lead_time is None else str(lead_time)] = {
            **scores(labels, live_p[lead_time][kept]),
            "schedule_model": schedule_scores,
            "flights_with_departures_seen": int(used[lead_time][kept].sum()) if lead_time else 0,
        }
    result["replay_by_lead"] = by_lead
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
