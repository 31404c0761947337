"""POST /departures and GET /departures: who may write, what is refused and why, what is kept."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from flight_delay import create_app
from tests.support.api import error_of

pytestmark = pytest.mark.integration

FEED = "feed-key-for-tests"
OUTCOMES = "outcomes-key-for-tests"
READER = "reader-key-for-tests"
ADMIN = "admin-key-for-tests"


@pytest.fixture
def client(stack_settings: dict[str, Any]) -> FlaskClient:
    keys = f"{FEED}=departures;{OUTCOMES}=outcomes;{READER}=predict,read;{ADMIN}=admin"
    settings = {**stack_settings, "API_KEYS": keys, "KEY_PREFIX": f"dep{uuid.uuid4().hex[:8]}"}
    return create_app({"TESTING": True, **settings}).test_client()


def departure(**changes: Any) -> dict[str, Any]:
    return {
        "Fecha-I": "2017-11-02 07:00:00",
        "Vlo-I": "11",
        "Des-I": "SCIE",
        "Emp-I": "LAN",
        "OPERA": "Grupo LATAM",
        "Fecha-O": "2017-11-02 07:20:00",
        **changes,
    }


def post(client: FlaskClient, departures: list[dict[str, Any]], key: str | None = FEED) -> Any:
    headers = {"X-api-key": key} if key else {}
    return client.post("/departures", json={"departures": departures}, headers=headers)


def test_only_a_departures_outcomes_or_admin_key_writes(client: FlaskClient) -> None:
    assert post(client, [departure()], key=None).status_code == 401
    assert post(client, [departure()], key="not-a-key").status_code == 401
    refused = post(client, [departure()], key=READER)
    assert refused.status_code == 403
    assert "'departures' or 'outcomes'" in error_of(refused)["message"]
    assert client.get("/departures").get_json()["size"] == 0  # nothing was written
    for key in (FEED, OUTCOMES, ADMIN):
        assert post(client, [departure(**{"Vlo-I": key[:5]})], key=key).status_code == 200


def test_a_batch_is_kept_and_counted(client: FlaskClient) -> None:
    answer = post(
        client,
        [
            departure(),
            departure(**{"Vlo-I": 12, "Fecha-I": "2017-11-02T07:30", "Emp-I": "lan"}),
            departure(),  # the same flight twice in one batch: once in the feed
        ],
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {
        "stored": 2,
        "replaced": 0,
        "unchanged": 1,
        "too_old": 0,
        "evicted": 0,
        "size": 2,
        "newest": "2017-11-02 07:20:00",
    }
    corrected = post(client, [departure(**{"Fecha-O": "2017-11-02 07:45:00"})])
    assert corrected.get_json()["replaced"] == 1
    assert client.get("/departures").get_json() == {
        "size": 2,
        "oldest": "2017-11-02 07:20:00",
        "newest": "2017-11-02 07:45:00",
    }


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"Fecha-O": "2017-10-30 07:00:00"}, "Fecha-O", "72.0 h before Fecha-I"),
        ({"Fecha-O": "2017-11-05 07:00:00"}, "Fecha-O", "72.0 h after Fecha-I: at most 48 h"),
        ({"Fecha-O": "yesterday"}, "Fecha-O", ""),
        ({"Fecha-I": "2017-11-02 25:00:00"}, "Fecha-I", ""),
        ({"Emp-I": ""}, "Emp-I", "1-40 characters"),
        ({"Vlo-I": {"n": 1}}, "Vlo-I", "one finite number"),
        ({"Des-I": None}, "Des-I", ""),
        ({"unknown": 1}, "unknown", "Unknown field"),
    ],
)
def test_a_bad_departure_is_a_400_naming_the_field(
    client: FlaskClient, changes: dict[str, Any], field: str, problem: str
) -> None:
    good = departure(**{"Vlo-I": "99"})
    answer = post(client, [good, departure(**changes)])
    assert answer.status_code == 400, answer.get_json()
    body = error_of(answer)
    assert field in body["message"] and problem in body["message"], body
    assert client.get("/departures").get_json()["size"] == 0  # the good one was not kept either


def test_a_missing_field_and_an_oversized_batch_are_refused(client: FlaskClient) -> None:
    incomplete = departure()
    del incomplete["Emp-I"]
    answer = post(client, [incomplete])
    assert answer.status_code == 400
    assert "Emp-I" in error_of(answer)["message"]
    too_many = post(client, [departure(**{"Vlo-I": str(i)}) for i in range(10_001)])
    assert too_many.status_code in (400, 413)
    assert client.get("/departures").get_json()["size"] == 0


def test_the_operations_are_in_the_openapi_document(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    operations = document["paths"]["/departures"]
    assert operations["post"]["operationId"] == "recordDepartures"
    assert operations["get"]["operationId"] == "getDepartureFeed"
    assert {"200", "400", "401", "403", "503"} <= set(operations["post"]["responses"])


def test_a_departure_that_has_not_happened_yet_is_refused_and_evicts_nothing(
    client: FlaskClient,
) -> None:
    """A year typed wrong (2099) would make the feed's newest departure the future and evict
    every real one: a departure after the airport's clock is a 400, and nothing of its batch is
    kept."""
    assert post(client, [departure()]).status_code == 200
    typo = departure(**{"Vlo-I": "12", "Fecha-I": "2099-11-02 07:00:00",
                        "Fecha-O": "2099-11-02 07:20:00"})  # fmt: skip
    refused = post(client, [departure(**{"Vlo-I": "13"}), typo])
    assert refused.status_code == 400, refused.get_json()
    error = error_of(refused)
    assert [e["field"] for e in error["errors"]] == ["departures.1.Fecha-O"]
    assert "after the airport's clock now" in error["errors"][0]["problem"]
    feed = client.get("/departures").get_json()
    assert feed["size"] == 1 and feed["newest"] == "2017-11-02 07:20:00"
    # a clock a few minutes fast is not refused
    soon = (datetime.now(ZoneInfo("America/Santiago")) + timedelta(minutes=5)).replace(tzinfo=None)
    fast = departure(**{"Vlo-I": "14", "Fecha-I": f"{soon - timedelta(minutes=20):%Y-%m-%d %H:%M:%S}",
                        "Fecha-O": f"{soon:%Y-%m-%d %H:%M:%S}"})  # fmt: skip
    assert post(client, [fast]).status_code == 200
