"""/schedules (issue 12): keys and bad input refused before anything is stored, changes and
deletions, and runs started by hand that the real worker trains, evaluates and decides on,
with the logged outcomes counted, a lost evaluation recovered and a deployment that moved
during a run never overwritten. (Runs started by Celery beat: test_schedule_beat.py.)"""

from __future__ import annotations

import time
import uuid
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.metrics import roc_auc_score

from flight_delay.data import load_flights, schema
from flight_delay.ml import load_model
from flight_delay.scheduling.runs import advance, readable_by_all, schedule_store
from flight_delay.scheduling.store import ScheduleStore
from tests.integration.conftest import ADMIN, READER, TRAINER, admin
from tests.support.prediction_log import write_log

pytestmark = pytest.mark.integration

GOOD = {
    "name": "nightly",
    "dataset": "flights.csv",
    "every_seconds": 3600,
    "model": {"model_type": "logistic_regression", "features": "minimal"},
}
DEPLOYER = "deployer-key-for-tests"
FAST_PARAMS = {"n_estimators": 200, "learning_rate": 0.1}


@pytest.fixture
def app(stack_settings: dict[str, Any], worker: Any) -> Flask:
    from flight_delay import create_app

    keys = f"{stack_settings['API_KEYS']};{DEPLOYER}=deploy;both-key=train,deploy"
    return create_app({"TESTING": True, **stack_settings, "API_KEYS": keys})


@pytest.fixture
def schedule(client: FlaskClient) -> dict[str, Any]:
    response = client.post("/schedules", json=GOOD, headers=admin())
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


@pytest.fixture
def deployed(client: FlaskClient, train: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    record = train()
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    return record


def finished_run(client: FlaskClient, location: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(location).get_json()
        if run["status"] in ("completed", "failed"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


def run_with_challenger(
    app: Flask, schedule: dict[str, Any], challenger_id: str
) -> tuple[ScheduleStore, dict[str, Any]]:
    """A run started now whose challenger is an already trained model (its training's end
    queues nothing: the test drives the evaluation)."""
    store = schedule_store(app)
    run = store.start_now(schedule["id"], "test")
    assert store.lifecycle.start_training(run["id"], challenger_id)
    return store, store.get_run(run["id"])


def schedule_count(client: FlaskClient) -> int:
    return len(client.get("/schedules").get_json())


# -- keys and input -------------------------------------------------------------------------------
def test_a_schedule_needs_a_key_with_train_and_deploy(client: FlaskClient) -> None:
    before = schedule_count(client)
    assert client.post("/schedules", json=GOOD).status_code == 401
    for key in (READER, TRAINER, DEPLOYER):
        answer = client.post("/schedules", json=GOOD, headers=admin(key))
        assert answer.status_code == 403, key
    assert schedule_count(client) == before
    assert client.post("/schedules", json=GOOD, headers=admin("both-key")).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"every_seconds": None, "cron": None}, "every_seconds"),
        ({"cron": "0 3 * * *"}, "cron"),  # both
        (
            {"every_seconds": 59},
            "every_seconds",
        ),  # under FLIGHT_DELAY_SCHEDULE_MIN_INTERVAL_SECONDS
        ({"every_seconds": 10**9}, "every_seconds"),
        ({"every_seconds": "3600"}, "every_seconds"),
        ({"every_seconds": None, "cron": "61 * * * *"}, "cron"),
        ({"every_seconds": None, "cron": "* * * * * *"}, "cron"),  # six fields
        ({"every_seconds": None, "cron": "0 0 31 2 *"}, "cron"),  # never fires
        ({"every_seconds": None, "cron": "0 3 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"dataset": "../outside.csv"}, "dataset"),
        ({"dataset": "/etc/passwd"}, "dataset"),
        ({"dataset": "http://169.254.169.254/latest"}, "dataset"),
        ({"dataset": "file:///etc/passwd"}, "dataset"),
        ({"model": {"refit": True}}, "model.refit"),
        ({"model": {"split": "random"}}, "model.split"),
        ({"model": {"model_type": "svm"}}, "model.model_type"),
        ({"model": {"params": {"num_leaves": 1}}}, "model.params.num_leaves"),
        ({"rule": {"metric": "accuracy"}}, "rule.metric"),
        ({"rule": {"min_margin": 0.9}}, "rule.min_margin"),
        ({"rule": {"min_margin": -0.1}}, "rule.min_margin"),
        ({"rule": {"min_outcome_flights": 10}}, "rule.min_outcome_flights"),
        ({"rule": {"min_outcome_flights": 10**7}}, "rule.min_outcome_flights"),
        ({"name": "x" * 101}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_schedules_are_refused_with_the_field(
    client: FlaskClient, change: dict[str, Any], field: str
) -> None:
    body = {**GOOD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    before = schedule_count(client)
    response = client.post("/schedules", json=body, headers=admin())
    assert response.status_code == 400, response.get_json()
    assert field in [e["field"] for e in response.get_json()["errors"]], response.get_json()
    assert schedule_count(client) == before


def test_unknown_schedules_and_runs_are_404(client: FlaskClient, schedule: dict[str, Any]) -> None:
    other = "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10"
    assert client.get(f"/schedules/{other}").status_code == 404
    assert client.get(f"/schedules/{other}/runs").status_code == 404
    assert client.post(f"/schedules/{other}/runs", headers=admin()).status_code == 404
    assert (
        client.patch(f"/schedules/{other}", json={"name": "x"}, headers=admin()).status_code == 404
    )
    assert client.delete(f"/schedules/{other}", headers=admin()).status_code == 404
    assert client.get(f"/schedules/{schedule['id']}/runs/{other}").status_code == 404


# -- changes ----------------------------------------------------------------------------------------
def test_patch_changes_only_what_it_names(client: FlaskClient, schedule: dict[str, Any]) -> None:
    url = f"/schedules/{schedule['id']}"
    assert client.patch(url, json={"name": "renamed"}).status_code == 401
    renamed = client.patch(url, json={"name": "renamed"}, headers=admin()).get_json()
    assert renamed["name"] == "renamed"
    assert renamed["next_run_at"] == schedule["next_run_at"]
    assert renamed["model"] == schedule["model"] and renamed["rule"] == schedule["rule"]

    timed = client.patch(
        url, json={"cron": "30 4 * * 1", "timezone": "America/Santiago"}, headers=admin()
    ).get_json()
    assert (timed["every_seconds"], timed["cron"]) == (None, "30 4 * * 1")
    moment = datetime.fromisoformat(timed["next_run_at"])
    local = moment.astimezone(zoneinfo.ZoneInfo("America/Santiago"))
    assert (local.weekday(), local.hour, local.minute) == (0, 4, 30)

    paused = client.patch(url, json={"paused": True}, headers=admin()).get_json()
    assert paused["paused"] is True and paused["next_run_at"] is None
    resumed = client.patch(url, json={"paused": False}, headers=admin()).get_json()
    assert resumed["next_run_at"] is not None

    refused = client.patch(url, json={"every_seconds": 5}, headers=admin())
    assert refused.status_code == 400
    assert client.get(url).get_json()["cron"] == "30 4 * * 1"  # nothing half-written

    assert client.delete(url, headers=admin(TRAINER)).status_code == 403
    assert client.delete(url, headers=admin()).status_code == 204
    assert client.get(url).status_code == 404


def test_a_change_never_moves_a_due_time_a_beat_moved_meanwhile(
    app: Flask, client: FlaskClient, schedule: dict[str, Any]
) -> None:
    """PATCH reads the schedule, then writes: a beat that claimed a due time in between moved
    the next run on, and a change of name or model must not put the old time back (it would
    run twice)."""
    store = schedule_store(app)
    due = int(time.time()) - 5
    store.update(schedule["id"], {}, due)
    assert store.claim_due(schedule["id"], due, due + 3600, "a beat")[0] == "started"
    # what a PATCH that read the schedule before the claim writes: fields, due time kept
    store.update(schedule["id"], {"name": "renamed"})
    shown = client.get(f"/schedules/{schedule['id']}").get_json()
    assert shown["name"] == "renamed"
    assert datetime.fromisoformat(shown["next_run_at"]).timestamp() == due + 3600
    assert schedule["id"] not in dict(store.due(time.time()))


# -- runs -----------------------------------------------------------------------------------------
def test_a_run_asked_for_now_trains_scores_and_keeps_a_worse_challenger(
    client: FlaskClient, schedule: dict[str, Any], deployed: dict[str, Any], model_dir: Path
) -> None:
    url = f"/schedules/{schedule['id']}/runs"
    assert client.post(url).status_code == 401
    started = client.post(url, headers=admin())
    assert started.status_code == 202, started.get_json()
    assert started.get_json()["status"] == "training"
    assert client.post(url, headers=admin()).status_code == 409  # one run at a time
    run = finished_run(client, started.headers["Location"])
    assert run["status"] == "completed", run
    assert (run["trigger"], run["decision"]) == ("manual", "kept")
    assert run["requested_by"].startswith("key admin #")
    assert run["champion_id"] == deployed["id"]
    assert run["settings"]["refit"] is False and run["settings"]["split"] == "time"

    # the figures are the two models' own, on the challenger's holdout (the newest 20 %)
    holdout = run["evaluation"]["holdout"]
    flights = load_flights(Path(client.application.config["DATA_ROOT"]) / "flights.csv")
    order = np.argsort(flights.frame[schema.SCHEDULED_AT].to_numpy(), kind="stable")
    newest = np.sort(order[len(order) - round(len(order) * 0.2) :])
    frame = flights.frame.iloc[newest].reset_index(drop=True)
    labels = flights.labels.to_numpy()[newest]
    assert holdout["flights"] == len(newest)
    for role, model_id in (("champion", deployed["id"]), ("challenger", run["challenger_id"])):
        model = load_model(model_dir / model_id)
        expected = roc_auc_score(labels, model.predict_proba(frame))
        assert holdout[role]["metrics"]["roc_auc"] == pytest.approx(expected, abs=1e-9)
        assert len(holdout[role]["curves"]["roc"]) <= 101
    assert holdout["challenger"]["holdout_flights_in_training"] == 0
    # the champion was refit on every row of this file: flagged, not hidden
    assert holdout["champion"]["holdout_flights_in_training"] == len(newest)
    assert run["reasons"][-1] == (
        f"holdout: the champion was fitted on {len(newest)} of these {len(newest)} flights, "
        "so its figures there are optimistic"
    )
    assert client.get("/deployment").get_json()["model_id"] == deployed["id"]

    listed = client.get(url).get_json()
    assert [r["id"] for r in listed] == [run["id"]]
    assert "curves" not in listed[0]["evaluation"]["holdout"]["challenger"]
    challenger = client.get(f"/models/{run['challenger_id']}").get_json()
    assert challenger["description"] == f"challenger of schedule nightly, run {run['number']}"


def test_a_challenger_of_other_data_never_replaces_the_champion(
    client: FlaskClient, train: Callable[..., dict[str, Any]], stack_settings: dict[str, Any]
) -> None:
    """The deployed model was trained on data with an airline generated flights lack (as the
    real file has Air Canada); a schedule on generated flights trains a challenger that beats it
    on their holdout. It is kept: it would refuse flights the deployed model serves, and both are
    scored on the deployed model's own data too. Before, it was promoted and every Air Canada
    flight got a 400 (issue 19, finding 7)."""
    flights = pd.read_csv(Path(stack_settings["DATA_ROOT"]) / "flights.csv", dtype=str)
    sky = flights.index[flights["OPERA"] == "Sky Airline"][::3]
    flights.loc[sky, ["OPERA", "Emp-I"]] = ["Air Canada", "ACA"]
    flights.to_csv(Path(stack_settings["DATA_ROOT"]) / "with-air-canada.csv", index=False)
    champion = train(dataset="with-air-canada.csv", model_type="logistic_regression",
                     features="minimal")  # fmt: skip
    assert champion["status"] == "completed", champion
    assert client.put(f"/deploy?model-id={champion['id']}", headers=admin()).status_code == 204
    generated = {
        "name": "generated",
        "dataset": "synthetic:3000",
        "every_seconds": 3600,
        "model": {"model_type": "lightgbm", "features": "minimal", "params": FAST_PARAMS},
        "rule": {"min_margin": 0.0, "calibration_not_worse": False},
    }
    created = client.post("/schedules", json=generated, headers=admin()).get_json()
    started = client.post(f"/schedules/{created['id']}/runs", headers=admin())
    run = finished_run(client, started.headers["Location"])
    assert run["status"] == "completed", run
    assert run["decision"] == "kept", run["reasons"]
    assert run["reasons"][0].startswith("not promoted: the challenger refuses 1 OPERA value(s)")
    assert "'Air Canada'" in run["reasons"][0]
    own = run["evaluation"]["champion_data"]
    assert own["used"] is True and own["dataset"] == "with-air-canada.csv"
    assert own["flights"] < own["held_out_flights"]  # the Air Canada flights the challenger refuses
    assert any(reason.startswith("champion_data: roc_auc") for reason in run["reasons"])
    assert client.get("/deployment").get_json()["model_id"] == champion["id"]


def test_challengers_kept_out_are_deleted_beyond_the_newest_three(
    client: FlaskClient, deployed: dict[str, Any], model_dir: Path
) -> None:
    """Every run trains a model (1.34 MB each on the real data) and kept them all, failed runs'
    too. Now the challengers that were not promoted beyond FLIGHT_DELAY_SCHEDULE_KEEP_REJECTED
    (3) go, record and files; their runs keep the figures and say when (issue 19, finding 8)."""
    created = client.post("/schedules", json=GOOD, headers=admin()).get_json()
    runs = []
    for _ in range(4):
        started = client.post(f"/schedules/{created['id']}/runs", headers=admin())
        assert started.status_code == 202, started.get_json()
        runs.append(finished_run(client, started.headers["Location"]))
    assert [r["decision"] for r in runs] == ["kept"] * 4
    oldest, *newest = runs
    # the evaluation prunes right after it recorded its decision (a pruning counts finished
    # runs only): the fourth run reads finished a moment before its prune is done
    deadline = time.monotonic() + 30
    while True:
        again = client.get(f"/schedules/{created['id']}/runs/{oldest['id']}").get_json()
        if again["challenger_deleted_at"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert again["challenger_deleted_at"] is not None
    assert again["evaluation"]["holdout"]["challenger"]["metrics"]["roc_auc"] > 0
    assert client.get(f"/models/{oldest['challenger_id']}").status_code == 404
    assert not (model_dir / oldest["challenger_id"]).exists()
    for run in newest:
        assert client.get(f"/models/{run['challenger_id']}").status_code == 200
        assert (model_dir / run["challenger_id"]).is_dir()
    assert client.get("/deployment").get_json()["model_id"] == deployed["id"]


def test_a_run_whose_challenger_fails_records_why(client: FlaskClient) -> None:
    created = client.post("/schedules", json={**GOOD, "dataset": "empty.csv"}, headers=admin())
    assert created.status_code == 201
    started = client.post(f"/schedules/{created.get_json()['id']}/runs", headers=admin())
    run = finished_run(client, started.headers["Location"])
    assert run["status"] == "failed"
    assert run["error"].startswith("the challenger failed to train: ")
    assert client.get(f"/schedules/{created.get_json()['id']}").get_json()["active_run"] is None


def test_logged_outcomes_are_a_second_evaluation_set(
    app: Flask,
    client: FlaskClient,
    deployed: dict[str, Any],
    stack_settings: dict[str, Any],
    model_dir: Path,
) -> None:
    """300 logged flights get their real departures; the run scores both models on the logged
    flights with outcomes as well, re-predicted from the flights as sent."""
    flights = pd.read_csv(Path(stack_settings["DATA_ROOT"]) / "flights.csv", dtype=str)
    sample = flights.sample(300, random_state=1)
    sent = [
        {key: row[key] for key in ("Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO")}
        for _, row in sample.iterrows()
    ]
    answer = client.post("/predict", json={"flights": sent}).get_json()
    write_log(app, stack_settings)
    outcomes = [
        {"request_id": answer["request_id"], "index": i, "Fecha-O": row["Fecha-O"]}
        for i, (_, row) in enumerate(sample.iterrows())
    ]
    assert client.post("/outcomes", json={"outcomes": outcomes}, headers=admin()).status_code == 200

    rule = {"min_outcome_flights": 100}
    created = client.post("/schedules", json={**GOOD, "rule": rule}, headers=admin()).get_json()
    started = client.post(f"/schedules/{created['id']}/runs", headers=admin())
    run = finished_run(client, started.headers["Location"])
    assert run["status"] == "completed", run
    scored = run["evaluation"]["outcomes"]
    assert scored["used"] is True, scored
    assert any(reason.startswith("outcomes: roc_auc") for reason in run["reasons"])

    # the same flights scored here: the session's whole log, less what a model cannot read
    # (real flights of airlines these synthetic models never saw, logged by other tests)
    logged = app.extensions["prediction_log"].store.flights_with_outcomes()
    # each scheduled flight once (generated flights repeat a few schedules)
    distinct = len({(f["Fecha-I"], f["Vlo-I"], f["Des-I"]) for f in sent})
    assert scored["logged_with_outcomes"] == len(logged) >= distinct
    challenger = load_model(model_dir / run["challenger_id"])
    champion = load_model(model_dir / deployed["id"])
    records = [flight for flight, _ in logged]
    readable = readable_by_all([challenger, champion], records)
    assert scored["flights"] == len(readable) >= distinct
    labels = np.array([logged[i][1] > 15 for i in readable], dtype=int)
    for role, model in (("challenger", challenger), ("champion", champion)):
        expected = roc_auc_score(labels, model.predict_proba([records[i] for i in readable]))
        assert scored[role]["metrics"]["roc_auc"] == pytest.approx(expected, abs=1e-9), role
    assert scored["champion"]["model_id"] == deployed["id"]

    # below the rule's minimum the log's flights are not an evaluation set, and it says why
    strict = {**GOOD, "rule": {"min_outcome_flights": 1_000_000}}
    created = client.post("/schedules", json=strict, headers=admin()).get_json()
    started = client.post(f"/schedules/{created['id']}/runs", headers=admin())
    run = finished_run(client, started.headers["Location"])
    assert run["evaluation"]["outcomes"]["used"] is False
    assert "min_outcome_flights" in run["evaluation"]["outcomes"]["reason"]
    assert all(reason.startswith("holdout:") for reason in run["reasons"])


def test_a_lost_evaluation_is_taken_over_and_decided(
    app: Flask,
    client: FlaskClient,
    schedule: dict[str, Any],
    deployed: dict[str, Any],
    train: Callable[..., dict[str, Any]],
) -> None:
    """A worker claimed the evaluation and died (the test claims it with a 1 s lease and never
    renews it): the tick sends the evaluation again, and the real worker takes it over."""
    challenger = train(model_type="logistic_regression", features="minimal", refit=False)
    store, run = run_with_challenger(app, schedule, challenger["id"])
    assert store.lifecycle.claim_evaluation(run, "dead-worker", 1.0, 2) == "claimed"
    assert advance(app, store.get_run(run["id"])) is False  # its lease still runs
    time.sleep(1.2)
    assert advance(app, store.get_run(run["id"])) is True  # lease gone: evaluation sent
    assert advance(app, store.get_run(run["id"])) is False  # once, not at every tick
    done = finished_run(client, f"/schedules/{schedule['id']}/runs/{run['id']}")
    assert done["status"] == "completed", done
    assert done["attempts"] == 2
    assert done["decision"] in ("kept", "promoted") and done["reasons"]


def test_a_promotion_never_overwrites_a_deployment_made_during_the_run(
    app: Flask,
    client: FlaskClient,
    schedule: dict[str, Any],
    deployed: dict[str, Any],
    train: Callable[..., dict[str, Any]],
) -> None:
    """The atomic promotion checks the champion it scored is still deployed: an operator's
    PUT /deploy in between wins, and the run says why it did not promote."""
    challenger = train()
    store, run = run_with_challenger(app, schedule, challenger["id"])
    assert store.lifecycle.claim_evaluation(run, "token", 30.0, 2) == "claimed"
    other = train()
    assert client.put(f"/deploy?model-id={other['id']}", headers=admin()).status_code == 204
    outcome, detail = store.lifecycle.promote(
        run, "token", deployed["id"], "test", {"decision": "promoted"}
    )
    assert (outcome, detail) == ("moved", other["id"])
    assert client.get("/deployment").get_json()["model_id"] == other["id"]
    # and with the champion still in place it deploys and completes the run in one step
    outcome, _ = store.lifecycle.promote(
        run, "token", other["id"], "test", {"decision": "promoted"}
    )
    assert outcome == "promoted"
    deployment = client.get("/deployment").get_json()
    assert deployment["model_id"] == challenger["id"]
    assert deployment["history"][0]["by"] == "test"
    assert store.get_run(run["id"])["status"] == "completed"
    assert client.get(f"/schedules/{schedule['id']}").get_json()["active_run"] is None


def test_each_transition_of_a_run_holds_only_from_its_own_state(
    stack_settings: dict[str, Any],
) -> None:
    """The run's state machine (scheduling/lifecycle.py): a late, duplicate or foreign caller of
    any transition changes nothing. On a key prefix of its own, so no worker's recovery moves
    the run meanwhile."""
    from flight_delay import create_app

    own = create_app(
        {"TESTING": True, **stack_settings, "KEY_PREFIX": f"fdrun{uuid.uuid4().hex[:8]}"}
    )
    registry = own.extensions["model_registry"]
    store = schedule_store(own)
    life = store.lifecycle
    challenger = registry.create({}, "flights.csv")["id"]
    registry.update(challenger, status="completed")
    schedule = own.test_client().post("/schedules", json=GOOD, headers=admin()).get_json()
    run = store.get_run(store.start_now(schedule["id"], "test")["id"])
    # queued
    assert not life.fail_training(run, "late")
    assert not life.keep(run, "", {"decision": "kept"})
    assert life.promote(run, "", None, "test", {})[0] == "lost"
    assert life.start_training(run["id"], challenger)
    assert not life.start_training(run["id"], challenger)  # a second tick
    # training
    assert not life.reject_settings(run, "late")
    assert not life.keep(run, "", {"decision": "kept"})  # nobody evaluates it yet
    assert life.claim_evaluation(run, "first", 30.0, 2) == "claimed"
    # evaluating, held by "first"
    assert life.claim_evaluation(run, "second", 30.0, 2) == "leased"
    assert not life.fail_training(run, "late")
    assert not life.keep(run, "second", {"decision": "kept"})
    assert not life.fail_evaluation(run, "second", "not mine")
    assert life.promote(run, "second", None, "test", {})[0] == "lost"
    assert life.keep(run, "first", {"decision": "kept"})
    # completed: nothing moves it again, and the schedule is free for its next run
    assert not life.fail_evaluation(run, "first", "late")
    assert life.promote(run, "first", None, "test", {})[0] == "lost"
    assert life.claim_evaluation(run, "third", 30.0, 2) == "completed"
    done = store.get_run(run["id"])
    assert (done["status"], done["decision"]) == ("completed", "kept")
    assert "attempt" not in done and "error" not in done
    assert store.get(schedule["id"])["active_run"] == ""
    assert registry.deployed_id() is None


def test_deleting_a_schedule_keeps_its_models(
    client: FlaskClient, schedule: dict[str, Any], deployed: dict[str, Any]
) -> None:
    started = client.post(f"/schedules/{schedule['id']}/runs", headers=admin())
    run = finished_run(client, started.headers["Location"])
    assert client.delete(f"/schedules/{schedule['id']}", headers=admin(ADMIN)).status_code == 204
    assert client.get(f"/schedules/{schedule['id']}/runs/{run['id']}").status_code == 404
    assert client.get(f"/models/{run['challenger_id']}").status_code == 200


def test_a_run_that_ends_after_its_schedule_was_deleted_expires(
    app: Flask, schedule: dict[str, Any], train: Callable[..., dict[str, Any]]
) -> None:
    challenger = train(model_type="logistic_regression", features="minimal", refit=False)
    store, run = run_with_challenger(app, schedule, challenger["id"])
    store.delete(schedule["id"])
    assert store.lifecycle.fail_training(run, "ended late")
    key = f"{store.prefix}:schedule-run:{run['id']}"
    assert 0 < store.redis.ttl(key) <= 86400  # finishing kept the expiry the deletion set


def test_an_empty_change_is_refused(client: FlaskClient, schedule: dict[str, Any]) -> None:
    """A PATCH that changes nothing was accepted as a no-op (Schemathesis, issue 19, finding 12):
    it is a client's mistake, and the document says so (minProperties 1)."""
    response = client.patch(f"/schedules/{schedule['id']}", json={}, headers=admin())
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["errors"][0]["problem"] == "give at least one field to change"
    document = client.get("/openapi.json").get_json()
    assert document["components"]["schemas"]["SchedulePatch"]["minProperties"] == 1
