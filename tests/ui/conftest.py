"""The browser of the web page's tests (Debian's chromium, driven by Playwright), and
the repository they search: enqueued from the jobs form and followed there until done.

A missing package or browser fails the tests (never skips), naming what to install.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from tests.ui.pages import CHROMIUM, WIDE, enqueue_from_form, opened, sign_in, watch
from tests.workers.jobs_api import corpus

# Enough of pathspec for util.match_file to have callers, callees and a container.
CORPUS_FILES = ("__init__.py", "util.py", "pattern.py", "pathspec.py", "backend.py")
# Markup in code: the page must show it as text (hostile.py is indexed with the rest).
HOSTILE = (
    "def render_banner():\n"
    '    """<img src=x onerror="window.pwned = 1"> <script>window.pwned = 2</script>"""\n'
    '    return "<b onmouseover=alert(1)>banner</b>"\n'
)
TERMINAL = frozenset({"done", "failed", "cancelled"})


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: pip install -e '.[dev]' "
            "(the browser is Debian's chromium package; never `playwright install`)",
            pytrace=False,
        )
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(apt-get install chromium; `make system-deps` does it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def indexed(
    browser: Any, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A small repository enqueued from the jobs form and followed there until done:
    its name and what the finished job's row showed."""
    source = tmp_path_factory.mktemp("ui") / "pathspec"
    source.mkdir()
    for name in CORPUS_FILES:
        shutil.copy(corpus() / name, source / name)
    (source / "hostile.py").write_text(HOSTILE, encoding="utf-8")
    repo = f"ui-{uuid.uuid4().hex[:8]}"
    with opened(browser, endpoints, WIDE) as page:
        sign_in(page, endpoints.api_token)
        row = enqueue_from_form(page, source, repo)
        seen = watch(page, row)
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/v1/jobs" in r.url else None)
        page.wait_for_timeout(2500)
        listed = httpx.get(
            f"{endpoints.api_url}/v1/jobs",
            params={"limit": 20},
            headers={"Authorization": f"Bearer {endpoints.api_token}"},
        ).json()["jobs"]
        row.get_by_role("button", name="Details of the job").click()
        details = page.locator(f"#job-{row.get_attribute('data-job-id')}-details")
        details.wait_for(state="visible")
        finished = {
            "others_under_way": any(j["status"] not in TERMINAL for j in listed),
            "repo": repo,
            "files": len(CORPUS_FILES) + 1,
            "seen": seen,
            "polls_after_done": polls,
            "state": row.locator(".job-state").inner_text(),
            "overall": row.locator("progress.overall").evaluate("b => [b.value, b.max]"),
            "bars": details.locator("progress").evaluate_all(
                "bars => bars.map(b => [b.labels[0].textContent, b.value, b.max])"
            ),
            "stage": details.locator("dd").first.inner_text(),
            "eta": row.locator(".eta").inner_text(),
            "cancel_visible": row.get_by_role("button", name="Cancel the job").is_visible(),
        }
    return finished
