"""The web page's files over HTTP, without a browser and without services: /ui needs no
token while /v1 still does; the assets come with their content types, a
Content-Security-Policy that allows no inline code, and versioned, cacheable URLs."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.routes_ui import UI_DIR, UiAssets, ui_assets
from config.settings import load_settings
from tests.stackutil import unreachable_stores_env


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The app on stores that are not there: the page must not need them."""
    from api.app import create_app

    env = {**unreachable_stores_env(), "QUARRY_SEARCH_WARM_ON_START": "false"}
    settings = load_settings(env=env)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class _Page(HTMLParser):
    """The tags and attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _directives(csp: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in csp.split(";") if part.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


@pytest.mark.parametrize("path", ["/ui", "/ui/"])
def test_the_page_needs_no_token_and_forbids_inline_code(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    csp = _directives(response.headers["content-security-policy"])
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    page = _parsed(response.text)
    assert not page.script_text, "inline script or style"
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"<{tag}> has a style attribute"
        assert not [a for a in attrs if a.startswith("on")], f"<{tag}> has an inline handler"
        if tag == "script":
            assert attrs.get("type") == "module" and attrs.get("src")


def test_v1_still_needs_a_token(client: TestClient) -> None:
    for path in ("/v1/repos", "/v1/jobs", "/v1/search?q=x"):
        assert client.get(path).status_code == 401, path
    bad = client.get("/v1/repos", headers={"Authorization": "Basic abc"})
    assert bad.status_code == 401


def test_every_input_of_the_page_has_a_label(client: TestClient) -> None:
    page = _parsed(client.get("/ui").text)
    labelled = {attrs.get("for") for tag, attrs in page.tags if tag == "label"}
    fields = [attrs for tag, attrs in page.tags if tag in ("input", "select", "textarea")]
    assert fields
    assert [f.get("id") for f in fields if f.get("id") not in labelled] == []


def test_assets_are_served_under_their_version_with_their_types(client: TestClient) -> None:
    version = ui_assets().version
    html = client.get("/ui").text
    linked = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html)
    assert sorted(linked) == [f"/ui/static/{version}/app.css", f"/ui/static/{version}/app.js"]
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    imported: set[str] = set()
    for name in sorted(ui_assets().files):
        response = client.get(f"/ui/static/{version}/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == types[Path(name).suffix]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "content-security-policy" in response.headers
        imported |= set(re.findall(r'from "\./([\w.-]+)"', response.text))
    # every module the page imports is served
    assert imported and imported <= set(ui_assets().files)


def test_an_unknown_asset_is_404_and_another_version_is_not_cached(client: TestClient) -> None:
    missing = client.get(f"/ui/static/{ui_assets().version}/nope.js")
    assert missing.status_code == 404 and "nope.js" in missing.json()["detail"]
    assert client.get(f"/ui/static/{ui_assets().version}/index.html").status_code == 404
    assert client.get(f"/ui/static/{ui_assets().version}/..%2Fapp.py").status_code == 404
    old = client.get("/ui/static/0123456789abcdef/app.js")
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"


def test_the_version_follows_the_contents(tmp_path: Path) -> None:
    copy = tmp_path / "ui"
    shutil.copytree(UI_DIR, copy)
    before = UiAssets.load(copy)
    assert before.version == UiAssets.load(copy).version == ui_assets().version
    (copy / "app.css").write_text((copy / "app.css").read_text() + "\n/* changed */\n")
    assert UiAssets.load(copy).version != before.version


def test_the_page_links_under_the_root_path() -> None:
    page = ui_assets().index('/quarry"x')
    assert f'src="/quarry&quot;x/ui/static/{ui_assets().version}/app.js"' in page
    assert 'data-api-base="/quarry&quot;x"' in page


def test_the_scripts_never_parse_data_as_html() -> None:
    for name, content in ui_assets().files.items():
        text = content.decode()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in text, f"{name} uses {risky}"
