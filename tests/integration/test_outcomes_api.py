"""Outcomes and live performance (issue 11): actual departures attached to logged flights, and a
model's metrics from them; a real Redis, a real worker, the log writer run in process. The last
test trains on the real file before November through the API and reproduces the offline
holdout metrics of November-December from posted outcomes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from flight_delay.features.live import minutes
from flight_delay.ml.evaluation import expected_calibration_error
from tests.integration.conftest import READER, admin, wait_for
from tests.support.prediction_log import write_log

pytestmark = pytest.mark.integration


def live_performance(
    client: FlaskClient, model_id: str, query: str = "", timeout: float = 120
) -> dict[str, Any]:
    """GET /models/{id}/performance until the worker has computed it (202 until then)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/models/{model_id}/performance?{query}")
        if response.status_code != 202:
            assert response.status_code == 200, response.get_json()
            body: dict[str, Any] = response.get_json()
            return body
        assert response.headers["Retry-After"] == "2"
        assert time.monotonic() < deadline, "the live performance was not computed in time"
        time.sleep(0.2)


def flight(number: int, day: int, hour: int = 9) -> dict[str, Any]:
    return {"Fecha-I": f"2017-11-{day:02d} {hour:02d}:00:00", "Vlo-I": str(number),
            "Des-I": "SCIE", "Emp-I": "LAN", "OPERA": "Grupo LATAM", "TIPOVUELO": "N"}  # fmt: skip


@pytest.fixture
def deployed(client: FlaskClient, train: Callable[..., dict[str, Any]]) -> str:
    record = train()
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    return str(record["id"])


def test_outcomes_by_request_and_by_schedule_give_live_performance(
    app: Flask, client: FlaskClient, deployed: str, stack_settings: dict[str, Any]
) -> None:
    # six flights over two ISO weeks (Mon 6 Nov and Mon 13 Nov 2017)
    flights = [flight(900 + i, day, hour) for i, (day, hour) in
               enumerate([(6, 7), (7, 12), (8, 20), (13, 7), (14, 12), (15, 20)])]  # fmt: skip
    answer = client.post("/predict", json={"flights": flights}).get_json()
    request_id = answer["request_id"]
    write_log(app, stack_settings)
    delays = [0, 40, 5, 90, 16, 15]  # minutes: delayed beyond 15 only
    departures = [
        (datetime.fromisoformat(f["Fecha-I"]) + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S")
        for f, m in zip(flights, delays, strict=True)
    ]
    outcomes: list[dict[str, Any]] = [
        {"request_id": request_id, "index": i, "Fecha-O": departures[i]} for i in range(3)
    ] + [
        # by schedule: Vlo-I as a number matches the "903" that was sent; Fecha-I as ISO with T
        {
            "Fecha-I": flights[i]["Fecha-I"].replace(" ", "T"),
            "Vlo-I": int(flights[i]["Vlo-I"]),
            "Des-I": "SCIE",
            "Fecha-O": departures[i],
        }
        for i in range(3, 6)
    ]
    outcomes.append({"request_id": "f" * 32, "index": 0, "Fecha-O": "2017-11-06 07:00:00"})
    # an empty flight number names no flight (not "every flight without one")
    outcomes.append({"Fecha-I": flights[0]["Fecha-I"], "Vlo-I": "", "Des-I": "SCIE",
                     "Fecha-O": departures[0]})  # fmt: skip
    posted = client.post("/outcomes", json={"outcomes": outcomes}, headers=admin())
    assert posted.status_code == 200, posted.get_json()
    # the three named by request id are departures of known flights (their Emp-I is logged)
    assert posted.get_json() == {
        "matched": 6, "flights_updated": 6, "unmatched": [6, 7], "departures": 3,
    }  # fmt: skip

    logged = client.get(f"/predictions/{request_id}").get_json()["flights"]
    assert [f["delay_minutes"] for f in logged] == delays
    assert logged[1]["departed_at"] == departures[1]

    body = live_performance(client, deployed)
    probabilities = np.array([f["delay_probability"] for f in logged])
    labels = np.array([int(m > 15) for m in delays])
    assert body["flights"] == 6
    assert body["delay_rate"] == pytest.approx(3 / 6)
    assert body["roc_auc"] == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-12)
    assert body["pr_auc"] == pytest.approx(
        average_precision_score(labels, probabilities), abs=1e-12
    )
    assert body["brier"] == pytest.approx(brier_score_loss(labels, probabilities), abs=1e-12)
    assert body["ece"] == pytest.approx(expected_calibration_error(labels, probabilities))
    assert [(w["week"], w["from"], w["flights"]) for w in body["weeks"]] == [
        ("2017-W45", "2017-11-06", 3),
        ("2017-W46", "2017-11-13", 3),
    ]
    assert body["weeks"][0]["delay_rate"] == pytest.approx(1 / 3)

    window = live_performance(
        client, deployed, "since=2017-11-13T00:00:00&until=2017-11-15T00:00:00"
    )
    assert window["flights"] == 2 and window["delay_rate"] == 1.0
    assert window["roc_auc"] is None  # one class only: undefined, not invented

    # an outcome sent again replaces the first
    again = {"request_id": request_id, "index": 0, "Fecha-O": "2017-11-06 08:00:00"}
    assert client.post("/outcomes", json={"outcomes": [again]}, headers=admin()).status_code == 200
    assert client.get(f"/predictions/{request_id}").get_json()["flights"][0]["delay_minutes"] == 60


def test_outcomes_are_departures_of_the_live_feed_too(
    app: Flask, client: FlaskClient, deployed: str, stack_settings: dict[str, Any]
) -> None:
    feed = app.extensions["departure_feed"]
    feed.clear()
    flights = [flight(950 + i, 20, 8 + i) for i in range(2)]
    request_id = client.post("/predict", json={"flights": flights}).get_json()["request_id"]
    write_log(app, stack_settings)
    outcomes: list[dict[str, Any]] = [
        {"request_id": request_id, "index": 0, "Fecha-O": "2017-11-20 08:25:00"},
        # by schedule with its airline code: a departure whether or not anyone predicted it
        {"Fecha-I": "2017-11-20 10:00:00", "Vlo-I": "77", "Des-I": "SCFA", "Emp-I": "SKU",
         "OPERA": "Sky Airline", "Fecha-O": "2017-11-20 10:05:00"},
        # without Emp-I it names the flight for live metrics only
        {"Fecha-I": "2017-11-20 11:00:00", "Vlo-I": "78", "Des-I": "SCFA",
         "Fecha-O": "2017-11-20 11:05:00"},
        # seven hours before its schedule: an outcome still, but not a departure the feed keeps
        {"request_id": request_id, "index": 1, "Fecha-O": "2017-11-20 02:00:00"},
    ]  # fmt: skip
    posted = client.post("/outcomes", json={"outcomes": outcomes}, headers=admin())
    assert posted.status_code == 200, posted.get_json()
    assert posted.get_json()["departures"] == 2
    events = sorted(feed.before(int(minutes(["2017-11-21 00:00:00"])[0])).flight)
    assert events == ["LAN/950", "SKU/77"]
    assert client.get("/departures").get_json()["newest"] == "2017-11-20 10:05:00"
    # sent again: the same two departures, replaced, not doubled
    assert client.post("/outcomes", json={"outcomes": outcomes}, headers=admin()).status_code == 200
    assert client.get("/departures").get_json()["size"] == 2
    refused = client.post(
        "/outcomes",
        json={"outcomes": [{**outcomes[0], "Emp-I": "SKU"}]},
        headers=admin(),
    )
    assert refused.status_code == 400
    assert "outcomes.0.Emp-I" in [error["field"] for error in refused.get_json()["errors"]]


def test_recording_outcomes_needs_the_outcomes_scope(client: FlaskClient) -> None:
    body = {"outcomes": [{"request_id": "a" * 32, "index": 0, "Fecha-O": "2017-11-06 07:00:00"}]}
    assert client.post("/outcomes", json=body).status_code == 401
    assert client.post("/outcomes", json=body, headers=admin(READER)).status_code == 403
    assert client.post("/outcomes", json=body, headers=admin()).status_code == 200


@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        ({"request_id": "a" * 32, "index": 0}, "outcomes.0.Fecha-O"),
        ({"request_id": "a" * 32, "Fecha-O": "2017-11-06 07:00:00"}, "outcomes.0.index"),
        ({"index": 0, "Fecha-O": "2017-11-06 07:00:00"}, "outcomes.0.request_id"),
        (
            {"Fecha-I": "2017-11-06 07:00:00", "Vlo-I": "1", "Fecha-O": "2017-11-06 07:00:00"},
            "outcomes.0.Des-I",
        ),
        (
            {"request_id": "a" * 32, "index": 0, "Des-I": "SCIE", "Fecha-O": "2017-11-06 07:00:00"},
            "outcomes.0.Des-I",
        ),
        ({"request_id": "a" * 32, "index": 0, "Fecha-O": "yesterday"}, "outcomes.0.Fecha-O"),
        (
            {"request_id": "a" * 32, "index": -1, "Fecha-O": "2017-11-06 07:00:00"},
            "outcomes.0.index",
        ),
        (
            {"request_id": "a" * 32, "index": 0, "Fecha-O": "2017-11-06 07:00:00", "x": 1},
            "outcomes.0.x",
        ),
        (
            {
                "Fecha-I": "2017-11-06 07:00:00",
                "Vlo-I": [1],
                "Des-I": "SCIE",
                "Fecha-O": "2017-11-06 07:00:00",
            },
            "outcomes.0.Vlo-I",
        ),
    ],
)
def test_a_bad_outcome_is_a_400_naming_its_field(
    client: FlaskClient, outcome: dict[str, Any], field: str
) -> None:
    response = client.post("/outcomes", json={"outcomes": [outcome]}, headers=admin())
    assert response.status_code == 400, response.get_json()
    assert field in [error["field"] for error in response.get_json()["errors"]]


def test_outcome_lists_are_bounded_and_performance_needs_a_known_model(
    client: FlaskClient,
) -> None:
    one = {"request_id": "a" * 32, "index": 0, "Fecha-O": "2017-11-06 07:00:00"}
    assert client.post("/outcomes", json={"outcomes": []}, headers=admin()).status_code == 400
    too_many = {"outcomes": [one] * 10_001}
    assert client.post("/outcomes", json=too_many, headers=admin()).status_code == 400
    unknown = client.get("/models/3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10/performance")
    assert unknown.status_code == 404
    assert client.get("/models/not-a-uuid/performance").status_code == 404
    assert client.get(f"/models/{'3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10'}/performance?since=soon")\
        .status_code in (400, 404)  # fmt: skip


@pytest.mark.realdata
def test_outcomes_of_november_and_december_reproduce_the_holdout_metrics(
    app: Flask,
    client: FlaskClient,
    stack_settings: dict[str, Any],
    real_dataset: Path,
) -> None:
    """Issue 11: a model trained through the API on the flights before November (time
    protocol, no refit: the deployed model is the one the holdout measured) predicts every
    November-December flight through /predict; their departures posted as outcomes give the
    offline holdout metrics to 1e-6."""
    import pandas as pd

    from flight_delay.data import load_flights, schema

    link = Path(stack_settings["DATA_ROOT"]) / "dataset_SCL.csv"
    if not link.exists():
        link.symlink_to(real_dataset.resolve())
    response = client.post(
        "/models",
        json={
            "dataset": "dataset_SCL.csv",
            "time_cutoff": "2017-11-01",
            "refit": False,
            "cv_folds": 0,
        },
        headers=admin(),
    )
    assert response.status_code == 202, response.get_json()
    record = wait_for(client, response.get_json()["id"], lambda r: r["status"] != "pending"
                      and r["status"] != "running", timeout=600)  # fmt: skip
    assert record["status"] == "completed", record
    model_id = record["id"]
    assert client.put(f"/deploy?model-id={model_id}", headers=admin()).status_code == 204

    frame = load_flights(real_dataset).frame
    later = frame[frame[schema.SCHEDULED_AT] >= pd.Timestamp("2017-11-01")]
    columns = ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO"]  # what a client knows
    sent = (
        later[columns]
        .assign(**{"Fecha-I": later["Fecha-I"].dt.strftime(schema.DATETIME_FORMAT)})
        .to_dict("records")
    )
    departed = later["Fecha-O"].dt.strftime(schema.DATETIME_FORMAT).tolist()
    outcomes = []
    for start in range(0, len(sent), 10_000):
        answer = client.post("/predict", json={"flights": sent[start : start + 10_000]})
        assert answer.status_code == 200, answer.get_json()
        request_id = answer.get_json()["request_id"]
        outcomes += [
            {"request_id": request_id, "index": i, "Fecha-O": when}
            for i, when in enumerate(departed[start : start + 10_000])
        ]
    write_log(app, stack_settings)
    for start in range(0, len(outcomes), 10_000):
        posted = client.post(
            "/outcomes", json={"outcomes": outcomes[start : start + 10_000]}, headers=admin()
        )
        assert posted.status_code == 200 and posted.get_json()["unmatched"] == []

    live = live_performance(client, model_id, timeout=300)
    holdout = record["metrics"]["holdout"]
    assert live["flights"] == holdout["rows"] == len(sent) == 12_438
    for live_name, offline_name in (("roc_auc", "roc_auc"), ("pr_auc", "pr_auc"),
                                    ("brier", "brier"), ("ece", "ece"),
                                    ("delay_rate", "base_rate")):  # fmt: skip
        assert math.isclose(live[live_name], holdout[offline_name], abs_tol=1e-6), (
            live_name,
            live[live_name],
            holdout[offline_name],
        )
    print(
        "live vs holdout:",
        {name: (live[name], holdout[name]) for name in ("roc_auc", "pr_auc", "brier", "ece")},
    )


# -- each scheduled flight once (issue 19, finding 6) and reports off the web process (finding 5) --
def test_each_flight_counts_once_per_model_however_often_anyone_predicted_it(
    app: Flask, client: FlaskClient, deployed: str, stack_settings: dict[str, Any]
) -> None:
    """200 flights, each predicted 50 times by anonymous callers with another airline, and once
    by a caller with a key: outcomes label 200 flights (not 10,000 copies), live performance
    counts 200, and what a schedule run re-predicts is the keyed copy of each, once. Before,
    every copy was labelled and counted: anonymous traffic decided a promotion."""
    keyed_flights = [flight(5000 + i, 20 + i % 5, 8 + i % 12) for i in range(200)]
    anonymous = [{**f, "OPERA": "Sky Airline", "Emp-I": "SKU"} for f in keyed_flights]
    for _ in range(5):  # 50 copies of each: 10,000 flights in 5 anonymous requests
        copies = [f for f in anonymous for _ in range(10)]
        assert client.post("/predict", json={"flights": copies}).status_code == 200
    answer = client.post("/predict", json={"flights": keyed_flights}, headers=admin(READER))
    assert answer.status_code == 200
    keyed_probabilities = [p["delay_probability"] for p in answer.get_json()["predictions"]]
    for _ in range(2):  # anonymous copies logged after the keyed one do not replace it either
        assert client.post("/predict", json={"flights": anonymous}).status_code == 200
    write_log(app, stack_settings)

    delays = [60 if i % 3 == 0 else 0 for i in range(200)]
    outcomes = [
        {
            "Fecha-I": f["Fecha-I"],
            "Vlo-I": f["Vlo-I"],
            "Des-I": f["Des-I"],
            "Fecha-O": (datetime.fromisoformat(f["Fecha-I"]) + timedelta(minutes=m)).isoformat(),
        }
        for f, m in zip(keyed_flights, delays, strict=True)
    ]
    started = time.monotonic()
    posted = client.post("/outcomes", json={"outcomes": outcomes}, headers=admin())
    seconds = time.monotonic() - started
    assert posted.status_code == 200
    # by schedule without Emp-I: outcomes for the log, no departures for the feed
    assert posted.get_json() == {
        "matched": 200, "flights_updated": 200, "unmatched": [], "departures": 0,
    }  # fmt: skip

    live = live_performance(client, deployed, "since=2017-11-20T00:00:00&until=2017-11-25T00:00:00")
    assert live["flights"] == 200
    # the answers' probabilities are rounded to 6 decimals; the log keeps them whole
    assert live["mean_predicted"] == pytest.approx(np.mean(keyed_probabilities), abs=1e-6)
    assert live["roc_auc"] == pytest.approx(
        roc_auc_score([int(m > 15) for m in delays], keyed_probabilities), abs=0.01
    )
    logged = app.extensions["prediction_log"].store.flights_with_outcomes()
    numbers = {f["Vlo-I"] for f in keyed_flights}
    ours = [f for f, _ in logged if f.get("Vlo-I") in numbers and f.get("Des-I") == "SCIE"
            and f.get("Fecha-I", "") >= "2017-11-20"]  # fmt: skip
    assert len(ours) == 200
    assert {f["OPERA"] for f in ours} == {"Grupo LATAM"}  # the keyed copy of each
    print(f"\n200 outcomes over 12,200 logged copies recorded in {seconds:.2f} s")


def test_live_performance_is_computed_by_a_worker_cached_and_made_again_after_new_outcomes(
    app: Flask, client: FlaskClient, deployed: str, stack_settings: dict[str, Any]
) -> None:
    """A web process never scores logged flights: the first request is a 202 while a worker
    computes it; the same request is then answered from the cache; new outcomes make a new one.
    Before, each request scored every labelled flight in the web process (3 s at 540k rows)."""
    flights = [flight(7000 + i, 6, 7 + i) for i in range(6)]
    answer = client.post("/predict", json={"flights": flights}).get_json()
    write_log(app, stack_settings)
    outcomes = [
        {"request_id": answer["request_id"], "index": i, "Fecha-O": f["Fecha-I"]}
        for i, f in enumerate(flights)
    ]
    assert client.post("/outcomes", json={"outcomes": outcomes}, headers=admin()).status_code == 200
    query = "since=2017-11-06T00:00:00&until=2017-11-07T00:00:00"
    first = client.get(f"/models/{deployed}/performance?{query}")
    assert first.status_code == 202 and first.headers["Retry-After"] == "2"
    computed = live_performance(client, deployed, query)
    assert computed["flights"] == 6 and computed["delay_rate"] == 0.0
    assert client.get(f"/models/{deployed}/performance?{query}").get_json() == computed
    late = [{**outcome, "Fecha-O": "2017-11-06 23:59:00"} for outcome in outcomes[:3]]
    assert client.post("/outcomes", json={"outcomes": late}, headers=admin()).status_code == 200
    assert client.get(f"/models/{deployed}/performance?{query}").status_code == 202
    again = live_performance(client, deployed, query)
    assert again["flights"] == 6 and again["delay_rate"] == 0.5
    page = client.get(f"/ui/models/{deployed}").get_data(as_text=True)
    assert "Live performance" in page


def test_a_performance_window_with_an_offset_is_read_as_local_time(
    client: FlaskClient, deployed: str
) -> None:
    """`until=2000-01-01T00:00:00Z` was a 400 although the document allows any date-time
    (Schemathesis): the offset is dropped, as Fecha-I's is."""
    with_offset = client.get(f"/models/{deployed}/performance?until=2017-11-07T00:00:00Z")
    without = client.get(f"/models/{deployed}/performance?until=2017-11-07T00:00:00")
    assert with_offset.status_code in (200, 202) and without.status_code in (200, 202)
