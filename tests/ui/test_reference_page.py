"""The API reference (/docs) in headless Chromium: rendered from the API's own files with
no request leaving it, no token needed to read it, and a token entered in the page used
for "Try it out"."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from config.endpoints import Endpoints
from tests.ui.pages import ARTIFACTS, UI_TIMEOUT_MS, WIDE

pytestmark = pytest.mark.integration


def test_the_reference_renders_offline_and_calls_the_api_with_the_token_entered(
    browser: Any, endpoints: Endpoints
) -> None:
    origin = urlsplit(endpoints.api_url).netloc
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(UI_TIMEOUT_MS)
    requested: list[str] = []
    problems: list[str] = []

    def route(request_route: Any) -> None:
        # Anything bound elsewhere (a CDN, a font host) is recorded and refused: the page
        # must not need it.
        url = request_route.request.url
        requested.append(url)
        if urlsplit(url).netloc == origin:
            request_route.continue_()
        else:
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    try:
        page.goto(f"{endpoints.api_url}/docs")
        page.locator(".opblock-summary-path", has_text="/v1/search").first.wait_for()
        assert page.locator(".opblock").count() >= 10
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "api-reference-1280.png"))  # before any token
        # "Authorize" takes the token; the page keeps it in memory only.
        page.get_by_role("button", name="Authorize").first.click()
        page.locator(".modal-ux input").first.fill(endpoints.api_token)
        page.locator(".modal-ux button.authorize").click()
        page.locator(".modal-ux button.btn-done").click()
        stored = page.evaluate("JSON.stringify(window.localStorage)")
        assert endpoints.api_token not in stored
        # Try GET /v1/repos: the API answers 200 to the page's request with the token.
        operation = page.locator(".opblock-get", has_text="/v1/repos").first
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/repos") as answered:
            operation.get_by_role("button", name="Execute").click()
        assert answered.value.status == 200
    finally:
        context.close()
    assert problems == []
    foreign = [u for u in requested if urlsplit(u).netloc != origin]
    assert foreign == [], f"the page asked for outside resources: {foreign}"
    assert any(urlsplit(u).path == "/docs/assets/swagger-ui-bundle.js" for u in requested)
