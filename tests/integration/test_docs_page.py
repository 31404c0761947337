"""The docs page in a real browser (issue 9): /docs renders from the app's own files, the admin
key goes in through "Authorize", a POST /predict and a keyed PUT /deploy succeed from the page,
and no request leaves 127.0.0.1.

Headless Chromium from Debian's package, driven by Playwright (no browser download). Skipped with
the reason when /usr/bin/chromium is missing; `.ci/run` installs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.make_run import FLIGHT, KEY, Stack, deploy_small_model, request

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("FLIGHT_DELAY_CHROMIUM", "/usr/bin/chromium")
#: where the screenshot goes when regenerating the README's picture (else the test's tmp dir)
SCREENSHOT_DIR = os.environ.get("FLIGHT_DELAY_SCREENSHOT_DIR")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    running = Stack(tmp_path).start()
    yield running
    running.stop()


def try_it_out(page: Any, method: str, path: str, fill: Callable[[Any], None]) -> tuple[str, str]:
    """Open the operation, "Try it out", ``fill`` its inputs, "Execute"; the status shown and
    the text of the live response. The operation is folded again after."""
    block = page.locator(f".opblock-{method}", has=page.locator(f"[data-path='{path}']"))
    block.locator(".opblock-summary").first.click()
    block.locator(".try-out__btn").click()
    fill(block)
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    shown = status.inner_text().strip(), block.locator(".live-responses-table").inner_text()
    block.locator(".opblock-summary").first.click()
    return shown


def test_the_docs_page_authorizes_predicts_and_deploys_from_loopback_only(
    stack: Stack, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    first = deploy_small_model(stack)
    deploy_small_model(stack)  # the second model is deployed now; the page rolls back to the first
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: requested.append(r.url))
            page.goto(f"{stack.base}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
            assert "flight-delay" in page.inner_text(".swagger-ui .info .title")

            # Authorize with the admin key
            page.click(".swagger-ui .auth-wrapper .authorize")
            page.fill(".swagger-ui .modal-ux input[type=text], .swagger-ui .modal-ux input", KEY)
            page.click(".swagger-ui .modal-ux .auth-btn-wrapper .authorize")
            page.click(".swagger-ui .modal-ux .btn-done")

            # POST /predict, then a keyed PUT /deploy, from the page
            status, answer = try_it_out(
                page, "post", "/predict",
                lambda block: block.locator("textarea.body-param__text").fill(
                    json.dumps({"flights": [FLIGHT]})
                ),
            )  # fmt: skip
            assert status == "200"
            assert "delay_probability" in answer
            status, _ = try_it_out(
                page, "put", "/deploy",
                lambda block: block.locator("input[placeholder='model-id']").fill(first),
            )  # fmt: skip
            assert status == "204"

            target = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
            target.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target / "docs-page.png"), full_page=False)
        finally:
            browser.close()
    hosts = {urlsplit(url).hostname for url in requested}
    assert hosts == {"127.0.0.1"}, f"requests left loopback: {sorted(map(str, hosts))}"
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)
    # the page's deploy took effect: the first model is deployed again
    status, deployment = request(stack.base, "GET", "/deployment")
    assert status == 200 and deployment["model_id"] == first
