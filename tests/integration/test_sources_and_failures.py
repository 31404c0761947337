"""Datasets fetched by URL (from a loopback HTTP server), and a deployed model that fails to load."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from flight_delay import create_app
from flight_delay.registry import ModelRegistry
from tests.integration.conftest import admin, finished, wait_for

pytestmark = pytest.mark.integration


def serve(handler: Any) -> Iterator[str]:
    """An HTTP server with ``handler`` on 127.0.0.1 for as long as the fixture lasts; its URL
    names the host "localhost", which stack_settings allow to reach."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def file_server(stack_settings: dict[str, Any]) -> Iterator[str]:
    """Serves the data root over HTTP on 127.0.0.1."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=stack_settings["DATA_ROOT"]
    )
    yield from serve(handler)


def test_a_dataset_given_by_url_is_downloaded_by_the_worker(
    client: FlaskClient, file_server: str
) -> None:
    response = client.post(
        "/models",
        json={"dataset": f"{file_server}/flights.csv", "params": {"n_estimators": 100}},
        headers=admin(),
    )
    assert response.status_code == 202
    record = wait_for(client, response.get_json()["id"], finished)
    assert record["status"] == "completed", record
    assert record["data"]["downloaded_from"] == f"{file_server}/flights.csv"
    assert record["data"]["rows"] == 4000


def test_a_url_that_fails_records_the_http_error(client: FlaskClient, file_server: str) -> None:
    response = client.post(
        "/models", json={"dataset": f"{file_server}/nothing.csv"}, headers=admin()
    )
    record = wait_for(client, response.get_json()["id"], finished)
    assert record["status"] == "failed"
    assert "download failed: HTTP 404" in record["error"]


def test_a_synthetic_dataset_is_labelled_so(client: FlaskClient) -> None:
    response = client.post(
        "/models",
        json={"dataset": "synthetic:5000", "params": {"n_estimators": 100}},
        headers=admin(),
    )
    record = wait_for(client, response.get_json()["id"], finished)
    assert record["status"] == "completed", record
    assert "not real data" in record["data"]["synthetic"]


def test_a_model_that_fails_to_load_leaves_the_previous_one_serving(
    stack_settings: dict[str, Any],
    client: FlaskClient,
    train: Callable[..., dict[str, Any]],
    model_dir: Path,
) -> None:
    good, broken = train(), train()
    assert client.put(f"/deploy?model-id={good['id']}", headers=admin()).status_code == 204
    app = create_app({"TESTING": True, **stack_settings, "DEPLOYMENT_POLL_SECONDS": 0.0})
    serving = app.test_client()
    flight = {"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "Fecha-I": "2017-05-01 10:00:00", "Vlo-I": "100",
              "Des-I": "SCFA", "Emp-I": "LAN"}  # fmt: skip
    assert serving.post("/predict", json={"flights": [flight]}).get_json()["model_id"] == good["id"]
    # the files break after the deploy checked them (a bad disk, a partial copy by hand)
    (model_dir / broken["id"] / "model.joblib").write_bytes(b"damaged")
    registry: ModelRegistry = app.extensions["model_registry"]
    registry.deploy(broken["id"])
    assert serving.post("/predict", json={"flights": [flight]}).get_json()["model_id"] == good["id"]
    ready = serving.get("/readyz")
    assert ready.status_code == 503
    (check,) = (e["problem"] for e in ready.get_json()["errors"] if e["field"] == "model")
    assert check.startswith(f"serving {good['id']}; the newer deployment failed")
    assert "corrupt model file" in check


# -- hostile URLs (issue 7, findings 2 and 8) ------------------------------------------------------
@pytest.fixture
def redirect_server(stack_settings: dict[str, Any]) -> Iterator[str]:
    """localhost (allowed) answers /go with a redirect to 127.0.0.1 (not allowed), and serves a
    secret at /secret."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/go":
                self.send_response(302)
                self.send_header(
                    "Location", f"http://127.0.0.1:{self.server.server_address[1]}/secret"
                )
                self.end_headers()
                return
            body = b"INTERNAL-SECRET-42,x\n1,2\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    yield from serve(Handler)


def test_internal_addresses_are_refused_at_once(client: FlaskClient, redirect_server: str) -> None:
    port = redirect_server.rpartition(":")[2]
    for url in (f"http://127.0.0.1:{port}/secret", "http://169.254.169.254/latest/meta-data",
                f"http://[::1]:{port}/secret", "http://10.0.0.1/x.csv"):  # fmt: skip
        response = client.post("/models", json={"dataset": url}, headers=admin())
        assert response.status_code == 400, url
        assert "not a public address" in response.get_json()["message"]


def test_a_redirect_to_an_internal_address_is_refused_and_nothing_fetched_is_quoted(
    client: FlaskClient, redirect_server: str
) -> None:
    response = client.post("/models", json={"dataset": f"{redirect_server}/go"}, headers=admin())
    assert response.status_code == 202
    record = wait_for(client, response.get_json()["id"], finished)
    assert record["status"] == "failed"
    assert "non-public address" in record["error"]
    # the allowed host serves a non-SCL file: the error says so without quoting it
    response = client.post(
        "/models", json={"dataset": f"{redirect_server}/secret"}, headers=admin()
    )
    record = wait_for(client, response.get_json()["id"], finished)
    assert record["status"] == "failed"
    assert "not a usable SCL flight file" in record["error"]
    assert "INTERNAL-SECRET" not in str(record)


def test_credentials_in_a_dataset_url_are_never_shown(
    client: FlaskClient, file_server: str
) -> None:
    url = file_server.replace("http://", "http://alice:hunter2@") + "/flights.csv?token=abc123"
    response = client.post(
        "/models", json={"dataset": url, "params": {"n_estimators": 50}}, headers=admin()
    )
    assert response.status_code == 202
    model_id = response.get_json()["id"]
    record = wait_for(client, model_id, finished)
    assert record["status"] == "completed", record
    listed = client.get("/models").get_json()
    for shown in (record, *(m for m in listed if m["id"] == model_id)):
        text = str(shown)
        assert "hunter2" not in text and "abc123" not in text, text
    assert record["dataset"].startswith("http://***@localhost")


def test_server_paths_are_not_shown(client: FlaskClient, stack_settings: dict[str, Any]) -> None:
    root = stack_settings["DATA_ROOT"]
    for dataset in ("../outside.csv", "missing.csv", "empty.csv"):
        response = client.post("/models", json={"dataset": dataset}, headers=admin())
        if response.status_code == 202:
            response = client.get(
                f"/models/{wait_for(client, response.get_json()['id'], finished)['id']}"
            )
        assert root not in response.get_data(as_text=True), dataset
        assert str(Path(root).parent) not in response.get_data(as_text=True), dataset
