"""Every route of the real app answers 401 without a valid token, but the public ones
(PUBLIC: the probes, the reference, the web page's static files and the push-webhook
receivers, whose deliveries their hook's secret proves), and 403 naming the scope it
needs to a token without that scope, over real HTTP against the session stack's API.

The routes are read from the app factory (``create_app().routes``), so a route added
later is checked without anyone listing it. Each gets a plausible request (path
parameters filled, a body where one is expected) sent with each header variant below;
the same request with a valid token is not a 401 (so the 401 comes from the token
check, not from the request), and creates nothing.

Public, and why (each is checked to serve only files of the repository, no data):
* ``/healthz``: the liveness probe; answers ``{"status": "ok"}`` and nothing else.
* ``/ui``, ``/ui/``, ``/ui/static/{version}/{name}``: the web page's shell and its
  JS/CSS, read from ``api/ui/``. A browser loads them before the user has typed a token
  into the page's sign-in form; the page then sends the token to /v1 like any client.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Route

from api.app import create_app
from api.auth import route_scopes
from api.routes_ui import UI_DIR, ui_assets
from config.endpoints import Endpoints
from config.settings import QuarrySettings
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.tokens import SCOPES

pytestmark = pytest.mark.timeout(120)

PUBLIC = {
    ("GET", "/healthz"): "liveness probe, no data",
    ("GET", "/ui"): "the web page's shell (static HTML), no data",
    ("GET", "/ui/"): "the web page's shell (static HTML), no data",
    ("GET", "/ui/static/{version}/{name}"): "the web page's JS and CSS files, no data",
    ("GET", "/readyz"): "readiness probe: ready or unavailable, nothing more without a token",
    ("GET", "/openapi.json"): "the API's reference: routes and schemas, no data",
    ("GET", "/docs"): "the reference's page (static HTML), no data",
    ("GET", "/docs/assets/{name}"): "Swagger UI's files and the page's script, no data",
    # GitHub and GitLab cannot send a bearer token: each delivery is proven by its hook's
    # secret (a signature, a token), tests/api/test_push_hooks_api.py; no data answered.
    ("POST", "/v1/hooks/github/{hook_id}"): "push webhook: the hook's signature proves it",
    ("POST", "/v1/hooks/gitlab/{hook_id}"): "push webhook: the hook's token proves it",
}
# The scope each route needs, written here (not read from the app) so that a route whose
# scope changes, or a new route, fails until this table says what it should need.
SCOPE_OF = {
    ("GET", "/metrics"): "read",
    ("GET", "/v1/search"): "read",
    ("GET", "/v1/graph/symbol"): "read",
    ("GET", "/v1/repos"): "read",
    ("GET", "/v1/repos/{name:path}"): "read",
    ("GET", "/v1/jobs"): "read",
    ("GET", "/v1/jobs/{job_id}"): "read",
    ("POST", "/v1/jobs"): "write",
    ("POST", "/v1/jobs/archive"): "write",
    ("DELETE", "/v1/jobs/{job_id}"): "write",
    ("POST", "/v1/repos/{name:path}/reconcile"): "write",
    ("DELETE", "/v1/repos/{name:path}"): "admin",
    ("GET", "/v1/repo-deletions/{deletion_id}"): "read",
    ("GET", "/v1/refs"): "read",
    ("DELETE", "/v1/refs"): "write",
    ("GET", "/v1/credentials"): "admin",
    ("POST", "/v1/credentials"): "admin",
    ("PUT", "/v1/credentials/{credential}"): "admin",
    ("DELETE", "/v1/credentials/{credential}"): "admin",
    ("GET", "/v1/webhooks/secret"): "admin",
    ("POST", "/v1/webhooks/secret/rotate"): "admin",
    ("GET", "/v1/tokens"): "admin",
    ("POST", "/v1/tokens"): "admin",
    ("DELETE", "/v1/tokens/{token_id}"): "admin",
    ("GET", "/v1/push-hooks"): "admin",
    ("POST", "/v1/push-hooks"): "admin",
    ("DELETE", "/v1/push-hooks/{hook_id}"): "admin",
}
PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
PATH_VALUES = {
    "job_id": str(uuid.uuid4()),
    "name": "acme/widgets",
    "version": "0",
    "token_id": "tk_0000000000000000",
    "deletion_id": str(uuid.uuid4()),
    "hook_id": "ph_" + "0" * 32,
}


def _routes(settings: QuarrySettings) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, those of included routers too (FastAPI
    includes them lazily: ``app.routes`` lists the routers), HEAD aside (it is GET)."""
    return list(_declared_scopes(settings))


def _declared_scopes(settings: QuarrySettings) -> dict[tuple[str, str], set[str]]:
    """Every route of the app, as :func:`_routes` lists them, with the scopes its
    dependencies check (none for a public route)."""
    app = create_app(settings.model_copy(update={"search_warm_on_start": False}))
    found: dict[tuple[str, str], set[str]] = {}
    for context in iter_route_contexts(app.routes):
        # A mount or a websocket would need a check of its own: fail until it has one.
        route = context.route
        assert isinstance(route, Route), f"{route!r}: not an HTTP route; check its auth here"
        path = context.path
        assert path and context.methods, f"{route!r}: no path or no methods"
        for method in sorted(context.methods):
            if method != "HEAD":
                assert (method, path) not in found, (method, path)
                found[method, path] = route_scopes(route)
    return found


def _request(method: str, path: str, scratch: Path) -> dict[str, Any]:
    """A plausible request for a route, harmless with a valid token (it creates nothing:
    a dry run, an empty upload, an unknown job or repository)."""
    url = PARAMETER.sub(lambda m: PATH_VALUES.get(m.group(1), "x"), path)
    request: dict[str, Any] = {"method": method, "url": url}
    if (method, path) == ("POST", "/v1/jobs"):
        request["params"] = {"dry_run": "true"}
        request["json"] = {"source": str(scratch), "repo": "acme/widgets"}
    elif (method, path) == ("POST", "/v1/jobs/archive"):
        request["params"] = {"repo": "acme/widgets"}
        request["content"] = b""
    elif path.endswith("/reconcile"):
        request["json"] = {"dry_run": True}
    elif (method, path) == ("DELETE", "/v1/repos/{name:path}"):
        # A name no test indexes under any tenant: the valid token's answer is a 404.
        request["url"] = f"/v1/repos/never-indexed-{uuid.uuid4().hex}"
    elif path == "/v1/refs":
        # A repository no test indexes: the valid token's answer is a 404.
        request["params"] = {"repo": f"never-indexed-{uuid.uuid4().hex}", "ref": "feature/x"}
    elif path == "/v1/search":
        request["params"] = {"q": "ledger", "mode": "lexical"}
    elif path == "/v1/graph/symbol":
        request["params"] = {"repo": "acme/widgets", "name": "ledger"}
    elif (method, path) == ("POST", "/v1/tokens"):
        request["json"] = {"label": "never made", "scopes": []}  # refused: no scope
    elif (method, path) == ("POST", "/v1/push-hooks"):
        request["json"] = {"platform": "none", "clone_url": "https://x.test/a/b.git"}  # refused
    elif path == "/v1/webhooks/secret/rotate":
        request["json"] = {"overlap_s": -1}  # refused: rotates nothing
    elif method in ("POST", "PUT", "PATCH"):
        request["json"] = {}
    return request


def _broken(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request with a malformed JSON body, and with no parameters at all."""
    bare = {"method": request["method"], "url": request["url"]}
    return {
        "malformed JSON body": {
            **request,
            "content": b'{"source": ',
            "json": None,
            "headers": {"Content-Type": "application/json"},
        },
        "no parameters": {**bare, "headers": {}},
    }


@pytest.fixture(scope="module")
def revoked(token_store: PgTokenStore, secrets_used: list[str]) -> str:
    """A token revoked before its first use (the API keeps answers 10 s)."""
    token = token_store.create(f"sec-revoked-{uuid.uuid4().hex[:8]}")
    assert token_store.revoke(token)
    secrets_used.append(token)
    return token


@pytest.fixture(scope="module")
def http(endpoints: Endpoints) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoints.api_url, timeout=60) as client:
        yield client


def _variants(valid: str, revoked: str) -> dict[str, dict[str, Any]]:
    """Header variants that must all be refused; ``valid`` appears only where it is not
    presented as a bearer token."""
    unknown = "qk_" + uuid.uuid4().hex + uuid.uuid4().hex[:11]
    return {
        "no header": {},
        "empty header": {"headers": {"Authorization": ""}},
        "basic scheme": {"headers": {"Authorization": "Basic cXVhcnJ5OnF1YXJyeQ=="}},
        "bearer, no token": {"headers": {"Authorization": "Bearer"}},
        "token without scheme": {"headers": {"Authorization": valid}},
        "valid token with a suffix": {"headers": {"Authorization": f"Bearer {valid} x"}},
        "valid token in a query parameter": {"params": {"access_token": valid, "token": valid}},
        "valid token in another header": {"headers": {"X-Api-Key": valid, "X-Token": valid}},
        "unknown token": {"headers": {"Authorization": f"Bearer {unknown}"}},
        "revoked token": {"headers": {"Authorization": f"Bearer {revoked}"}},
    }


def test_every_route_but_the_public_ones_answers_401_without_a_valid_token(
    stack_settings: QuarrySettings,
    endpoints: Endpoints,
    http: httpx.Client,
    revoked: str,
    tmp_path: Path,
) -> None:
    routes = [r for r in _routes(stack_settings) if r not in PUBLIC]
    # The ones the issue names, at least: the list is read from the app, not written here.
    paths = set(routes)
    assert {
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("DELETE", "/v1/jobs/{job_id}"),
        ("GET", "/v1/repos"),
        ("GET", "/v1/search"),
        ("GET", "/v1/graph/symbol"),
        ("GET", "/metrics"),
    } <= paths
    variants = _variants(endpoints.api_token, revoked)
    refused: list[str] = []
    for method, path in routes:
        request = _request(method, path, tmp_path)
        for name, extra in variants.items():
            merged = {
                **request,
                **extra,
                "params": {**request.get("params", {}), **extra.get("params", {})},
            }
            response = http.request(**merged)
            where = f"{method} {path} with {name}"
            assert response.status_code == 401, (
                f"{where}: {response.status_code} {response.text[:200]}"
            )
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), where
            assert set(response.json()) == {"detail"}, where
            assert endpoints.api_token not in response.text, where
            refused.append(where)
        # A request that is itself bad (a malformed body, required parameters missing)
        # is refused for the token first: FastAPI reads a body before dependencies.
        for name in ("no header", "unknown token"):
            headers = variants[name].get("headers", {})
            for shape, broken in _broken(request).items():
                response = http.request(**{**broken, "headers": {**broken["headers"], **headers}})
                where = f"{method} {path}, {shape}, with {name}"
                assert response.status_code == 401, f"{where}: {response.status_code}"
                refused.append(where)
        allowed = http.request(
            **request, headers={"Authorization": f"Bearer {endpoints.api_token}"}
        )
        assert allowed.status_code != 401, f"{method} {path}: the valid token is refused"
        assert allowed.status_code < 500, f"{method} {path}: {allowed.text[:300]}"
    assert len(refused) == len(routes) * (len(variants) + 2 * 2)
    print(
        f"\n{len(routes)} routes x ({len(variants)} header variants + 2 bad requests x 2)"
        f" = {len(refused)} 401s"
    )


def test_only_the_probes_the_reference_and_the_web_pages_files_are_public_and_hold_no_data(
    stack_settings: QuarrySettings, http: httpx.Client
) -> None:
    routes = _routes(stack_settings)
    public = set(routes) & set(PUBLIC)
    assert public == set(PUBLIC), "a public route was removed: update PUBLIC"
    assert http.get("/healthz").json() == {"status": "ok"}
    assets = ui_assets()
    for path in ("/ui", "/ui/"):
        page = http.get(path)
        assert page.status_code == 200
        assert page.text == assets.index(""), f"{path} is not the static shell"
    names = sorted(p.name for p in UI_DIR.iterdir() if p.suffix in (".js", ".css"))
    assert names and set(names) == set(assets.files)
    for name in names:
        for version in (assets.version, "older"):
            asset = http.get(f"/ui/static/{version}/{name}")
            assert asset.status_code == 200
            assert asset.content == (UI_DIR / name).read_bytes(), name
    assert http.get("/ui/static/x/secrets.json").status_code == 404
    # A push hook's URL without its hook answers 404 and nothing more.
    for platform in ("github", "gitlab"):
        unknown = http.post(f"/v1/hooks/{platform}/ph_{'0' * 32}", content=b"{}")
        assert unknown.status_code == 404 and set(unknown.json()) == {"detail"}
    assert http.get("/ui/static/x/..%2F..%2Fconfig%2Fsettings.py").status_code == 404
    # The probe says ready and nothing else without a token: no store, address or version.
    assert http.get("/readyz").json() == {"status": "ready"}
    # The reference: the document, the page and three files of Swagger UI, nothing else.
    assert "/v1/search" in http.get("/openapi.json").json()["paths"]
    assert "swagger-ui" in http.get("/docs").text
    assert http.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    for name in (
        "index.html",
        "swagger-ui.js.map",
        "..%2F..%2Fconfig%2Fsettings.py",
        "secrets.json",
    ):
        assert http.get(f"/docs/assets/{name}").status_code == 404, name


@pytest.fixture(scope="module")
def scoped_tokens(token_store: PgTokenStore, secrets_used: list[str]) -> dict[str, str]:
    """One tenant's tokens, each holding one scope (``"read"``...) or all but one
    (``"-read"``...)."""
    tenant = f"sec-scopes-{uuid.uuid4().hex[:8]}"
    made = {}
    for scope in SCOPES:
        made[scope] = token_store.create(tenant, f"only {scope}", [scope])
        made[f"-{scope}"] = token_store.create(
            tenant, f"all but {scope}", [s for s in SCOPES if s != scope]
        )
    secrets_used.extend(made.values())
    return made


def test_every_route_declares_the_scope_of_the_table(stack_settings: QuarrySettings) -> None:
    declared = _declared_scopes(stack_settings)
    assert {r for r, scopes in declared.items() if not scopes} == set(PUBLIC)
    assert {r: s for r, s in declared.items() if s} == {r: {s} for r, s in SCOPE_OF.items()}


def test_every_route_refuses_a_token_without_its_scope_with_403_naming_it(
    stack_settings: QuarrySettings,
    http: httpx.Client,
    scoped_tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    routes = [r for r in _routes(stack_settings) if r not in PUBLIC]
    assert set(routes) == set(SCOPE_OF)
    refused = 0
    for method, path in routes:
        needed = SCOPE_OF[method, path]
        request = _request(method, path, tmp_path)
        lacking = [scoped_tokens[s] for s in SCOPES if s != needed] + [scoped_tokens[f"-{needed}"]]
        for token in lacking:
            headers = {"Authorization": f"Bearer {token}"}
            for shape, sent in {"plausible": request, **_broken(request)}.items():
                response = http.request(
                    **{**sent, "headers": {**sent.get("headers", {}), **headers}}
                )
                where = f"{method} {path} ({shape}) with a token lacking {needed!r}"
                assert response.status_code == 403, (
                    f"{where}: {response.status_code} {response.text}"
                )
                assert set(response.json()) == {"detail"}, where
                detail = response.json()["detail"]
                assert detail.startswith(f"this token lacks the {needed!r} scope"), where
                assert token not in response.text, where
                assert f'scope="{needed}"' in response.headers["WWW-Authenticate"], where
                refused += 1
        allowed = http.request(
            **request, headers={"Authorization": f"Bearer {scoped_tokens[needed]}"}
        )
        assert allowed.status_code not in (401, 403), f"{method} {path}: {allowed.text[:300]}"
        assert allowed.status_code < 500, f"{method} {path}: {allowed.text[:300]}"
    print(
        f"\n{len(routes)} routes x 3 tokens without the scope x 3 request shapes = {refused} 403s"
    )
