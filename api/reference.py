"""``/docs`` (Swagger UI) and ``/openapi.json``: the API's reference, public and offline.

The page's script and style come from the ``swagger-ui-bundle`` package and are served
by the API itself under ``/docs/assets/`` (an allow-list of three files, nothing else of
the package): a browser that cannot reach a CDN renders it, and its Content-Security-
Policy lets it load nothing from anywhere else. The document describes the routes, not
anyone's data; every call made from the page ("Try it out") still needs a bearer token,
entered with the page's Authorize button and kept only in the page's memory.
``QUARRY_API_DOCS=false`` answers 404 for all of it.

Must not import: workers/, torch, celery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

# Relative URLs throughout: the page works behind a proxy that mounts the API under a
# prefix (/docs -> docs/assets/..., ../openapi.json is not needed: "openapi.json" from
# /docs resolves to /openapi.json).
_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Quarry API reference</title>
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/init.js"></script>
</body>
</html>
"""

# Outside the page (the CSP allows no inline script). persistAuthorization stays off:
# the token is never written to the browser's storage.
_INIT: Final = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null,
});
"""

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def swagger_ui_folder() -> Path:
    """Where the installed ``swagger-ui-bundle`` keeps Swagger UI's files."""
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def add_reference(app: FastAPI, *, enabled: bool) -> None:
    """Add ``/openapi.json``, ``/docs`` and ``/docs/assets/{name}`` to ``app``: public when
    ``enabled``, 404 otherwise (the routes exist either way, so the answer is the same
    whatever the path)."""
    folder = swagger_ui_folder() if enabled else None
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}

    def available() -> None:
        if not enabled:
            raise HTTPException(404, "the API reference is turned off (QUARRY_API_DOCS=false)")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        available()
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        available()
        return HTMLResponse(_PAGE, headers={**headers, "Cache-Control": "no-cache"})

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        available()
        if name == "init.js":
            return Response(_INIT, media_type="text/javascript", headers=headers)
        media_type = _ASSETS.get(name)
        if media_type is None or folder is None:
            raise HTTPException(404, f"no asset named {name[:100]!r}")
        return FileResponse(
            folder / name,
            media_type=media_type,
            headers={**headers, "Cache-Control": "public, max-age=86400"},
        )
