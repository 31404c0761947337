"""A client generated from the OpenAPI document, as an API user makes one: openapi-python-client
generates it without a warning, names every function after its operation, parses every error
answer, and carries the README's walkthrough (train, wait, deploy, predict, schedules) against
the app on a real Redis and Celery worker."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from flask import Flask

from flight_delay import create_app
from tests.integration.conftest import ADMIN, FAST

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "flight_delay_client"


def generate(document: dict[str, Any], where: Path) -> tuple[ModuleType, str]:
    """Generate the client package into ``where`` and import it; returns it with the log."""
    spec = where / "openapi.json"
    spec.write_text(json.dumps(document))
    # the generator formats its output with ruff, found on PATH (the virtualenv's)
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [GENERATOR, "generate", "--path", spec, "--meta", "none", "--output-path",
         where / PACKAGE],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    sys.path.insert(0, str(where))
    try:
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        return importlib.import_module(PACKAGE), log
    finally:
        sys.path.remove(str(where))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app({"TESTING": True})
    return app.test_client().get("/openapi.json").get_json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]


def test_every_operation_has_a_unique_readable_id(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in operations(document)]
    assert len(ids) == 30 and None not in ids, ids
    assert len(set(ids)) == len(ids)
    assert all(str(name).isidentifier() and str(name)[0].islower() for name in ids), ids


def test_every_error_answer_has_the_error_body(document: dict[str, Any]) -> None:
    bare = []
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status == "default" or int(status) >= 400:
                response = document["components"]["responses"].get(
                    response.get("$ref", "").rsplit("/", 1)[-1], response
                )
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema != {"$ref": "#/components/schemas/Error"}:
                    bare.append(f"{method.upper()} {path} {status}")
    assert not bare, bare


def test_open_reads_need_no_key_unless_configured(document: dict[str, Any]) -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
    assert "security" not in by_id["listModels"] and "security" not in by_id["predict"]
    key: list[dict[str, list[str]]] = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
    assert by_id["trainModel"]["security"] == key
    closed = create_app({"TESTING": True, "READ_SCOPE": "read"}).test_client()
    configured = {
        operation["operationId"]: operation
        for _, _, operation in operations(closed.get("/openapi.json").get_json())
    }
    assert configured["listModels"]["security"] == key
    assert "security" not in configured["predict"]  # FLIGHT_DELAY_PREDICT_SCOPE is still empty


def test_the_client_generates_without_a_warning_and_carries_the_walkthrough(
    app: Flask, tmp_path: Path
) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    client_package, log = generate(document, tmp_path)
    assert "warning" not in log.lower(), log
    models = importlib.import_module(f"{PACKAGE}.models")
    functions = {
        name: importlib.import_module(f"{PACKAGE}.api.{group}.{name}")
        for group, names in {
            "models": ("train_model", "get_model", "list_models"),
            "deployment": ("deploy_model", "get_deployment"),
            "predictions": ("predict",),
            "schedules": ("list_schedules", "create_schedule", "get_schedule"),
        }.items()
        for name in names
    }
    transport = httpx.WSGITransport(app=app)
    base = "http://testserver"
    anonymous = client_package.Client(base_url=base, httpx_args={"transport": transport})
    # the generated AuthenticatedClient's defaults (Authorization: Bearer <key>) are accepted
    keyed = client_package.AuthenticatedClient(
        base_url=base, token=ADMIN, httpx_args={"transport": transport}
    )

    refused = functions["train_model"].sync_detailed(
        client=anonymous, body=models.ModelCreate(dataset="flights.csv")
    )
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Error) and "key" in refused.parsed.message

    created = functions["train_model"].sync(
        client=keyed,
        body=models.ModelCreate(
            dataset="flights.csv", params=models.ModelCreateParams.from_dict(FAST)
        ),
    )
    assert isinstance(created, models.ModelCreated), created
    deadline = time.monotonic() + 120
    record = functions["get_model"].sync(model_id=created.id, client=anonymous)
    while record.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        record = functions["get_model"].sync(model_id=created.id, client=anonymous)
    assert record.status == "completed", record

    deployed = functions["deploy_model"].sync_detailed(client=keyed, model_id=created.id)
    assert deployed.status_code == 204, deployed.content
    assert functions["get_deployment"].sync(client=anonymous).model_id == created.id

    flight = {"OPERA": "Grupo LATAM", "TIPOVUELO": "I", "MES": 7, "Fecha-I": "2017-07-14 08:30:00",
              "Des-I": "SCEL", "Emp-I": "LAN", "SIGLADES": "Buenos Aires", "DIANOM": "Viernes",
              "Vlo-I": "1111", "Ori-I": "SCEL"}  # fmt: skip
    answer = functions["predict"].sync(
        client=anonymous,
        body=models.PredictRequest(flights=[models.PredictRequestFlightsItem.from_dict(flight)]),
    )
    assert isinstance(answer, models.PredictResponse), answer
    assert answer.model_id == created.id and 0 <= answer.predictions[0].delay_probability <= 1

    schedule = functions["create_schedule"].sync(
        client=keyed,
        body=models.ScheduleCreate.from_dict({"dataset": "flights.csv", "every_seconds": 86400}),
    )
    assert isinstance(schedule, models.Schedule), schedule
    listed = functions["list_schedules"].sync(client=anonymous)
    assert isinstance(listed, list) and schedule.id in [s.id for s in listed]
    shown = functions["get_schedule"].sync(schedule_id=schedule.id, client=anonymous)
    assert isinstance(shown, models.Schedule) and shown.model.additional_properties

    missing = functions["get_model"].sync_detailed(
        model_id="00000000-0000-0000-0000-000000000000", client=anonymous
    )
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Error)
    assert missing.parsed.message


def test_a_key_is_taken_from_either_header_but_two_different_keys_are_refused(app: Flask) -> None:
    client = app.test_client()
    body = {"dataset": "nowhere.csv"}  # the key is checked before the body
    assert (
        client.post("/models", json=body, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert (
        client.post("/models", json=body, headers={"Authorization": "Basic " + ADMIN}).status_code
        == 401
    )
    both = {"X-api-key": ADMIN, "Authorization": f"Bearer {ADMIN}x"}
    refused = client.post("/models", json=body, headers=both)
    assert refused.status_code == 401 and "two different keys" in refused.get_json()["message"]
    for headers in ({"Authorization": f"Bearer {ADMIN}"}, {"X-api-key": ADMIN}):
        assert client.post("/models", json=body, headers=headers).status_code == 400
