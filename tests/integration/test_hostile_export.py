"""Export writes files on the server: a key with the `export` scope, plain names, never a
replaced file (issue 7, finding 1)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from tests.integration.conftest import READER, admin
from tests.support.api import error_of

pytestmark = pytest.mark.integration

Train = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def completed(train_module: Train) -> dict[str, Any]:
    return train_module()


def export(client: FlaskClient, model_id: str, name: str | None, key: str | None = None) -> Any:
    query = "export=true" + (f"&file-name={quote(name, safe='')}" if name is not None else "")
    return client.get(f"/models/{model_id}?{query}", headers=admin(key) if key else {})


def test_anonymous_export_writes_nothing(
    client: FlaskClient, completed: dict[str, Any], stack_settings: dict[str, Any]
) -> None:
    before = sorted(os.listdir(stack_settings["EXPORT_DIR"]))
    # the reproduction: no key, a name pointing into the code
    for name in ("flight_delay/wsgi.py", None, "anything.joblib"):
        assert error_of(export(client, completed["id"], name))["code"] == 401
    assert error_of(export(client, completed["id"], "x.joblib", READER))["code"] == 403
    # "export=yes", "export=1": any truthy spelling needs the scope too
    for flag in ("1", "yes", "TRUE", "on"):
        response = client.get(f"/models/{completed['id']}?export={flag}")
        assert error_of(response)["code"] == 401, flag
    assert sorted(os.listdir(stack_settings["EXPORT_DIR"])) == before
    # a plain read stays open
    assert client.get(f"/models/{completed['id']}").status_code == 200
    assert client.get(f"/models/{completed['id']}?export=false").status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "../escape.joblib",
        "/tmp/escape.joblib",
        "flight_delay/wsgi.py",
        "nested/x.joblib",
        ".hidden",
        ".",
        "..",
        "a" * 129,
        "x" * 250,
        "a\x00b.joblib",
        "with space.joblib",
        "back\\slash",
        "",
    ],
)
def test_export_names_must_be_plain(
    client: FlaskClient, completed: dict[str, Any], stack_settings: dict[str, Any], name: str
) -> None:
    before = sorted(os.listdir(stack_settings["EXPORT_DIR"]))
    response = export(client, completed["id"], name, key=admin()["X-api-key"])
    error = error_of(response)
    assert error["code"] == 400, (name, error)
    assert error["errors"][0]["location"] == "query", error
    assert error["errors"][0]["field"] == "file-name", error
    assert sorted(os.listdir(stack_settings["EXPORT_DIR"])) == before


def test_export_never_replaces_a_file_it_did_not_write(
    client: FlaskClient, completed: dict[str, Any], stack_settings: dict[str, Any]
) -> None:
    key = admin()["X-api-key"]
    foreign = Path(stack_settings["EXPORT_DIR"]) / "taken.joblib"
    foreign.write_bytes(b"somebody else's file")
    error = error_of(export(client, completed["id"], "taken.joblib", key))
    assert error["code"] == 409
    assert "file-name" in str(error["errors"])
    assert foreign.read_bytes() == b"somebody else's file"
    # exporting the same model twice under one name is the same export, not a conflict
    first = export(client, completed["id"], "same.joblib", key)
    assert first.status_code == 200, first.get_json()
    assert export(client, completed["id"], "same.joblib", key).status_code == 200
    # no temporary files are left behind
    assert not [n for n in os.listdir(stack_settings["EXPORT_DIR"]) if n.startswith(".")]


def test_a_completed_model_whose_files_vanished_is_410_not_500(
    client: FlaskClient, train_module: Train, model_dir: Path
) -> None:
    record = train_module()
    shutil.rmtree(model_dir / record["id"])
    error = error_of(export(client, record["id"], None, admin()["X-api-key"]))
    assert error["code"] == 410
    assert str(model_dir) not in error["message"]
    assert error_of(client.get(f"/models/{record['id']}/artifact"))["code"] == 410
