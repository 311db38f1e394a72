"""The jobs page in a real browser (Debian's chromium, driven by Playwright) against
the session stack's API: the job enqueued from the form is followed until done; the
table has one row per job, filters by repository and status and pages on the server;
a row's details open on demand; Cancel stops a running job. Screenshots of the table at
1280 px and 390 px go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from tests.ui.pages import (
    NARROW,
    WIDE,
    api_get,
    enqueue_from_form,
    no_horizontal_overflow,
    opened,
    shot,
    sign_in,
)
from tests.workers.jobs_api import corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

CANCEL_CORPUS_FILES = 150


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
    assert indexed["overall"] == [100, 100]
    bars = {label: (value, top) for label, value, top in indexed["bars"]}
    written, todo = bars["Files written"]
    assert written == todo == indexed["files"]
    chunks, total = bars["Chunks embedded or cached"]
    assert chunks == total > 0
    assert indexed["stage"] == "done" and indexed["eta"] == ""


@pytest.fixture(scope="module")
def many_jobs(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A repository with 12 jobs (distinct one-file commits), every other one cancelled
    at once: enough for two pages of 10, of more than one status."""
    repo = f"ui-many-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers) as api:
        for i in range(12):
            source = tmp_path_factory.mktemp("many")
            (source / "m.py").write_text(f"def m{i}():\n    return {i}\n")
            created = api.post("/v1/jobs", json={"source": str(source), "repo": repo})
            assert created.status_code == 202, created.text
            if i % 2:
                api.delete(f"/v1/jobs/{created.json()['job_id']}").raise_for_status()
    return repo


def rows_of(page: Any) -> list[dict[str, str]]:
    return page.locator("#jobs > tr.job").evaluate_all(
        """rows => rows.map(r => ({id: r.dataset.jobId, status: r.dataset.status,
             repo: r.querySelector("th").textContent,
             state: r.querySelector(".job-state").textContent}))"""
    )


def wait_rows(page: Any, count: int) -> list[dict[str, str]]:
    page.wait_for_function(
        "n => document.querySelectorAll('#jobs > tr.job').length === n", arg=count
    )
    return rows_of(page)


def settled(page: Any, timeout_ms: float = 30_000) -> None:
    """Wait (a while, not failing) until no listed job is under way: the small jobs
    finish, so that the screenshot shows finished rows too."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(
            "() => [...document.querySelectorAll('#jobs > tr.job')]"
            ".every(r => ['done', 'failed', 'cancelled'].includes(r.dataset.status))",
            timeout=timeout_ms,
        )


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "390"])
def test_the_jobs_table_filters_by_status_and_pages(
    browser: Any,
    endpoints: Endpoints,
    indexed: dict[str, Any],
    many_jobs: str,
    viewport: dict[str, int],
) -> None:
    width = viewport["width"]
    newest = [j["job_id"] for j in api_get(endpoints, "/v1/jobs", repo=many_jobs, limit=50)["jobs"]]
    assert len(newest) == 12
    with opened(browser, endpoints, viewport) as page:
        sign_in(page, endpoints.api_token)
        page.get_by_role("button", name="Jobs", exact=True).click()
        # one compact row per job, its state said once ("queued", not "queued · queued")
        page.locator("#jobs > tr.job").first.wait_for()
        for row in rows_of(page):
            parts = row["state"].split(" · ")
            assert len(parts) == len(set(parts)) and parts[0] == row["status"], row
        page.locator("#jobs-page-size").select_option("10")
        page.locator("#jobs-repo").select_option(many_jobs)
        first = wait_rows(page, 10)
        assert [r["id"] for r in first] == newest[:10]
        assert page.locator("#jobs-page").inner_text() == "1–10 and older"
        assert page.locator("#jobs-pager").is_visible()
        assert page.locator("#jobs-newer").is_disabled()
        no_horizontal_overflow(page)
        page.locator("#jobs-older").click()
        second = wait_rows(page, 2)
        assert [r["id"] for r in second] == newest[10:]
        assert page.locator("#jobs-page").inner_text() == "11–12"
        assert page.locator("#jobs-older").is_disabled()
        page.locator("#jobs-newer").click()
        assert [r["id"] for r in wait_rows(page, 10)] == newest[:10]
        # the status filter asks the server, and starts again at the newest
        cancelled = api_get(endpoints, "/v1/jobs", repo=many_jobs, status="cancelled")["jobs"]
        page.locator("#jobs-filter").select_option("cancelled")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#jobs > tr.job')]"
            ".every(r => r.dataset.status === 'cancelled')"
        )
        shown = wait_rows(page, min(10, len(cancelled)))
        assert [r["id"] for r in shown] == [j["job_id"] for j in cancelled][:10]
        page.locator("#jobs-filter").select_option("done")
        page.locator("#jobs-repo").select_option(indexed["repo"])
        (done,) = wait_rows(page, 1)
        assert done["status"] == "done" and done["repo"] == indexed["repo"]
        page.locator("#jobs-filter").select_option("failed")
        page.locator("#jobs-status").filter(has_text="No jobs match").wait_for()
        assert rows_of(page) == []
        # the screenshot: every repository, any status, a page of 10
        page.locator("#jobs-repo").select_option("")
        page.locator("#jobs-filter").select_option("")
        wait_rows(page, 10)
        settled(page)
        no_horizontal_overflow(page)
        if width < 900:  # stacked under the form
            form = page.locator("#job-form").bounding_box()
            table = page.locator("#jobs-table").bounding_box()
            assert table["y"] >= form["y"] + form["height"]
        shot(page, f"jobs-{width}")


def test_a_row_shows_its_details_on_demand(
    browser: Any, endpoints: Endpoints, indexed: dict[str, Any]
) -> None:
    with opened(browser, endpoints, NARROW) as page:
        sign_in(page, endpoints.api_token)
        page.get_by_role("button", name="Jobs", exact=True).click()
        page.locator("#jobs-repo").select_option(indexed["repo"])
        (row,) = wait_rows(page, 1)
        toggle = page.locator("#jobs > tr.job").get_by_role("button", name="Details of the job")
        details = page.locator(f"#job-{row['id']}-details")
        assert details.is_hidden() and toggle.get_attribute("aria-expanded") == "false"
        assert page.locator("#jobs-pager").is_hidden()  # one page: no pager
        toggle.click()
        details.wait_for(state="visible")
        assert toggle.get_attribute("aria-expanded") == "true"
        assert row["id"] in details.inner_text()
        no_horizontal_overflow(page)
        shot(page, "jobs-details-390")
        toggle.click()
        details.wait_for(state="hidden")


def test_cancel_stops_a_running_job_from_its_row(
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
            card.get_by_role("button", name="Cancel the job").click()
        assert answered.value.status == 200
        assert answered.value.json()["status"] == "cancelled"
        card.locator(".job-state").filter(has_text="cancelled").wait_for()
        assert card.get_attribute("data-status") == "cancelled"
        assert card.get_by_role("button", name="Cancel the job").is_hidden()
        page.locator("#jobs-status").filter(has_text="cancelled").wait_for()
