"""Bad input is a 400 (or 413) naming the field, never a 500 and never a job that fails later
(issue 7, findings 5, 6 and 10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from flight_delay import create_app
from tests.integration.conftest import admin
from tests.support.api import FLIGHT, error_of

pytestmark = pytest.mark.integration

Train = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def deployed(train_module: Train, stack_settings: dict[str, Any]) -> dict[str, Any]:
    record = train_module()
    app = create_app({"TESTING": True, **stack_settings})
    assert (
        app.test_client().put(f"/deploy?model-id={record['id']}", headers=admin()).status_code
        == 204
    )
    return record


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # accepted with 202 before, then "internal error" in the worker
        # NaN and Infinity are not JSON: refused by the parser, for the whole body ("")
        ({"params": {"learning_rate": float("nan")}}, ""),
        ({"params": {"learning_rate": float("inf")}}, ""),
        ({"split": "random", "seed": 2**32}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"time_cutoff": "2017-11-01T00:00:00+00:00"}, "time_cutoff"),
        ({"time_cutoff": "2017-11-01T00:00:00Z"}, "time_cutoff"),
        ({"time_cutoff": "1 " * 500_000}, "time_cutoff"),
        ({"time_cutoff": "next tuesday"}, "time_cutoff"),
        ({"time_cutoff": "3017-01-01"}, "time_cutoff"),
        ({"dataset": "http://exa mple.org/x.csv"}, "dataset"),
        ({"dataset": "http://example.org:port/x.csv"}, "dataset"),
        ({"params": {"num_leaves": [[[1]]]}}, "params.num_leaves"),
        ({"params": {"num_leaves": {"a": 1}}}, "params.num_leaves"),
        ({"test_size": 0.9}, "test_size"),
        # 500s before
        ({"dataset": "flights\x00.csv"}, "dataset"),
        ({"dataset": "a" * 300}, "dataset"),
        ({"dataset": "http://[::1"}, "dataset"),
    ],
)
def test_training_settings_are_checked_before_anything_is_queued(
    client: FlaskClient,
    redis_client: redis.Redis,
    stack_settings: dict[str, Any],
    body: dict[str, Any],
    field: str,
) -> None:
    before = redis_client.zcard(f"{stack_settings['KEY_PREFIX']}:models")
    response = client.post("/models", json={"dataset": "flights.csv", **body}, headers=admin())
    error = error_of(response)
    assert error["code"] == 400, error
    assert field in {e["field"] for e in error["errors"]}, error
    assert len(response.get_data()) < 2000  # the input is never echoed back whole
    assert redis_client.zcard(f"{stack_settings['KEY_PREFIX']}:models") == before


def test_json_nested_deeply_is_400(client: FlaskClient, deployed: dict[str, Any]) -> None:
    for depth in (100, 990, 5000):
        nested = "[" * depth + "]" * depth
        for path, body, headers in (
            ("/predict", f'{{"flights": [{{"OPERA": {nested}}}]}}', {}),
            ("/models", f'{{"dataset": "flights.csv", "params": {{"num_leaves": {nested}}}}}', admin()),
        ):  # fmt: skip
            response = client.post(
                path, data=body, content_type="application/json", headers=headers
            )
            assert error_of(response)["code"] == 400, (path, depth)


def test_nan_is_not_json(client: FlaskClient, deployed: dict[str, Any]) -> None:
    body = '{"dataset": "flights.csv", "params": {"learning_rate": NaN}}'
    response = client.post("/models", data=body, content_type="application/json", headers=admin())
    assert error_of(response)["code"] == 400
    assert "NaN is not JSON" in response.get_json()["message"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed(
    stack_settings: dict[str, Any], deployed: dict[str, Any]
) -> None:
    small = create_app({"TESTING": True, **stack_settings, "MAX_CONTENT_LENGTH": 10_000})
    response = small.test_client().post("/predict", json={"flights": [FLIGHT] * 200})
    error = error_of(response)
    assert error["code"] == 413
    assert error["errors"] == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1900-01-01 10:00:00", "outside the supported range"),
        ("2101-01-01 00:00:00", "outside the supported range"),
        ("9999-12-31 23:59:59", "outside the supported range"),
        ("0001-01-01 00:00:00", "outside the supported range"),
        ("٢٠١٧-٠١-٠١ ١٠:٠٠:٠٠", "unparsable date"),
        ("x" * 10_000, "unparsable date"),
    ],
)
def test_scheduled_dates_outside_the_calendar_are_400(
    client: FlaskClient, deployed: dict[str, Any], value: str, problem: str
) -> None:
    # anonymous: /predict is open by default, and was a 500 (holiday lookup IndexError)
    response = client.post("/predict", json={"flights": [{**FLIGHT, "Fecha-I": value}]})
    error = error_of(response)
    assert error["code"] == 400
    assert error["errors"][0]["field"] == "Fecha-I"
    assert problem in error["errors"][0]["problem"]
    assert len(response.get_data()) < 1000


def test_nested_flight_values_are_400(client: FlaskClient, deployed: dict[str, Any]) -> None:
    response = client.post("/predict", json={"flights": [{**FLIGHT, "OPERA": ["Grupo LATAM"]}]})
    assert error_of(response)["errors"][0]["field"] == "OPERA"


def test_unknown_query_parameters_are_400(client: FlaskClient, deployed: dict[str, Any]) -> None:
    for url in ("/models?statuss=completed", f"/models/{deployed['id']}?exprot=true"):
        error = error_of(client.get(url))
        assert error["code"] == 400, url
        assert error["errors"][0]["location"] == "query"


def test_a_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.put("/healthz")
    assert error_of(response)["code"] == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}
    response = client.delete("/predict")
    assert error_of(response)["code"] == 405
    assert "POST" in response.headers["Allow"]


def test_closed_reads_authorize_before_they_validate(
    stack_settings: dict[str, Any], deployed: dict[str, Any]
) -> None:
    closed = create_app(
        {"TESTING": True, **stack_settings, "READ_SCOPE": "read", "PREDICT_SCOPE": "predict"}
    ).test_client()
    assert error_of(closed.get("/models?status=bogus"))["code"] == 401
    assert error_of(closed.get(f"/models/{deployed['id']}?bogus=1"))["code"] == 401
    assert error_of(closed.post("/predict", json={"nonsense": 1}))["code"] == 401
    assert (
        error_of(closed.post("/predict", data="{", content_type="application/json"))["code"] == 401
    )
    assert error_of(closed.get(f"/models/{deployed['id']}/artifact"))["code"] == 401
    assert error_of(closed.get("/deployment"))["code"] == 401
