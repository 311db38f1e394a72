"""Helpers of the web page's browser tests: a checked tab, signing in, searching,
enqueueing from the form, following a job's row, screenshots."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from config.endpoints import Endpoints

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
JOB_DONE_TIMEOUT_MS = 240_000
UI_TIMEOUT_MS = 20_000


@contextmanager
def opened(browser: Any, endpoints: Endpoints, viewport: dict[str, int]) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage) on /ui; it must end with no script error and
    no Content-Security-Policy violation."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    page.goto(f"{endpoints.api_url}/ui")
    try:
        yield page
    finally:
        context.close()
    assert problems == []


def sign_in(page: Any, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#nav").wait_for(state="visible")


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def search(page: Any, repo: str, query: str = "match_file") -> Any:
    page.get_by_role("button", name="Search", exact=True).first.click()
    page.get_by_label("Query").fill(query)
    page.locator("#view-search").get_by_label("Repository", exact=True).select_option(repo)
    page.locator("#search-form").get_by_role("button", name="Search").click()
    results = page.locator("#results > li")
    results.first.wait_for()
    return results


def watch(page: Any, card: Any) -> list[tuple[str, str, float]]:
    """(status, stage, overall percent) of a job's row, each time it changes, until
    the job ends; a screenshot of it under way."""
    seen: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + JOB_DONE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        state = card.evaluate(
            "tr => [tr.dataset.status, tr.dataset.stage, tr.querySelector('.overall').value]"
        )
        if not seen or tuple(state) != seen[-1]:
            seen.append(tuple(state))
            if state[0] == "running" and state[2] < 90:  # the last one under way stays
                shot(page, "jobs-running-1280")
        if state[0] in ("done", "failed", "cancelled"):
            return seen
        page.wait_for_timeout(150)
    raise AssertionError(f"the job did not end: {seen}")


def enqueue_from_form(page: Any, source: Path, repo: str) -> Any:
    """Enqueue ``source`` as ``repo`` from the jobs form; the job's row."""
    page.get_by_role("button", name="Jobs", exact=True).click()
    page.get_by_label("Source: a folder path or a git URL").fill(str(source))
    page.get_by_label("Repository name").fill(repo)
    page.get_by_role("button", name="Enqueue").click()
    page.locator("#jobs-status").filter(has_text="queued").wait_for()
    card = page.locator(f'#jobs > tr.job:has(th:text-is("{repo}"))')
    card.wait_for()
    return card


def api_get(endpoints: Endpoints, path: str, **params: Any) -> Any:
    """A GET of the API with the stack's token: its JSON."""
    answer = httpx.get(
        f"{endpoints.api_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {endpoints.api_token}"},
    )
    answer.raise_for_status()
    return answer.json()
