"""Retraining schedules run by a real Celery beat (issue 12): a one-minute schedule runs twice by
itself, keeps a worse challenger out and promotes a better one; two beats started by mistake never
run a due time twice.

The beats are the stack's own command (``celery -A worker.celery_app:celery beat``) against the
session's Redis and worker; nothing is triggered by hand.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.devstack import stop_processes
from flight_delay.prediction_log import migrate
from flight_delay.scheduling.runs import schedule_store
from tests.integration.conftest import admin, finished, start_beat, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: beats look for due runs this often in these tests (5 s by default)
TICK = 0.5
CLAIMED = re.compile(r"schedule (\S+): due (\d+) claimed by (beat \S+), (run|skipped)")
#: a due time another beat had claimed when this one tried
REFUSED = re.compile(r"schedule (\S+): due (\d+) was claimed by another beat before (beat \S+):")


@pytest.fixture(scope="module")
def beat_stack(
    stack_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """This module's own stack on the session's Redis: its own key prefix (so its own queue,
    models, deployment and schedules), prediction log and worker. Other tests' deployments and
    logged outcomes (real flights among them) stay out of these runs' decisions."""
    root = tmp_path_factory.mktemp("beat-stack")
    settings = {
        **stack_settings,
        "KEY_PREFIX": f"fdbeat{uuid.uuid4().hex[:8]}",
        "PREDICTION_LOG_URL": f"sqlite:///{root / 'predictions.db'}",
        "METRICS_DIR": str(root / "metrics"),
        "SCHEDULE_TICK_SECONDS": TICK,
    }
    migrate.upgrade(settings["PREDICTION_LOG_URL"])
    process = start_worker(settings, root / "worker.log")
    try:
        yield settings
    finally:
        stop_processes([process])


@pytest.fixture(scope="module")
def beat(beat_stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One beat for the module; yields its log."""
    log = tmp_path_factory.mktemp("beat") / "beat-a.log"
    process = start_beat(beat_stack, log)
    try:
        yield log
    finally:
        stop_processes([process])


@pytest.fixture
def client(beat_stack: dict[str, Any], beat: Path) -> FlaskClient:
    # intervals under a minute for the two-beat test; the must-show test uses 60 s
    app: Flask = create_app({"TESTING": True, **beat_stack, "SCHEDULE_MIN_INTERVAL_SECONDS": 1})
    return app.test_client()


def wait_for_run(
    client: FlaskClient, schedule_id: str, number: int, timeout: float = 240
) -> dict[str, Any]:
    """Poll the schedule's runs until run ``number`` has finished."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = client.get(f"/schedules/{schedule_id}/runs").get_json()
        for run in runs:
            if run["number"] == number and run["status"] in ("completed", "failed"):
                return client.get(f"/schedules/{schedule_id}/runs/{run['id']}").get_json()
        time.sleep(0.5)
    pytest.fail(f"run {number} of {schedule_id} did not finish within {timeout}s: {runs}")


def summary(run: dict[str, Any]) -> str:
    holdout = run["evaluation"]["holdout"]
    parts = [f"run {run['number']}: {run['decision']} (holdout {holdout['flights']} flights)"]
    for role in ("champion", "challenger"):
        metrics = holdout[role]["metrics"]
        parts.append(
            f"{role} {holdout[role]['model_type']}/{holdout[role]['features']}: "
            + ", ".join(f"{k} {metrics[k]:.4f}" for k in ("roc_auc", "pr_auc", "brier", "ece"))
        )
    return "; ".join(parts) + f" -- {run['reason']}"


def test_a_one_minute_schedule_keeps_a_worse_challenger_and_promotes_a_better_one(
    client: FlaskClient,
) -> None:
    """The deployed champion is a LightGBM trained on 2,000 synthetic flights (time split, no
    refit). The schedule retrains every minute on 20,000: its first run's challenger is a
    logistic regression on the `minimal` features (no departure hour) and is kept out; the
    settings are then changed to LightGBM on `schedule`, and the second run, started by the
    beat a minute after the first, is promoted."""
    response = client.post(
        "/models",
        json={"dataset": "synthetic:2000", "refit": False, "description": "champion"},
        headers=admin(),
    )
    champion = wait_for(client, response.get_json()["id"], finished)
    assert champion["status"] == "completed", champion
    assert client.put(f"/deploy?model-id={champion['id']}", headers=admin()).status_code == 204
    version = client.get("/deployment").get_json()["version"]

    created = client.post(
        "/schedules",
        json={
            "name": "must-show",
            "dataset": "synthetic",
            "every_seconds": 60,
            "model": {"model_type": "logistic_regression", "features": "minimal"},
            "rule": {"metric": "roc_auc", "min_margin": 0.005, "calibration_not_worse": True},
        },
        headers=admin(),
    )
    assert created.status_code == 201, created.get_json()
    schedule = created.get_json()

    first = wait_for_run(client, schedule["id"], 1)
    print("\n" + summary(first))
    assert first["status"] == "completed", first
    assert (first["trigger"], first["decision"]) == ("schedule", "kept")
    assert first["requested_by"].startswith("beat ")
    assert first["champion_id"] == champion["id"]
    holdout = first["evaluation"]["holdout"]
    assert holdout["challenger"]["model_type"] == "logistic_regression"
    assert holdout["challenger"]["metrics"]["roc_auc"] < holdout["champion"]["metrics"]["roc_auc"]
    assert any("roc_auc" in reason and "not met" in reason for reason in first["reasons"])
    deployment = client.get("/deployment").get_json()
    assert (deployment["model_id"], deployment["version"]) == (champion["id"], version)

    changed = client.patch(
        f"/schedules/{schedule['id']}",
        json={"model": {"model_type": "lightgbm", "features": "schedule"}},
        headers=admin(),
    )
    assert changed.status_code == 200, changed.get_json()
    assert (
        changed.get_json()["next_run_at"]
        == client.get(f"/schedules/{schedule['id']}").get_json()["next_run_at"]
    )

    second = wait_for_run(client, schedule["id"], 2)
    print(summary(second))
    assert second["status"] == "completed", second
    assert (second["trigger"], second["decision"]) == ("schedule", "promoted")
    due_first, due_second = first["scheduled_for"], second["scheduled_for"]
    assert _seconds(due_second) - _seconds(due_first) == 60
    holdout = second["evaluation"]["holdout"]
    assert holdout["challenger"]["model_type"] == "lightgbm"
    assert holdout["challenger"]["metrics"]["roc_auc"] >= (
        holdout["champion"]["metrics"]["roc_auc"] + 0.005
    )
    assert holdout["challenger"]["metrics"]["ece"] <= holdout["champion"]["metrics"]["ece"]
    deployment = client.get("/deployment").get_json()
    assert deployment["model_id"] == second["challenger_id"]
    assert deployment["version"] == version + 1 == second["deployment_version"]
    event = deployment["history"][0]
    assert event["by"] == f"schedule 'must-show' #{schedule['id'][:8]}, run 2"
    assert event["previous_model_id"] == champion["id"]
    assert client.get(f"/schedules/{schedule['id']}").get_json()["runs"] == 2
    assert client.delete(f"/schedules/{schedule['id']}", headers=admin()).status_code == 204


def test_two_beats_never_run_a_due_time_twice(
    client: FlaskClient, beat_stack: dict[str, Any], beat: Path, tmp_path: Path
) -> None:
    """A second beat started by mistake: for 20 s both tick every 0.5 s (on the same clock
    boundaries) against a schedule due every 2 s. Every due time is claimed by exactly one of
    them, the other one's attempts are refused, and every run has its own due time and
    number."""
    second_log = tmp_path / "beat-b.log"
    second = start_beat(beat_stack, second_log)
    try:
        created = client.post(
            "/schedules",
            json={
                "name": "two-beats",
                "dataset": "flights.csv",
                "every_seconds": 2,
                "model": {"model_type": "logistic_regression", "features": "minimal"},
            },
            headers=admin(),
        )
        assert created.status_code == 201, created.get_json()
        schedule_id = created.get_json()["id"]
        time.sleep(20)
        paused = client.patch(f"/schedules/{schedule_id}", json={"paused": True}, headers=admin())
        assert paused.status_code == 200 and paused.get_json()["next_run_at"] is None
    finally:
        stop_processes([second])
    deadline = time.monotonic() + 120
    while client.get(f"/schedules/{schedule_id}").get_json()["active_run"]:
        assert time.monotonic() < deadline, "the last run did not finish"
        time.sleep(0.5)

    claims: list[tuple[str, str, str]] = []
    refusals: list[tuple[str, str]] = []
    for log in (beat, second_log):
        text = log.read_text(errors="replace")
        claims += [m.group(2, 3, 4) for m in CLAIMED.finditer(text) if m.group(1) == schedule_id]
        refusals += [m.group(2, 3) for m in REFUSED.finditer(text) if m.group(1) == schedule_id]
    due_times = [due for due, _, _ in claims]
    beats = {who for _, who, _ in claims} | {who for _, who in refusals}
    print(
        f"\ntwo beats: {len(claims)} due times claimed ({len(set(due_times))} distinct), "
        f"claims per beat {[sum(w == b for _, w, _ in claims) for b in sorted(beats)]}, "
        f"{len(refusals)} refused"
    )
    assert len(claims) >= 8
    assert len(due_times) == len(set(due_times)), "a due time was claimed twice"
    # the race happened: both beats went for the due times (each won some, or was refused)
    assert len(beats) == 2, (claims, refusals)
    assert {due for due, _ in refusals} <= set(due_times)

    schedule = client.get(f"/schedules/{schedule_id}").get_json()
    runs = client.get(f"/schedules/{schedule_id}/runs?limit=100").get_json()
    started = [claim for claim in claims if claim[2] == "run"]
    assert schedule["runs"] == len(runs) == len(started)
    assert schedule["skipped"] == len(claims) - len(started)
    assert sorted(run["number"] for run in runs) == list(range(1, len(runs) + 1))
    assert len({run["scheduled_for"] for run in runs}) == len(runs)
    assert all(run["status"] == "completed" for run in runs), runs
    client.delete(f"/schedules/{schedule_id}", headers=admin())


def test_concurrent_claims_of_one_due_time_start_one_run(client: FlaskClient) -> None:
    """The claim itself, from 8 threads at once on the real Redis: one run, seven refusals."""
    app = create_app({"TESTING": True, **client.application.config})
    store = schedule_store(app)
    created = client.post(
        "/schedules",
        json={"dataset": "flights.csv", "every_seconds": 3600, "paused": True},
        headers=admin(),
    ).get_json()
    due = int(time.time())
    store.update(created["id"], {}, due)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        outcomes.append(store.claim_due(created["id"], due, due + 3600, "test")[0])

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # the beat may have claimed it first: then every thread is refused
    assert outcomes.count("started") <= 1 and outcomes.count("taken") >= 7, outcomes
    assert client.get(f"/schedules/{created['id']}").get_json()["runs"] == 1
    client.delete(f"/schedules/{created['id']}", headers=admin())


def _seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()
