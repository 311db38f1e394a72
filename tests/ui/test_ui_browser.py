"""The web page in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright (the Python package, with the system browser; nothing is
downloaded) against the session stack's API.

A repository is enqueued from the jobs form and followed until done; then it is searched,
a result is opened and its graph neighbourhood checked, with the mouse and with the
keyboard alone, at 1280 px and 390 px wide. Screenshots go to ``test-artifacts/ui/``.
A missing browser or package fails the tests, naming what to install.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from tests.ui.pages import (
    ARTIFACTS,
    NARROW,
    WIDE,
    enqueue_from_form,
    opened,
    search,
    shot,
    sign_in,
    watch,
)
from tests.workers.jobs_api import corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

# Enough of pathspec for util.match_file to have callers, callees and a container.
CORPUS_FILES = ("__init__.py", "util.py", "pattern.py", "pathspec.py", "backend.py")
CANCEL_CORPUS_FILES = 150
TERMINAL = frozenset({"done", "failed", "cancelled"})


@pytest.fixture(scope="module")
def indexed(
    browser: Any, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A small repository enqueued from the jobs form and followed there until done:
    its name and what the finished job's card showed."""
    source = tmp_path_factory.mktemp("ui") / "pathspec"
    source.mkdir()
    for name in CORPUS_FILES:
        shutil.copy(corpus() / name, source / name)
    repo = f"ui-{uuid.uuid4().hex[:8]}"
    with opened(browser, endpoints, WIDE) as page:
        sign_in(page, endpoints.api_token)
        card = enqueue_from_form(page, source, repo)
        seen = watch(page, card)
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/v1/jobs" in r.url else None)
        page.wait_for_timeout(2500)
        listed = httpx.get(
            f"{endpoints.api_url}/v1/jobs",
            params={"limit": 20},
            headers={"Authorization": f"Bearer {endpoints.api_token}"},
        ).json()["jobs"]
        finished = {
            "others_under_way": any(j["status"] not in TERMINAL for j in listed),
            "repo": repo,
            "seen": seen,
            "polls_after_done": polls,
            "state": card.locator(".job-state").inner_text(),
            "bars": card.locator("progress").evaluate_all(
                "bars => bars.map(b => [b.labels[0].textContent, b.value, b.max])"
            ),
            "stage": card.locator("dd").first.inner_text(),
            "eta": card.locator("dd").nth(1).inner_text(),
            "cancel_visible": card.get_by_role("button", name="Cancel").is_visible(),
        }
        shot(page, "jobs-1280")
    return finished


def test_a_wrong_token_is_refused_and_the_stack_token_signs_in(
    browser: Any, endpoints: Endpoints
) -> None:
    with opened(browser, endpoints, WIDE) as page:
        assert page.locator("#nav").is_hidden()
        page.get_by_label("API token").fill("qk_not-a-token")
        page.get_by_role("button", name="Sign in").click()
        error = page.locator("#login-error")
        assert error.get_attribute("role") == "alert"
        error.filter(has_text="refused").wait_for()
        assert "invalid or revoked token" in error.inner_text()
        assert page.evaluate("sessionStorage.getItem('quarry.token')") is None
        shot(page, "login-refused-1280")
        sign_in(page, endpoints.api_token)
        assert page.evaluate("sessionStorage.getItem('quarry.token')") == endpoints.api_token
        # the token survives a reload of the tab, and signing out forgets it
        page.reload()
        page.locator("#nav").wait_for(state="visible")
        page.get_by_role("button", name="Sign out").click()
        assert page.evaluate("sessionStorage.getItem('quarry.token')") is None
        assert page.get_by_label("API token").is_visible()


def test_the_job_enqueued_from_the_form_is_followed_until_done(indexed: dict[str, Any]) -> None:
    assert indexed["state"] == "done", indexed
    seen = indexed["seen"]
    # followed live: it was seen under way (queued or running) before done, its
    # overall progress never went back, and the page stopped at done
    assert seen[0][0] in ("queued", "running") and seen[-1][0] == "done", seen
    percents = [percent for _status, _stage, percent in seen]
    assert percents == sorted(percents) and percents[-1] == 100
    # The page polls while a job it lists is under way: other tests' jobs may be.
    assert indexed["polls_after_done"] == [] or indexed["others_under_way"], indexed
    assert indexed["cancel_visible"] is False
    bars = {label: (value, top) for label, value, top in indexed["bars"]}
    assert bars["Overall"] == (100, 100)
    written, todo = bars["Files written"]
    assert written == todo == len(CORPUS_FILES)
    chunks, total = bars["Chunks embedded or cached"]
    assert chunks == total > 0
    assert indexed["stage"] == "done" and indexed["eta"] == "—"


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "390"])
def test_a_result_opens_with_its_neighbourhood_drawn(
    browser: Any, endpoints: Endpoints, indexed: dict[str, Any], viewport: dict[str, int]
) -> None:
    width = viewport["width"]
    with opened(browser, endpoints, viewport) as page:
        sign_in(page, endpoints.api_token)
        results = search(page, indexed["repo"])
        first = results.first
        assert first.locator(".symbol").inner_text().endswith("match_file")
        assert first.locator(".result-open").inner_text().split(":")[0] in CORPUS_FILES
        assert "lexical" in first.locator(".badge").all_inner_texts()
        assert "match_file" in first.locator("mark").all_inner_texts()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot(page, f"search-{width}")

        first.locator(".snippet").click()
        detail = page.locator("#detail")
        detail.wait_for(state="visible")
        assert page.locator("#detail-title").inner_text().endswith("match_file")
        assert "def match_file" in page.locator("#detail-snippet").inner_text()
        graph = page.locator("#detail-graph svg")
        assert graph.locator(".node-symbol").count() == 1
        assert graph.locator(".node-container").count() == 1
        callers = page.locator("#detail-callers li.symbol-item").count()
        callees = page.locator("#detail-callees li.symbol-item").count()
        assert callers + callees > 0
        # as wide as its panel; a narrow one draws fewer per row, then "+N more"
        drawn_width = float(graph.get_attribute("width"))
        assert drawn_width <= width
        per_row = 3 if drawn_width < 500 else 5

        def drawn(n: int) -> int:
            return n if n <= per_row else per_row + 1

        assert graph.locator(".node-caller").count() == drawn(callers)
        assert graph.locator(".node-callee").count() == drawn(callees)
        nodes = graph.locator(".node").count()
        assert graph.locator("line.edge").count() == nodes - 1
        names = graph.locator(".node-caller, .node-callee").evaluate_all(
            "nodes => nodes.map(n => n.dataset.name)"
        )
        listed_names = page.locator(
            "#detail-callers li.symbol-item, #detail-callees li.symbol-item"
        ).evaluate_all("items => items.map(i => i.dataset.name)")
        assert set(names) - {None} <= set(listed_names)
        container = page.locator("#detail-container li.symbol-item")
        assert container.count() == 1
        assert (
            container.get_attribute("data-name")
            == page.locator("#detail-title").inner_text().rsplit(".", 1)[0]
        )
        box = detail.bounding_box()
        listed = page.locator("#results").bounding_box()
        if width >= 900:  # side by side
            assert box["x"] >= listed["x"] + listed["width"] - 1
        else:  # the open result covers the screen
            assert box["x"] == 0 and box["width"] == width
        page.screenshot(path=str(ARTIFACTS / f"result-{width}.png"), full_page=width >= 900)


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "390"])
def test_the_keyboard_alone_opens_and_closes_a_result(
    browser: Any, endpoints: Endpoints, indexed: dict[str, Any], viewport: dict[str, int]
) -> None:
    with opened(browser, endpoints, viewport) as page:
        sign_in(page, endpoints.api_token)
        search(page, indexed["repo"])
        page.get_by_label("Query").focus()
        for _ in range(20):  # from the query box, through the filters, to the first result
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.matches('.result-open')"):
                break
        focused = page.evaluate("document.activeElement.textContent")
        assert focused == page.locator(".result-open").first.inner_text()
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") not in (
            "none",
            "",
        )
        page.keyboard.press("Enter")
        page.locator("#detail").wait_for(state="visible")
        assert page.evaluate("document.activeElement.id") == "detail-title"
        assert page.locator("#detail-graph svg .node").count() >= 2
        page.keyboard.press("Escape")
        page.locator("#detail").wait_for(state="hidden")
        assert page.evaluate("document.activeElement.textContent") == focused
        shot(page, f"keyboard-{viewport['width']}")


def test_the_jobs_view_at_390_px(
    browser: Any, endpoints: Endpoints, indexed: dict[str, Any]
) -> None:
    with opened(browser, endpoints, NARROW) as page:
        sign_in(page, endpoints.api_token)
        page.get_by_role("button", name="Jobs", exact=True).click()
        page.locator("#jobs-repo").select_option(indexed["repo"])
        card = page.locator("#jobs > li")
        card.first.wait_for()
        assert card.count() == 1 and card.get_attribute("data-status") == "done"
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        form = page.locator("#job-form").bounding_box()
        listed = page.locator("#jobs").bounding_box()
        assert listed["y"] >= form["y"] + form["height"]  # stacked
        shot(page, "jobs-390")


def test_cancel_stops_a_running_job_from_its_card(
    browser: Any, endpoints: Endpoints, tmp_path: Path
) -> None:
    # Many files, so that the job is still running when Cancel is pressed; cancelling
    # stops new work, so the stack is not kept busy with them.
    source = tmp_path / "many"
    source.mkdir()
    text = (corpus() / "util.py").read_text(encoding="utf-8")
    for i in range(CANCEL_CORPUS_FILES):
        (source / f"module_{i:03}.py").write_text(text.replace("match_file", f"match_{i}"))
    repo = f"ui-cancel-{uuid.uuid4().hex[:8]}"
    with opened(browser, endpoints, WIDE) as page:
        sign_in(page, endpoints.api_token)
        card = enqueue_from_form(page, source, repo)
        with page.expect_response(
            lambda r: r.request.method == "DELETE" and "/v1/jobs/" in r.url
        ) as answered:
            card.get_by_role("button", name="Cancel").click()
        assert answered.value.status == 200
        assert answered.value.json()["status"] == "cancelled"
        card.locator(".job-state").filter(has_text="cancelled").wait_for()
        assert card.get_attribute("data-status") == "cancelled"
        assert card.get_by_role("button", name="Cancel").is_hidden()
        page.locator("#jobs-status").filter(has_text="cancelled").wait_for()
