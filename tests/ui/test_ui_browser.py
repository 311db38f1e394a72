"""The search page in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright (the Python package, with the system browser; nothing is
downloaded) against the session stack's API.

The repository that the jobs form indexed (tests/ui/conftest.py) is searched: titles
name the snapshot, highlights are whole tokens, markup in code stays text; a result is
opened and its graph neighbourhood checked (whole labels, names broken between words
only), with the mouse and with the keyboard alone, at 1280 px and 390 px wide.
Screenshots go to ``test-artifacts/ui/``. A missing browser or package fails the tests,
naming what to install.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from config.endpoints import Endpoints
from tests.ui.conftest import CORPUS_FILES
from tests.ui.pages import (
    NARROW,
    WIDE,
    api_get,
    no_horizontal_overflow,
    opened,
    search,
    shot,
    sign_in,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

# Each <mark> of a snippet with the characters either side of it: a mark that starts or
# ends inside a word has a letter, digit or "_" next to it.
MARK_EDGES = """code => {
  const out = [];
  const nodes = [...code.childNodes];
  nodes.forEach((node, i) => {
    if (node.nodeName !== "MARK") return;
    const before = i > 0 ? nodes[i - 1].textContent : "";
    const after = i < nodes.length - 1 ? nodes[i + 1].textContent : "";
    out.push([before.slice(-1), node.textContent, after.slice(0, 1)]);
  });
  return out;
}"""
# Each text piece of a name (between its <wbr>s) and the number of lines it is drawn
# on: more than one is a name broken inside a word.
PIECE_LINES = """link => [...link.childNodes].filter(n => n.nodeType === 3).map(n => {
  const range = document.createRange();
  range.selectNodeContents(n);
  const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
  return [n.textContent, tops.size];
})"""


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


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "390"])
def test_a_result_opens_with_its_neighbourhood_drawn(
    browser: Any, endpoints: Endpoints, indexed: dict[str, Any], viewport: dict[str, int]
) -> None:
    width = viewport["width"]
    repo = indexed["repo"]
    commit = api_get(endpoints, f"/v1/repos/{repo}")["searchable_commit"]
    with opened(browser, endpoints, viewport) as page:
        sign_in(page, endpoints.api_token)
        results = search(page, repo)
        first = results.first
        assert first.locator(".symbol").inner_text().endswith("match_file")
        # the title names the snapshot: repository @ short commit, then path and lines
        assert first.locator(".result-repo").inner_text() == repo
        ref = first.locator(".result-ref")
        assert ref.get_attribute("title") == f"commit {commit}"
        assert commit.startswith(ref.inner_text().lstrip("@").rstrip("…"))
        title = first.locator(".result-open").inner_text()
        assert re.fullmatch(rf"{repo}\s*@\S+\s+(\S+):\d+–\d+", title), title
        assert title.split()[-1].split(":")[0] in CORPUS_FILES
        assert "lexical" in first.locator(".badge").all_inner_texts()
        marks = first.locator("mark").all_inner_texts()
        assert "match_file" in marks
        # whole tokens only: no mark has a letter, digit or _ just before or after it
        for code in page.locator("#results .snippet code").all():
            for before, text, after in code.evaluate(MARK_EDGES):
                assert not re.match(r"\w", before) and not re.match(r"\w", after), (
                    before,
                    text,
                    after,
                )
        no_horizontal_overflow(page)
        shot(page, f"search-{width}", full_page=False)

        first.locator(".snippet").click()
        detail = page.locator("#detail")
        detail.wait_for(state="visible")
        assert page.locator("#detail-title").inner_text().endswith("match_file")
        assert "def match_file" in page.locator("#detail-snippet").inner_text()
        assert page.locator("#detail-where .result-repo").inner_text() == repo
        graph = page.locator("#detail-graph svg")
        assert graph.locator(".node-symbol").count() == 1
        assert graph.locator(".node-container").count() == 1
        callers = page.locator("#detail-callers li.symbol-item").count()
        callees = page.locator("#detail-callees li.symbol-item").count()
        assert callers + callees > 0
        drawn_width = float(graph.get_attribute("width"))
        assert drawn_width <= width
        # every neighbour is drawn, or counted in its row's "+N more"
        for role, count in (("caller", callers), ("callee", callees)):
            named = graph.locator(f".node-{role}[data-name]").count()
            more = graph.locator(f".node-{role}.node-more text").evaluate_all(
                "texts => texts.map(t => t.textContent)"
            )
            hidden = sum(int(t.split()[0].lstrip("+")) for t in more)
            assert named + hidden == count, (role, named, more, count)
        nodes = graph.locator(".node").count()
        assert graph.locator("line.edge").count() == nodes - 1
        # labels are whole: no ellipsis, each text inside its box
        fits = graph.locator(".node").evaluate_all(
            """nodes => nodes.map(g => {
              const r = g.querySelector("rect").getBBox();
              return [...g.querySelectorAll("text")].map(t => {
                const b = t.getBBox();
                return [t.textContent, b.x >= r.x && b.x + b.width <= r.x + r.width];
              });
            }).flat()"""
        )
        assert fits and all(inside and "…" not in text for text, inside in fits), fits
        names = graph.locator(".node-caller, .node-callee").evaluate_all(
            "nodes => nodes.map(n => n.dataset.name)"
        )
        listed_names = page.locator(
            "#detail-callers li.symbol-item, #detail-callees li.symbol-item"
        ).evaluate_all("items => items.map(i => i.dataset.name)")
        assert set(names) - {None} <= set(listed_names)
        # the neighbour lists break names between words only
        for link in page.locator("#detail .symbol-item .link").all():
            for piece, lines in link.evaluate(PIECE_LINES):
                assert lines == 1, (piece, lines)
        container = page.locator("#detail-container li.symbol-item")
        assert container.count() == 1
        assert (
            container.get_attribute("data-name")
            == page.locator("#detail-title").inner_text().rsplit(".", 1)[0]
        )
        box = detail.bounding_box()
        results_box = page.locator("#results").bounding_box()
        if width >= 900:  # side by side
            assert box["x"] >= results_box["x"] + results_box["width"] - 1
        else:  # the open result covers the screen
            assert box["x"] == 0 and box["width"] == width
        # the panel scrolls on its own: show its neighbourhood (side by side, the page
        # first scrolls the panel up to where it sticks)
        if width >= 900:
            page.evaluate("window.scrollTo(0, document.querySelector('#results').offsetTop - 12)")
        detail.evaluate("d => d.scrollTo(0, d.querySelector('#detail-graph').offsetTop - 45)")
        no_horizontal_overflow(page)
        shot(page, f"result-{width}", full_page=False)


def test_markup_in_code_and_in_the_query_is_shown_as_text(
    browser: Any, endpoints: Endpoints, indexed: dict[str, Any]
) -> None:
    query = '<img src=x onerror="window.pwned=3"> render_banner onerror'
    with opened(browser, endpoints, WIDE) as page:
        sign_in(page, endpoints.api_token)
        results = search(page, indexed["repo"], query)
        hostile = results.filter(has_text="render_banner").first
        code = hostile.locator(".snippet code")
        assert '<img src=x onerror="window.pwned = 1">' in code.inner_text()
        assert "<b onmouseover=alert(1)>banner</b>" in code.inner_text()
        assert code.locator("mark").all_inner_texts().count("onerror") == 1
        assert code.locator("*").evaluate_all("els => els.map(e => e.tagName)") == ["MARK"] * (
            code.locator("mark").count()
        )
        assert page.locator("#results img, #results script, #results b").count() == 0
        assert query in page.locator("#search-status").inner_text()
        assert page.locator("#search-status *").count() == 0
        hostile.locator(".result-open").click()
        page.locator("#detail").wait_for(state="visible")
        assert page.locator("#detail-snippet img, #detail-snippet b").count() == 0
        assert page.evaluate("window.pwned ?? null") is None


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
        shot(page, f"keyboard-{viewport['width']}", full_page=False)


def test_a_token_without_a_scope_the_page_needs_is_told_which(
    browser: Any, endpoints: Endpoints, tmp_path: Any
) -> None:
    from pipeline.adapters.postgres.token_store import PgTokenStore

    tenant = f"ui-scopes-{uuid.uuid4().hex[:8]}"
    with PgTokenStore(endpoints.postgres_dsn, pool_size=1) as store:
        writer = store.create(tenant, "ui write only", ["write"])
        reader = store.create(tenant, "ui read only", ["read"])
    with opened(browser, endpoints, WIDE) as page:
        page.get_by_label("API token").fill(writer)
        page.get_by_role("button", name="Sign in").click()
        error = page.locator("#login-error")
        error.filter(has_text="scope").wait_for()
        assert "lacks the 'read' scope" in error.inner_text()
        assert "needs a token with the read scope" in error.inner_text()
        assert page.evaluate("sessionStorage.getItem('quarry.token')") is None
        sign_in(page, reader)
        page.get_by_role("button", name="Jobs", exact=True).click()
        page.get_by_label("Source: a folder path or a git URL").fill(str(tmp_path))
        page.get_by_label("Repository name").fill(f"{tenant}-app")
        page.get_by_role("button", name="Enqueue").click()
        refused = page.locator("#job-form-error")
        refused.filter(has_text="Not enqueued").wait_for()
        assert "lacks the 'write' scope" in refused.inner_text()
        shot(page, "enqueue-refused-read-only-1280")
