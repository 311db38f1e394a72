"""The page's pure modules in a real browser, without services: the highlighter, the
graph's labels, name breaking, commit and job-state texts.

Playwright serves ``api/ui/`` under a made-up origin (``page.route``), so the modules run
as the page runs them (ES modules in Debian's chromium) with no stack started; each test
imports one and calls it through ``page.evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.routes_ui import MEDIA_TYPES, UI_DIR
from pipeline.search.lexical import identifier_parts
from pipeline.search.query import STOP_WORDS
from tests.ui.pages import ARTIFACTS

ORIGIN = "http://quarry.test"
# A tab with a body and the page's stylesheet, so that SVG text is measured in its font.
BLANK = (
    '<!doctype html><html><head><link rel="stylesheet" href="/app.css"></head><body></body></html>'
)


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))

    def serve(route: Any) -> None:
        name = route.request.url.removeprefix(ORIGIN + "/")
        path = UI_DIR / name
        if name == "":
            route.fulfill(body=BLANK, content_type="text/html")
        elif "/" not in name and path.suffix in MEDIA_TYPES and path.is_file():
            route.fulfill(body=path.read_bytes(), content_type=MEDIA_TYPES[path.suffix])
        else:
            route.fulfill(status=404, body="")

    tab.route(f"{ORIGIN}/**", serve)
    tab.goto(f"{ORIGIN}/")
    try:
        yield tab
    finally:
        context.close()
    assert errors == []


def call(page: Any, module: str, body: str, arg: Any = None) -> Any:
    """``body`` (a JS function body with ``m``, the module, and ``arg``) evaluated."""
    return page.evaluate(
        f"async (arg) => {{ const m = await import('/{module}'); {body} }}",
        arg,
    )


def marked(page: Any, query: str, text: str) -> list[str]:
    return call(  # type: ignore[no-any-return]
        page,
        "highlight.js",
        "const [q, t] = arg; return m.highlightRanges(t, m.queryTerms(q))"
        ".map(([a, b]) => t.slice(a, b));",
        [query, text],
    )


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # the cases: never a fragment inside a word
        ("check an instance", "if isinstance(x, Instance): pass", ["Instance"]),
        ("timeout", "class TimeoutSauce: timeout = 3", ["TimeoutSauce", "timeout"]),
        (
            "timeout",
            "self.timeout_s = connect_timeout + Timeouts",
            ["timeout_s", "connect_timeout"],
        ),
        # an identifier of the query matches whole and through its parts, never a prefix
        ("match_file", "def match_file(file): matched = files", ["match_file", "file"]),
        ("matchFile", "matchFile(match) ; rematch", ["matchFile", "match"]),
        ("MATCH", "match Match mAtCh matches", ["match", "Match", "mAtCh"]),
        (
            "HTTPServer",
            "class HTTPServer(BaseHTTPServer): http_server",
            ["HTTPServer", "BaseHTTPServer", "http_server"],
        ),
        ("__init__", "def __init__(self): init()", ["__init__", "init"]),
        ("utf8", "utf8Decode(utf8) utf-8", ["utf8Decode", "utf8"]),
        # stop words are not marked while the query has other words
        ("the parser", "the parser of the file", ["parser"]),
        ("the", "the parser", ["the"]),
        # non-ASCII words are whole tokens too
        ("café", "le café_noir et cafés", ["café_noir"]),
        ("größe", "Größe größer", ["Größe"]),
        # nothing to match
        ("", "anything", []),
        ("!!!", "a ! b", []),
        ("x", "", []),
    ],
)
def test_highlights_are_whole_tokens(page: Any, query: str, text: str, expected: list[str]) -> None:
    assert marked(page, query, text) == expected


def test_no_mark_starts_or_ends_inside_a_word(page: Any) -> None:
    text = (
        "def isinstance_check(TimeoutSauce, an, _an_, ann, x_an):\n"
        "    return matchFile(file_path) or fileMatch + 'an'"
    )
    for query in ("an", "timeout sauce", "file match", "path", "an file"):
        found = call(
            page,
            "highlight.js",
            "const [q, t] = arg; return m.highlightRanges(t, m.queryTerms(q));",
            [query, text],
        )
        for start, end in found:
            assert start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")
            assert end == len(text) or not (text[end].isalnum() or text[end] == "_")


@pytest.mark.parametrize(
    "identifier",
    ["getUserName", "parse_http_header", "HTTPServer", "utf8Decode", "__init__", "IOError2",
     "x", "ABC", "café_noir", "_private_Thing", "snake__case"],
)  # fmt: skip
def test_identifier_parts_are_those_of_the_lexical_index(page: Any, identifier: str) -> None:
    parts = call(page, "highlight.js", "return m.identifierParts(arg);", identifier)
    assert parts == identifier_parts(identifier)


def test_stop_words_are_those_of_the_search_query(page: Any) -> None:
    # every stop word alone is kept (nothing else is left), next to a real word dropped
    words = sorted(STOP_WORDS)
    kept = call(
        page,
        "highlight.js",
        "return arg.filter(w => m.queryTerms(w + ' parser').join() === 'parser');",
        words,
    )
    assert kept == words
    assert call(page, "highlight.js", "return m.queryTerms('parser size');") == ["parser", "size"]


def test_highlighted_text_is_never_parsed_as_html(page: Any) -> None:
    hostile = '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> &amp; img'
    result = call(
        page,
        "highlight.js",
        "const el = document.createElement('pre');"
        "el.append(m.highlighted(arg, m.queryTerms('img script onerror')));"
        "document.body.append(el);"
        "return [el.textContent, [...el.querySelectorAll('*')].map(e => e.tagName),"
        " [...el.querySelectorAll('mark')].map(e => e.textContent), window.pwned ?? null];",
        hostile,
    )
    text, tags, marks, pwned = result
    assert text == hostile
    assert set(tags) == {"MARK"}
    assert marks == ["img", "onerror", "script", "script", "img"]
    assert pwned is None


LONG = {
    "callers": [
        {"qualified_name": "requests.sessions.Session.add_header_and_retry_forever"},
        {"qualified_name": "requests.adapters.HTTPAdapter.add_headers"},
        {"qualified_name": "requests.models.PreparedRequest.prepare_headers"},
        {"qualified_name": "x.f"},
        {"qualified_name": "tests.test_requests.TestRequests.test_headers_with_None_not_sent"},
    ],
    "callees": [
        {"qualified_name": "requests.structures.CaseInsensitiveDict.__setitem__"},
        {"qualified_name": "requests.utils.check_header_validity"},
        {"qualified_name": "requests.models.PreparedRequest.prepare_headers"},
    ],
    "container": {"qualified_name": "requests.models.PreparedRequestWithAVeryLongClassName"},
}  # fmt: skip


@pytest.mark.parametrize("width", [300, 358, 640])
def test_graph_labels_are_whole_and_inside_their_boxes(page: Any, width: int) -> None:
    drawn = call(
        page,
        "graph.js",
        "document.body.replaceChildren(m.neighbourhoodGraph(arg.symbol, arg.hood, arg.width));"
        "const svg = document.querySelector('svg');"
        "return { width: svg.viewBox.baseVal.width, height: svg.viewBox.baseVal.height,"
        " nodes: [...svg.querySelectorAll('.node')].map(g => {"
        "  const r = g.querySelector('rect').getBBox();"
        "  return { role: g.dataset.role, name: g.dataset.name ?? null,"
        "   lines: [...g.querySelectorAll('text')].map(t => t.textContent),"
        "   box: [r.x, r.y, r.width, r.height],"
        "   texts: [...g.querySelectorAll('text')].map(t => {"
        "     const b = t.getBBox(); return [b.x, b.y, b.width, b.height]; }) }; }) };",
        {
            "symbol": "requests.models.PreparedRequest.prepare_headers",
            "hood": LONG,
            "width": width,
        },
    )
    assert drawn["width"] == width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    svg = page.locator("svg")
    svg.evaluate("(svg, width) => { svg.style.width = `${width}px`; }", width)  # 1 unit: 1 px
    svg.screenshot(path=str(ARTIFACTS / f"graph-long-names-{width}.png"))
    nodes = drawn["nodes"]
    for node in nodes:
        x, y, w, h = node["box"]
        assert x >= 0 and x + w <= width + 0.5 and y >= 0 and y + h <= drawn["height"] + 0.5
        for line in node["lines"]:
            assert "…" not in line and "..." not in line, node
        for tx, ty, tw, th in node["texts"]:  # measured in the page's font
            assert x <= tx and tx + tw <= x + w, node
            assert y <= ty and ty + th <= y + h + 1, node
        if node["name"]:  # the name's last part is all there, maybe over lines
            short = node["name"].rsplit(".", 1)[-1]
            assert short in "".join(node["lines"]), node
    boxes = [n["box"] for n in nodes]
    for i, (x1, y1, w1, h1) in enumerate(boxes):  # no two boxes overlap
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
    shown = [n for n in nodes if n["role"] in ("caller", "callee") and n["name"]]
    more = [n["lines"][0] for n in nodes if n["name"] is None]
    hidden = sum(int(line.split()[0].lstrip("+")) for line in more)
    assert len(shown) + hidden == len(LONG["callers"]) + len(LONG["callees"])


@pytest.mark.parametrize(
    ("name", "pieces"),
    [
        ("requests.Session.add_header", ["requests.", "Session.", "add_", "header"]),
        ("util.matchFile", ["util.", "match", "File"]),
        ("src/pkg/mod.py:12", ["src/", "pkg/", "mod.", "py:12"]),
        ("plain", ["plain"]),
    ],
)  # fmt: skip
def test_names_break_only_between_words(page: Any, name: str, pieces: list[str]) -> None:
    got = call(
        page,
        "dom.js",
        "const p = document.createElement('p'); p.append(...m.breakable(arg));"
        "return [...p.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent);",
        name,
    )
    assert got == pieces


@pytest.mark.parametrize(
    ("commit", "short"),
    [
        ("0123456789abcdef0123456789abcdef01234567", "0123456"),
        ("tree-6be4e66397fa48aa", "tree-6be4e66"),
        ("v1.2.3", "v1.2.3"),
        ("", ""),
    ],
)
def test_commits_are_shortened_for_titles(page: Any, commit: str, short: str) -> None:
    assert call(page, "dom.js", "return m.shortCommit(arg);", commit) == short


@pytest.mark.parametrize(
    ("status", "stage", "text"),
    [
        ("queued", "queued", "queued"),
        ("running", "embed", "running · embed"),
        ("running", "running", "running"),
        ("done", "done", "done"),
        ("failed", "write", "failed"),
        ("queued", "", "queued"),
    ],
)
def test_a_job_state_never_repeats_itself(page: Any, status: str, stage: str, text: str) -> None:
    got = call(page, "jobs.js", "return m.stateText(arg);", {"status": status, "stage": stage})
    assert got == text
