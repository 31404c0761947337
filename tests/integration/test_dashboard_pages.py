"""The dashboard's pages as the server sends them (issue 12): every page answers with its
security headers and no inline script, what callers wrote is shown as text, unknown things are
HTML 404s, and a configured read scope closes the pages (not their static files) until the key
comes in the header. In a real browser: test_dashboard_browser.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flight_delay import create_app
from tests.integration.conftest import ADMIN, READER, admin

pytestmark = pytest.mark.integration

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def model(client: FlaskClient, train: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    record = train(description=HOSTILE)
    assert client.put(f"/deploy?model-id={record['id']}", headers=admin()).status_code == 204
    return record


@pytest.fixture
def schedule(client: FlaskClient) -> dict[str, Any]:
    created = client.post(
        "/schedules",
        json={"name": HOSTILE[:100], "dataset": "flights.csv", "every_seconds": 3600},
        headers=admin(),
    )
    assert created.status_code == 201
    body: dict[str, Any] = created.get_json()
    return body


def pages(model: dict[str, Any], schedule: dict[str, Any]) -> list[str]:
    return [
        "/ui/models",
        "/ui/models?status=completed&model_type=lightgbm&features=schedule&deployed=yes",
        f"/ui/models/{model['id']}",
        f"/ui/compare?model={model['id']}",
        "/ui/deployment",
        "/ui/schedules",
        f"/ui/schedules/{schedule['id']}",
    ]


def test_every_page_has_its_security_headers_and_no_inline_script(
    client: FlaskClient, model: dict[str, Any], schedule: dict[str, Any]
) -> None:
    for path in pages(model, schedule):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        html = response.get_data(as_text=True)
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts == ['<script src="/ui/static/ui.js" defer>'], (path, scripts)
        # no inline event handler on any element (the CSP would block it anyway)
        assert not re.findall(r"<[a-z][^>]*\son[a-z]+=", html), path
        assert ADMIN not in html, path


def test_what_callers_wrote_is_shown_as_text(
    client: FlaskClient, model: dict[str, Any], schedule: dict[str, Any]
) -> None:
    for path in ("/ui/models", f"/ui/models/{model['id']}", "/ui/schedules"):
        html = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(" in html, path
        assert "<script>alert(" not in html and "<img src=x" not in html, path


def test_unknown_things_are_html_404s(client: FlaskClient) -> None:
    other = "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10"
    for path in (f"/ui/models/{other}", f"/ui/schedules/{other}", f"/ui/comparisons/{other}",
                 f"/ui/models/{other}/drift"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html"
        assert "404 Not Found" in response.get_data(as_text=True)
    assert client.get("/ui/models/not-a-uuid").status_code == 404


def test_compare_shows_completed_models_and_names_the_rest(
    client: FlaskClient, model: dict[str, Any]
) -> None:
    other = "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10"
    html = client.get(f"/ui/compare?model={model['id']}&model={other}").get_data(as_text=True)
    assert "Not shown (unknown, or not completed)" in html and other in html
    assert html.count('<svg class="chart"') == 3
    many = "&".join(f"model={other[:-2]}{n:02d}" for n in range(40))
    assert client.get(f"/ui/compare?{many}").status_code == 200


def test_a_read_scope_closes_the_pages_until_the_key_comes_in_the_header(
    stack_settings: dict[str, Any], worker: Any
) -> None:
    closed: Flask = create_app({"TESTING": True, **stack_settings, "READ_SCOPE": "read"})
    client = closed.test_client()
    response = client.get("/ui/models")
    assert response.status_code == 401 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'data-needs-key="1"' in html and 'id="needs-key"' in html
    assert client.get("/ui/models", headers=admin(READER)).status_code == 200
    assert client.get("/ui/models", headers=admin("not-a-key")).status_code == 401
    for path, expected in (("/ui/static/ui.js", 200), ("/ui/static/ui.css", 200),
                           ("/ui/static/../app.py", 404), ("/ui/static/%2e%2e/app.py", 404)):  # fmt: skip
        with client.get(path) as response:
            assert response.status_code == expected, path


def test_a_model_page_shows_every_status(client: FlaskClient, app: Flask) -> None:
    """Pending, running and failed models have no threshold or metrics yet: their pages are
    pages, not 500s (issue 19, finding 11). Records made here, not trained: no job is sent."""
    registry = app.extensions["model_registry"]
    pending = registry.create({"model_type": "lightgbm", "features": "schedule"}, "flights.csv")
    running = registry.create({"model_type": "lightgbm", "features": "schedule"}, "flights.csv")
    assert registry.claim(running["id"], "t1", "test", 30, 2)[0] == "claimed"
    failed = registry.create({"model_type": "lightgbm", "features": "schedule"}, "flights.csv")
    assert registry.claim(failed["id"], "t2", "test", 30, 2)[0] == "claimed"
    assert registry.attempt_finish(failed["id"], "t2", "failed", error=HOSTILE)
    try:
        for record, status in ((pending, "pending"), (running, "running"), (failed, "failed")):
            response = client.get(f"/ui/models/{record['id']}")
            assert response.status_code == 200, (status, response.get_data(as_text=True)[:300])
            html = response.get_data(as_text=True)
            assert f'<span class="badge {status}">{status}</span>' in html
            assert "<script>alert(" not in html
        assert client.get("/ui/models").status_code == 200
    finally:
        for record in (pending, running, failed):
            registry.delete(record["id"])


def test_the_key_box_never_puts_the_key_in_a_url(client: FlaskClient) -> None:
    """Without JavaScript the key form is submitted by the browser: as a GET it went to
    /ui/models?api-key=<KEY>, into the access log (issue 19, finding 11)."""
    html = client.get("/ui/models").get_data(as_text=True)
    form = re.search(r'<form id="key-form"[^>]*>', html)
    assert form is not None
    assert 'method="post"' in form.group(0) and 'action="/ui/key"' in form.group(0)
    answer = client.post("/ui/key", data={"api-key": ADMIN})
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert "needs JavaScript" in page and ADMIN not in page


def test_every_answer_carries_framing_and_sniffing_headers(client: FlaskClient) -> None:
    """/ui's redirects and errors, the docs page and the API's JSON answers all forbid framing;
    a redirect never names the host the caller's Host header gave (issue 19, finding 12)."""
    forged = {"Host": "evil.example"}
    checks = [
        ("GET", "/ui", 308, "text/html"),
        ("GET", "/ui/no-such-page", 404, "text/html"),
        ("POST", "/ui/models", 405, "text/html"),
        ("GET", "/docs", 200, "text/html"),
        ("GET", "/openapi.json", 200, "application/json"),
        ("GET", "/no-such-path", 404, "application/json"),
        ("GET", "/models", 200, "application/json"),
    ]
    for method, path, status, mimetype in checks:
        response = client.open(path, method=method, headers=forged)
        assert response.status_code == status, path
        if status != 308:
            assert response.mimetype == mimetype, path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        if path.startswith("/ui"):
            assert "script-src 'self'" in response.headers["Content-Security-Policy"], path
        location = response.headers.get("Location", "")
        assert "evil.example" not in location, (path, location)
    assert client.get("/ui", headers=forged).headers["Location"] == "/ui/"


def test_model_settings_are_shown_as_the_api_writes_them(client: FlaskClient, app: Flask) -> None:
    registry = app.extensions["model_registry"]
    settings = {"model_type": "lightgbm", "features": "schedule", "refit": True,
                "time_cutoff": None, "params": {"num_leaves": 31}}  # fmt: skip
    record = registry.create(settings, "flights.csv")
    try:
        html = client.get(f"/ui/models/{record['id']}").get_data(as_text=True)
        cells = re.findall(r'<td class="mono">([^<]*)</td>', html)
        assert "true" in cells and "null" in cells, cells
        assert "True" not in cells and "None" not in cells
        assert "{&#34;num_leaves&#34;: 31}" in cells, cells
    finally:
        registry.delete(record["id"])
