"""GET /models in pages, GET /deployment read in one transaction, PUT /deploy loading the model
once, and a domain error that declares no status answering 500 (not blaming the caller)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.api.errors import handle_domain_error
from flight_delay.errors import FlightDelayError
from flight_delay.ml import artifacts
from flight_delay.registry import DeploymentMoved, ModelNotFound, ModelNotReady, ModelRegistry
from tests.integration.conftest import admin

pytestmark = pytest.mark.integration


@pytest.fixture
def own_prefix(stack_settings: dict[str, Any], worker: Any) -> Flask:
    """An app on a key prefix of its own: the listing holds only this test's models."""
    return create_app(
        {"TESTING": True, **stack_settings, "KEY_PREFIX": f"fdlist{uuid.uuid4().hex[:8]}"}
    )


def test_models_are_listed_in_pages_newest_first(own_prefix: Flask) -> None:
    registry: ModelRegistry = own_prefix.extensions["model_registry"]
    made = [registry.create({}, "flights.csv")["id"] for _ in range(5)]
    registry.update(made[1], status="completed")
    client = own_prefix.test_client()
    first = client.get("/models?limit=2")
    assert first.status_code == 200
    assert [m["id"] for m in first.get_json()] == made[::-1][:2]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"') and f"after={made[3]}" in link
    following = link[1 : link.index(">")]
    second = client.get(following)
    assert [m["id"] for m in second.get_json()] == [made[2], made[1]]
    last = client.get(second.headers["Link"][1 : second.headers["Link"].index(">")])
    assert [m["id"] for m in last.get_json()] == [made[0]]
    assert "Link" not in last.headers
    # the default page holds every one of them, and a filter pages over matches only
    assert [m["id"] for m in client.get("/models").get_json()] == made[::-1]
    assert [m["id"] for m in client.get("/models?status=completed&limit=1").get_json()] == [made[1]]
    assert "Link" not in client.get("/models?status=completed&limit=1").headers
    # hostile or stale paging is a 4xx naming the field
    for query, status, field in (
        ("limit=0", 400, "limit"),
        ("limit=1001", 400, "limit"),
        ("after=not-a-uuid", 400, "after"),
        (f"after={uuid.uuid4()}", 404, "model_id"),
    ):
        answer = client.get(f"/models?{query}")
        assert answer.status_code == status, (query, answer.get_json())
        assert any(e["field"] == field for e in answer.get_json()["errors"]), answer.get_json()


def test_the_deployment_is_never_read_torn(own_prefix: Flask) -> None:
    """Deploys race the reads: every answer's pointer is its history's newest event."""
    registry: ModelRegistry = own_prefix.extensions["model_registry"]
    ids = []
    for _ in range(2):
        model_id = registry.create({}, "flights.csv")["id"]
        registry.update(model_id, status="completed")
        ids.append(model_id)
    registry.deploy(ids[0])
    client = own_prefix.test_client()
    stop = threading.Event()

    def deploy_forever() -> None:
        while not stop.is_set():
            for model_id in ids:
                registry.deploy(model_id)

    deployer = threading.Thread(target=deploy_forever)
    deployer.start()
    try:
        for _ in range(300):
            shown = client.get("/deployment").get_json()
            newest = shown["history"][0]
            assert (newest["model_id"], newest["version"]) == (shown["model_id"], shown["version"])
    finally:
        stop.set()
        deployer.join()


def test_a_deploy_loads_the_model_once_and_serves_it(
    client: FlaskClient,
    app: Flask,
    train: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = train()
    loads: list[str] = []
    real = artifacts._load_model  # every load of a model's files, whoever asks

    def counted(directory: Any, compiled_trees: bool) -> Any:
        loads.append(str(directory))
        return real(directory, compiled_trees)

    monkeypatch.setattr(artifacts, "_load_model", counted)
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    assert len(loads) == 1, loads
    served = app.extensions["deployed_model"].current
    assert served.model_id == record["id"]
    assert served.version == client.get("/deployment").get_json()["version"]
    assert client.post("/predict", json={"flights": []}).status_code in (200, 400)
    assert len(loads) == 1, loads  # the request served what the deploy loaded


def test_a_domain_error_without_a_status_is_a_500_in_the_one_error_shape(
    stack_settings: dict[str, Any], worker: Any
) -> None:
    """The one mapping, as every view's error meets it (no route of its own: a route would add
    its path to the process's request metrics)."""
    app = create_app({"TESTING": True, **stack_settings})
    with app.test_request_context("/models"):
        body, status, _ = handle_domain_error(FlightDelayError("a state the code never expected"))
        declared, declared_status, _ = handle_domain_error(ModelNotFound("x"))
    assert status == 500 and body["code"] == 500
    assert set(body) == {"code", "status", "message", "errors"}
    assert declared_status == 404 and declared["errors"] == [
        {"field": "model_id", "problem": "not found"}
    ]


def test_a_conditional_deploy_applies_only_over_the_deployment_it_was_decided_against(
    own_prefix: Flask,
) -> None:
    """The registry's conditional deploy (what a scheduled promotion composes): it deploys only
    while the expected model is still deployed and the new one is completed; otherwise nothing
    moves, not even the version or the history."""
    registry: ModelRegistry = own_prefix.extensions["model_registry"]
    first, second, unfinished = (registry.create({}, "flights.csv")["id"] for _ in range(3))
    for model_id in (first, second):
        registry.update(model_id, status="completed")
    event = registry.deploy_if_current(first, None, by="test")
    assert event["model_id"] == first and event["previous_model_id"] is None
    with pytest.raises(DeploymentMoved) as moved:
        registry.deploy_if_current(second, None, by="late")  # decided when nothing was deployed
    assert moved.value.current == first
    with pytest.raises(ModelNotReady):
        registry.deploy_if_current(unfinished, first)
    assert registry.deployment_state()[:2] == (first, 1)
    assert len(registry.deployment_history()) == 1
    assert registry.deploy_if_current(second, first)["version"] == 2
