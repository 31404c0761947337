"""The dashboard (/ui) in a real browser (issue 12, point 4): the models list and its filters, a
model's page with its curves, two models compared (each on its own holdout, then on a common one),
deploy and roll back with a key typed into the page, and a schedule's run.

`make run`'s stack (embedded Redis, worker, beat, gunicorn) and headless Chromium from Debian's
package driven by Playwright (no browser download); skipped with the reason when
/usr/bin/chromium is missing (`.ci/run` installs it). Every request stays on 127.0.0.1 and the key
never appears in a URL. With FLIGHT_DELAY_SCREENSHOT_DIR set, the screenshots go there (the
README's pictures come from `FLIGHT_DELAY_SCREENSHOT_DIR=docs`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.make_run import KEY, Stack, request

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("FLIGHT_DELAY_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = os.environ.get("FLIGHT_DELAY_SCREENSHOT_DIR")
#: the browser reaches nothing but loopback
BROWSER_ARGS = ["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def train(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    status, created = request(stack.base, "POST", "/models", body)
    assert status == 202, created
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        _, record = request(stack.base, "GET", f"/models/{created['id']}")
        if record["status"] in ("completed", "failed"):
            assert record["status"] == "completed", record
            return dict(record)
        time.sleep(0.3)
    raise AssertionError(f"model {created['id']} did not finish")


def wait_for_run(stack: Stack, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        _, run = request(stack.base, "GET", location)
        if run["status"] in ("completed", "failed"):
            return dict(run)
        time.sleep(0.3)
    raise AssertionError(f"{location} did not finish")


class Site:
    """The stack with two models (the LightGBM one deployed) and a schedule with one run."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.base = stack.base
        small = {"dataset": "synthetic:2000", "refit": False, "cv_folds": 0}
        self.boosted = train(stack, {**small, "description": "LightGBM on schedule features"})
        self.linear = train(
            stack,
            {**small, "model_type": "logistic_regression", "features": "minimal",
             "description": "<b>baseline</b> <script>alert(1)</script>"},
        )  # fmt: skip
        assert request(self.base, "PUT", f"/deploy?model-id={self.boosted['id']}")[0] == 204
        status, self.schedule = request(
            self.base, "POST", "/schedules",
            {"name": "nightly", "dataset": "synthetic:2000", "every_seconds": 86400,
             "model": {"model_type": "logistic_regression", "features": "minimal"},
             # no challenger can pass this: the deployment stays as the tests set it
             "rule": {"min_margin": 0.5}},
        )  # fmt: skip
        assert status == 201, self.schedule
        status, run = request(self.base, "POST", f"/schedules/{self.schedule['id']}/runs")
        assert status == 202, run
        self.run = wait_for_run(stack, f"/schedules/{self.schedule['id']}/runs/{run['id']}")
        assert self.run["status"] == "completed", self.run


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    stack = Stack(tmp_path_factory.mktemp("dashboard")).start()
    try:
        yield Site(stack)
    finally:
        stack.stop()


@pytest.fixture
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A tab (its own browser context: its own sessionStorage) that records every request."""

    def __init__(self, browser: Any, base: str, javascript: bool = True) -> None:
        self.context = browser.new_context(
            viewport={"width": 1360, "height": 1000}, java_script_enabled=javascript
        )
        self.page = self.context.new_page()
        self.requests: list[Any] = []
        self.page.on("request", lambda sent: self.requests.append(sent))
        self.base = base

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, path
        return self.page

    def enter_key(self) -> None:
        self.page.fill("#api-key", KEY)
        self.page.click("#key-use")
        self.page.wait_for_selector("#key-state:has-text('Key set for this tab')")

    def shot(self, name: str, tmp_path: Path, full_page: bool = True) -> None:
        target = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
        target.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(target / name), full_page=full_page)

    def assert_loopback_only_and_no_key_in_urls(self) -> None:
        hosts = {urlsplit(r.url).hostname for r in self.requests}
        assert hosts <= {"127.0.0.1"}, f"requests left loopback: {sorted(map(str, hosts))}"
        assert not [r.url for r in self.requests if KEY in r.url], "the key went into a URL"


def test_the_models_list_filters_and_opens_a_model_with_its_curves(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    tab = Page(browser, site.base)
    page = tab.open("/ui/models")
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 3  # the two models and the schedule run's challenger
    deployed = page.locator("tr.deployed")
    assert deployed.count() == 1 and site.boosted["id"][:8] in deployed.inner_text()
    assert "● deployed" in deployed.inner_text()
    # the description is shown as text, never run
    assert "<script>alert(1)</script>" in page.locator("tbody").inner_text()
    tab.shot("ui-models.png", tmp_path)

    page.select_option("select[name=model_type]", "logistic_regression")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/ui/models?*model_type=logistic_regression*")
    assert rows.count() == 2  # the baseline and the challenger
    assert all("logistic_regression" in row for row in rows.all_inner_texts())
    page.check("input[name=deployed]")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**deployed=yes*")
    assert rows.count() == 0 or "No model matches" in rows.first.inner_text()

    tab.open("/ui/models")
    page.click(f"a[href='/ui/models/{site.boosted['id']}']")
    page.wait_for_url(f"**/ui/models/{site.boosted['id']}")
    assert "deployed" in page.locator("h1").inner_text()
    titles = page.locator("svg[role=img] > title").all_text_contents()
    assert titles[:3] == ["ROC curve (holdout)", "Precision-recall (holdout)",
                          "Reliability (holdout, 10 bins)"]  # fmt: skip
    assert "Feature importance" in titles[3]
    holdout = site.boosted["metrics"]["holdout"]
    assert f"{holdout['roc_auc']:.4f}" in page.locator("#metrics ~ table").first.inner_text()
    assert page.locator("#schema ~ p code").first.inner_text() == "Fecha-I"
    tab.shot("ui-model.png", tmp_path)
    tab.assert_loopback_only_and_no_key_in_urls()


def test_model_pages_and_their_charts_need_no_javascript(browser: Any, site: Site) -> None:
    tab = Page(browser, site.base, javascript=False)
    page = tab.open(f"/ui/models/{site.linear['id']}")
    assert page.locator("svg[role=img] polyline").count() >= 3
    assert page.locator("svg[role=img]").first.get_attribute("aria-labelledby")
    page = tab.open(f"/ui/schedules/{site.schedule['id']}")
    assert (
        "kept" in page.locator("table.runs").inner_text()
        or "promoted" in page.locator("table.runs").inner_text()
    )


def test_two_models_compared_on_their_holdouts_then_on_a_common_one(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    tab = Page(browser, site.base)
    page = tab.open("/ui/models")
    for record in (site.boosted, site.linear):
        page.check(f"input[name=model][value='{record['id']}']")
    page.click("text=Compare selected")
    page.wait_for_url("**/ui/compare?*")
    roc = page.locator("svg[role=img]", has=page.locator("title", has_text="ROC curve"))
    assert roc.locator("polyline").count() == 2
    assert page.locator("table.data tbody tr").count() == 2

    tab.enter_key()
    page.fill("form[data-compare] input[name=since]", "2017-10-01")
    page.click("form[data-compare] button[type=submit]")
    page.wait_for_url("**/ui/comparisons/*")
    page.wait_for_selector("table.data tbody tr", timeout=120_000)  # the page reloads until done
    assert page.locator("table.data tbody tr").count() == 2
    caption = page.locator("table.data caption").inner_text()
    assert "every model on the same flights" in caption
    assert page.locator("svg[role=img] polyline").count() >= 4
    tab.shot("ui-compare.png", tmp_path)
    tab.assert_loopback_only_and_no_key_in_urls()


def test_deploy_and_roll_back_with_a_key_kept_in_the_tab(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    tab = Page(browser, site.base)
    page = tab.open("/ui/deployment")
    page.click("form[data-deploy-form] button[type=submit]")  # no key yet: refused in the page
    page.wait_for_selector("#status.failed")
    assert "Enter an API key" in page.inner_text("#status")

    tab.enter_key()
    assert page.evaluate("sessionStorage.getItem('flight-delay-api-key')") == KEY
    assert page.evaluate("document.cookie") == ""
    page.select_option("#deploy-model", site.linear["id"])
    page.click("form[data-deploy-form] button[type=submit]")
    page.wait_for_selector("#status.done")
    page.wait_for_load_state("load")
    page.wait_for_selector(f"text=Serving {site.linear['id'][:8]}")
    assert request(site.base, "GET", "/deployment")[1]["model_id"] == site.linear["id"]

    page.click(f"button[data-deploy='{site.boosted['id']}']")  # roll back
    page.wait_for_selector(f"text=Serving {site.boosted['id'][:8]}")
    _, deployment = request(site.base, "GET", "/deployment")
    assert deployment["model_id"] == site.boosted["id"]
    assert [e["model_id"] for e in deployment["history"][:2]] == [
        site.boosted["id"], site.linear["id"]]  # fmt: skip
    assert deployment["history"][0]["by"].startswith("key admin #")
    assert page.locator("table.data tbody tr").count() >= 3
    tab.shot("ui-deployment.png", tmp_path)
    keyed = [r for r in tab.requests if r.headers.get("x-api-key") == KEY]
    assert {(r.method, urlsplit(r.url).path) for r in keyed} == {("PUT", "/deploy")}
    tab.assert_loopback_only_and_no_key_in_urls()

    # a new tab knows no key: it was kept for that tab only
    other = Page(browser, site.base)
    other.open("/ui/deployment")
    assert other.page.evaluate("sessionStorage.getItem('flight-delay-api-key')") is None


def test_a_schedule_and_its_runs(browser: Any, site: Site, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    tab = Page(browser, site.base)
    page = tab.open("/ui/schedules")
    page.click("text=nightly")
    page.wait_for_url(f"**/ui/schedules/{site.schedule['id']}")
    runs = page.locator("table.runs tbody tr")
    assert runs.count() == 1
    first = runs.first.inner_text()
    assert site.run["decision"] in first and "manual" in first
    assert site.run["reasons"][0] in first
    assert page.locator("svg[role=img] > title").first.text_content().startswith("ROC of run 1")

    # a better challenger, then a run asked for from the page with the key
    status, _ = request(
        site.base, "PATCH", f"/schedules/{site.schedule['id']}",
        {"dataset": "synthetic", "model": {"model_type": "lightgbm", "features": "schedule"},
         "rule": {"min_margin": 0.0, "calibration_not_worse": False}},
    )  # fmt: skip
    assert status == 200
    tab.enter_key()
    page.click("button[data-run-now]")
    page.wait_for_selector("#status.done")
    expect(runs).to_have_count(2, timeout=20_000)
    # the page reloads itself while the run is under way, until it is decided
    expect(runs.first).to_contain_text(re.compile("kept|promoted|failed"), timeout=180_000)
    _, runs = request(site.base, "GET", f"/schedules/{site.schedule['id']}/runs")
    assert [r["number"] for r in runs] == [2, 1]
    assert runs[0]["status"] == "completed" and runs[0]["requested_by"].startswith("key admin #")
    expect(page.locator("table.runs tbody tr").first).to_contain_text(runs[0]["decision"])
    if runs[0]["decision"] == "promoted":
        _, deployment = request(site.base, "GET", "/deployment")
        assert deployment["model_id"] == runs[0]["challenger_id"]
        assert (
            deployment["history"][0]["by"]
            == f"schedule 'nightly' #{site.schedule['id'][:8]}, run 2"
        )
    tab.shot("ui-schedule.png", tmp_path)
    tab.assert_loopback_only_and_no_key_in_urls()


def test_with_a_read_scope_the_pages_need_the_key_and_read_with_it(
    browser: Any, tmp_path: Path
) -> None:
    stack = Stack(tmp_path, FLIGHT_DELAY_READ_SCOPE="read").start()
    try:
        tab = Page(browser, stack.base)
        response = tab.page.goto(stack.base + "/ui/models")
        assert response is not None and response.status == 401
        assert tab.page.locator("#needs-key").count() == 1
        tab.enter_key()
        tab.page.wait_for_selector("h1:has-text('Models')")
        assert tab.page.evaluate("document.cookie") == ""
        tab.assert_loopback_only_and_no_key_in_urls()
    finally:
        stack.stop()
