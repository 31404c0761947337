"""POST /predict with as_of, served by a live model: what the feed had seen by as_of, and only that.

The model is trained by the worker's own job function (run_job) on the stack's synthetic file;
departures go in through POST /departures, predictions come out of POST /predict.
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.devstack import free_port, start_redis, stop_processes
from flight_delay.features.live import (
    LEAD_FEATURE,
    Asked,
    Departures,
    minutes,
    point_in_time,
)
from flight_delay.ml.artifacts import load_model
from flight_delay.tasks.training import run_job
from tests.integration.conftest import admin
from tests.support.api import error_of

pytestmark = pytest.mark.integration

FLIGHT = {
    "Fecha-I": "2017-11-02 09:00:00",
    "Vlo-I": "11",
    "Des-I": "SCIE",
    "Emp-I": "LAN",
    "OPERA": "Grupo LATAM",
    "TIPOVUELO": "N",
}


def departed(scheduled: str, actual: str, **changes: Any) -> dict[str, Any]:
    return {
        "Fecha-I": scheduled,
        "Vlo-I": "200",
        "Des-I": "SCFA",
        "Emp-I": "LAN",
        "OPERA": "Grupo LATAM",
        "Fecha-O": actual,
        **changes,
    }


#: a morning of departures, all late; the last one leaves at 08:40, on the dot of one as_of
MORNING = [
    departed("2017-11-02 06:00:00", "2017-11-02 06:50:00", **{"Vlo-I": "201"}),
    departed("2017-11-02 06:30:00", "2017-11-02 07:25:00", **{"Vlo-I": "202", "Des-I": "SCIE"}),
    departed("2017-11-02 07:00:00", "2017-11-02 07:45:00", **{"Vlo-I": "11", "Des-I": "SCIE"}),
    departed("2017-11-02 08:00:00", "2017-11-02 08:40:00", **{"Vlo-I": "203", "Emp-I": "SKU"}),
]


def deployed(stack_settings: dict[str, Any], features: str) -> Flask:
    """An app of its own key prefix (nobody else's feed or deployment) serving a model that
    the worker's job function trained with ``features``."""
    settings = {**stack_settings, "KEY_PREFIX": f"live{uuid.uuid4().hex[:8]}"}
    app = create_app({"TESTING": True, **settings})
    registry = app.extensions["model_registry"]
    record = registry.create(
        {"features": features, "params": {"n_estimators": 60}, "cv_folds": 0}, "flights.csv"
    )
    assert run_job(app, record["id"]) == "completed"
    registry.deploy(record["id"])
    return app


@pytest.fixture(scope="module")
def live_app(stack_settings: dict[str, Any]) -> Flask:
    return deployed(stack_settings, "live")


@pytest.fixture
def client(live_app: Flask) -> FlaskClient:
    client = live_app.test_client()
    feed = live_app.extensions["departure_feed"]
    feed.clear()  # each test starts with an empty feed
    return client


def predict(client: FlaskClient, flights: list[dict[str, Any]], **body: Any) -> Any:
    return client.post("/predict", json={"flights": flights, **body})


def as_of_warnings(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The warnings about as_of (the synthetic model also warns of flight numbers it never saw)."""
    return [warning for warning in body["warnings"] if warning["field"] == "as_of"]


def served_model(live_app: Flask) -> Any:
    return live_app.extensions["deployed_model"].get().model


def test_the_answer_is_what_the_training_features_give_for_the_same_departures(
    client: FlaskClient, live_app: Flask
) -> None:
    assert client.post("/departures", json={"departures": MORNING}, headers=admin()).status_code
    answer = predict(client, [FLIGHT, {**FLIGHT, "Fecha-I": "2017-11-02 11:30:00"}],
                     as_of="2017-11-02 08:40:00")  # fmt: skip
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert [p["lead_minutes"] for p in body["predictions"]] == [20, 170]
    assert body["feed"] == {
        "as_of": "2017-11-02 08:40:00",
        "departures": 3,  # the 08:40 departure is not before as_of
        "newest_departure": "2017-11-02 07:45:00",
        "age_minutes": 55,
        "fresh": True,
    }
    assert as_of_warnings(body) == []
    # the same departures, built the way training builds them (from a history frame)
    history = pd.DataFrame(MORNING[:3])
    asked = Asked.build(
        minutes([FLIGHT["Fecha-I"], "2017-11-02 11:30:00"]),
        minutes(["2017-11-02 08:40:00"] * 2),
        ["LAN", "LAN"], ["SCIE", "SCIE"], ["11", "11"],
    )  # fmt: skip
    features = point_in_time(asked, Departures.from_frame(history)).to_dict("records")
    flights = [
        {**FLIGHT, **features[0], LEAD_FEATURE: 20.0},
        {**FLIGHT, "Fecha-I": "2017-11-02 11:30:00", **features[1], LEAD_FEATURE: 170.0},
    ]
    expected = served_model(live_app).predict_proba(flights)
    assert [p["delay_probability"] for p in body["predictions"]] == [
        round(float(p), 6) for p in expected
    ]


def test_a_departure_at_or_after_as_of_changes_nothing(client: FlaskClient) -> None:
    client.post("/departures", json={"departures": MORNING[:3]}, headers=admin())
    before = predict(client, [FLIGHT], as_of="2017-11-02 08:40:00").get_json()
    client.post("/departures", json={"departures": MORNING[3:]}, headers=admin())  # at 08:40
    client.post(
        "/departures",
        json={"departures": [departed("2017-11-02 08:30:00", "2017-11-02 08:55:00")]},
        headers=admin(),
    )
    after = predict(client, [FLIGHT], as_of="2017-11-02 08:40:00").get_json()
    assert after["predictions"] == before["predictions"]
    assert after["feed"]["departures"] == 3


def test_an_empty_or_stale_feed_predicts_with_nothing_observed_and_says_so(
    client: FlaskClient, live_app: Flask
) -> None:
    blind = float(served_model(live_app).predict_proba([FLIGHT])[0])
    empty = predict(client, [FLIGHT], as_of="2017-11-02 08:40:00").get_json()
    assert empty["predictions"][0]["lead_minutes"] is None
    assert empty["predictions"][0]["delay_probability"] == round(blind, 6)
    assert empty["feed"]["fresh"] is False and empty["feed"]["departures"] == 0
    assert [(w["index"], w["field"]) for w in as_of_warnings(empty)] == [(0, "as_of")]
    assert "holds nothing before as_of" in as_of_warnings(empty)[0]["problem"]

    client.post("/departures", json={"departures": MORNING[:1]}, headers=admin())  # at 06:50
    later = {**FLIGHT, "Fecha-I": "2017-11-02 11:00:00"}
    stale = predict(client, [later], as_of="2017-11-02 10:55:00").get_json()  # 245 min after
    assert stale["feed"]["age_minutes"] == 245 and stale["feed"]["fresh"] is False
    assert stale["predictions"][0]["lead_minutes"] is None
    blind_later = float(served_model(live_app).predict_proba([later])[0])
    assert stale["predictions"][0]["delay_probability"] == round(blind_later, 6)
    assert "245 minutes before as_of" in as_of_warnings(stale)[0]["problem"]


def test_a_flight_asked_beyond_the_longest_lead_time_is_predicted_with_nothing_observed(
    client: FlaskClient, live_app: Flask
) -> None:
    client.post("/departures", json={"departures": MORNING}, headers=admin())
    far = {**FLIGHT, "Fecha-I": "2017-11-02 22:00:00"}  # 13 h 20 min after as_of
    body = predict(client, [FLIGHT, far], as_of="2017-11-02 08:40:00").get_json()
    assert [p["lead_minutes"] for p in body["predictions"]] == [20, None]
    assert [(w["index"], w["field"]) for w in as_of_warnings(body)] == [(1, "as_of")]
    assert "800 minutes ahead" in as_of_warnings(body)[0]["problem"]
    assert "(180)" in as_of_warnings(body)[0]["problem"]
    blind = float(served_model(live_app).predict_proba([far])[0])
    assert body["predictions"][1]["delay_probability"] == round(blind, 6)


def test_bad_as_of_and_computed_fields_are_a_400_naming_them(client: FlaskClient) -> None:
    late = predict(client, [FLIGHT, {**FLIGHT, "Fecha-I": "2017-11-02 08:00:00"}],
                   as_of="2017-11-02 08:40:00")  # fmt: skip
    assert late.status_code == 400
    issues = error_of(late)["errors"]
    assert [(i["index"], i["field"]) for i in issues] == [(1, "Fecha-I")]
    assert "before as_of" in issues[0]["problem"]
    for as_of, problem in (
        ("2017-11-02T08:40:00Z", "without a UTC offset"),
        ("yesterday", ""),
        (20171102, "as text"),
    ):
        refused = predict(client, [FLIGHT], as_of=as_of)
        assert refused.status_code in (400, 422), refused.get_json()
        errors = error_of(refused)["errors"]
        assert "as_of" in str(errors) and problem in str(errors), errors
    injected = predict(client, [{**FLIGHT, LEAD_FEATURE: 30}], as_of="2017-11-02 08:40:00")
    assert injected.status_code == 400
    issues = error_of(injected)["errors"]
    assert [(i["index"], i["field"]) for i in issues] == [(0, LEAD_FEATURE)]
    # without as_of too: what the service computes is never taken from a caller
    assert predict(client, [{**FLIGHT, "live_all_3h_n": 0}]).status_code == 400


def test_without_as_of_a_live_model_asks_at_the_airports_now(client: FlaskClient) -> None:
    """A 2017 flight is in the past of today's clock: a 400 says so, naming the flight."""
    answer = predict(client, [FLIGHT])
    assert answer.status_code == 400
    assert "before as_of" in error_of(answer)["errors"][0]["problem"]


def test_a_schedule_model_ignores_as_of_and_says_so(stack_settings: dict[str, Any]) -> None:
    client = deployed(stack_settings, "schedule").test_client()
    plain = predict(client, [FLIGHT]).get_json()
    asked = predict(client, [FLIGHT], as_of="2017-11-02 08:40:00").get_json()
    assert asked["predictions"] == plain["predictions"]
    assert "feed" not in asked and "lead_minutes" not in asked["predictions"][0]
    assert [(w["index"], w["field"]) for w in as_of_warnings(asked)] == [(0, "as_of")]
    assert "uses no live departures" in as_of_warnings(asked)[0]["problem"]


def test_the_model_file_knows_its_lead_times(live_app: Flask) -> None:
    model = served_model(live_app)
    assert model.metadata["evaluation"]["lead_times"] == ["30", "60", "120", "180", "none"]
    reloaded = load_model(
        live_app.config["MODEL_DIR"] + "/" + model.metadata["model_id"], compiled_trees=False
    )
    assert reloaded.features.feature_set == "live"


def test_each_new_batch_is_seen_by_the_next_prediction(
    client: FlaskClient, live_app: Flask
) -> None:
    """Each process keeps the feed indexed; a batch that changes it (or a reset) is read at the
    next request, by every process (the version lives in Redis)."""
    asked = {"flights": [FLIGHT], "as_of": "2017-11-02 08:40:00"}
    client.post("/departures", json={"departures": MORNING[:2]}, headers=admin())
    assert client.post("/predict", json=asked).get_json()["feed"]["departures"] == 2
    other = create_app({"TESTING": True, **live_app.config}).test_client()  # another process
    assert other.post("/predict", json=asked).get_json()["feed"]["departures"] == 2
    client.post("/departures", json={"departures": MORNING[2:3]}, headers=admin())
    assert other.post("/predict", json=asked).get_json()["feed"]["departures"] == 3
    assert client.post("/predict", json=asked).get_json()["feed"]["departures"] == 3
    # the same batch again changes nothing, and is not read again
    feed = live_app.extensions["departure_feed"]
    version = feed.version()
    client.post("/departures", json={"departures": MORNING[2:3]}, headers=admin())
    assert feed.version() == version
    feed.clear()
    assert client.post("/predict", json=asked).get_json()["feed"]["departures"] == 0


def test_a_feed_redis_cannot_read_is_a_feed_with_nothing_not_an_error(
    stack_settings: dict[str, Any],
) -> None:
    """Predictions never wait on Redis: with Redis gone, a live model answers every flight
    with nothing observed and says why."""
    port = free_port()
    server = start_redis(port, data_dir=None)
    try:
        app = deployed({**stack_settings, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}, "live")
        client = app.test_client()
        client.post("/departures", json={"departures": MORNING}, headers=admin())
        seen = predict(client, [FLIGHT], as_of="2017-11-02 08:40:00").get_json()
        assert seen["predictions"][0]["lead_minutes"] == 20
    finally:
        stop_processes([server])
    blind = predict(client, [FLIGHT], as_of="2017-11-02 08:40:00")
    assert blind.status_code == 200, blind.get_json()
    body = blind.get_json()
    assert body["predictions"][0]["lead_minutes"] is None
    assert body["feed"]["fresh"] is False and body["feed"]["departures"] == 0
    assert "could not be read (ConnectionError)" in as_of_warnings(body)[0]["problem"]
    expected = float(served_model(app).predict_proba([FLIGHT])[0])
    assert body["predictions"][0]["delay_probability"] == round(expected, 6)
