"""``/ui``: the web page (a search playground and a jobs dashboard), served from ``api/ui/``.

The page holds no data, so it needs no token: the user types one into its sign-in form,
the page keeps it in the tab's sessionStorage and sends it to the ``/v1`` API, which
checks it as it checks every caller. The assets are plain ES modules and CSS kept in the
repository (no build step, nothing fetched from the network); their URLs carry a hash of
their contents (``/ui/static/<version>/app.js``), so a browser may cache them forever
and a new release is never mixed with an old one. Nothing is inline: the
Content-Security-Policy lets the page load scripts and styles from this origin only.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import functools
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["ui"], include_in_schema=False)

UI_DIR = Path(__file__).with_name("ui")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# data: images only for the empty favicon; inline SVG is built with DOM calls, so it
# needs no relaxation. Every /v1 call goes to this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class UiAssets:
    """The page's files: the index template and the assets by name, with ``version``
    a hash of all of them."""

    version: str
    index_template: str
    files: dict[str, bytes]

    @classmethod
    def load(cls, folder: Path = UI_DIR) -> UiAssets:
        files = {
            path.name: path.read_bytes()
            for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix in MEDIA_TYPES
        }
        index = (folder / "index.html").read_text(encoding="utf-8")
        digest = hashlib.sha256(index.encode())
        for name, content in files.items():
            digest.update(name.encode() + b"\0" + content + b"\0")
        return cls(digest.hexdigest()[:16], index, files)

    def index(self, base: str) -> str:
        """The page, its asset URLs under ``base`` (the app's root path)."""
        return self.index_template.replace("{{base}}", html.escape(base)).replace(
            "{{version}}", self.version
        )


@functools.cache
def ui_assets() -> UiAssets:
    return UiAssets.load()


@router.get("/ui", response_class=HTMLResponse)
@router.get("/ui/", response_class=HTMLResponse)
def ui_page(request: Request) -> HTMLResponse:
    """The page; it needs no token (it holds no data). Its links are absolute (under
    the app's root path), so ``/ui`` and ``/ui/`` serve it alike."""
    base = str(request.scope.get("root_path", "")).rstrip("/")
    headers = SECURITY_HEADERS | {"Cache-Control": "no-cache"}
    return HTMLResponse(ui_assets().index(base), headers=headers)


@router.get("/ui/static/{version}/{name}")
def ui_asset(version: str, name: str) -> Response:
    """An asset; cached for good under its own version, revalidated under another (a
    page from an older release still gets today's file rather than a 404)."""
    assets = ui_assets()
    content = assets.files.get(name)
    if content is None:
        raise HTTPException(404, f"no asset named {name!r}")
    cache = IMMUTABLE if version == assets.version else "no-cache"
    return Response(
        content,
        media_type=MEDIA_TYPES[Path(name).suffix],
        headers=SECURITY_HEADERS | {"Cache-Control": cache},
    )
