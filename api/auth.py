"""Bearer tokens and their scopes: every route needs a token but the probes (/healthz,
/readyz: status only), the web page's files (/ui) and the API reference (/docs,
/openapi.json; see api/reference.py), which hold no data; a token names its tenant.

Each route declares the one scope it needs (pipeline/tokens.py), in its signature:
``tenant: ReadTenant`` / ``WriteTenant`` / ``AdminTenant``, or ``caller: Admin`` where
the route needs the caller's grant. Without a valid token: 401; with a token that lacks
the scope: 403 naming it. tests/security/test_auth_required.py checks every route of the
app for both, against its own table of which route needs which scope.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from api import audit
from api.state import ApiState
from pipeline.errors import StoreUnavailableError
from pipeline.tokens import SCOPES, Scope, TokenGrant

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token: `quarry token create` or `POST /v1/tokens`. Each route needs"
    " one scope of the token: read, write or admin (the route's description says which).",
)


async def state_of(request: Request) -> ApiState:
    """The app's state (async, as every dependency here: a sync one costs a hop through
    the thread pool, which a burst of searches fills; bench/results/search.md, Load)."""
    return _state(request)


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.quarry
    return state


def _refuse(request: Request, status: int, detail: str, header: str) -> HTTPException:
    audit.note(request, reason=detail)
    return HTTPException(status, detail, headers={"WWW-Authenticate": header})


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenGrant:
    """The caller's token: tenant, id and scopes; 401 without a valid token. A token this
    process answered for lately is checked on the event loop; else the token store is
    asked from the thread pool."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _refuse(request, 401, "missing bearer token", 'Bearer realm="quarry"')
    state = _state(request)
    kept, found = state.kept_grant(credentials.credentials)
    if not kept:
        found = await run_in_threadpool(state.grant_for, credentials.credentials)
    if found is None:
        raise _refuse(request, 401, "invalid or revoked token", 'Bearer error="invalid_token"')
    return found


def _scope_check(scope: Scope) -> Callable[..., Awaitable[TokenGrant]]:
    async def check(request: Request, grant: Annotated[TokenGrant, Depends(caller)]) -> TokenGrant:
        audit.note(request, tenant=grant.tenant, token_id=grant.token_id, scope=scope)
        if not grant.allows(scope):
            held = ", ".join(s for s in SCOPES if s in grant.scopes)
            raise _refuse(
                request,
                403,
                f"this token lacks the {scope!r} scope that {request.method} {request.url.path}"
                f" needs (it has: {held}); use a token with it",
                f'Bearer error="insufficient_scope", scope="{scope}"',
            )
        return grant

    check.__name__ = f"needs_{scope}_scope"
    return check


_CHECKS: dict[str, Callable[..., Awaitable[TokenGrant]]] = {s: _scope_check(s) for s in SCOPES}


def scoped(scope: Scope) -> Callable[..., Awaitable[TokenGrant]]:
    """The dependency that lets a token with ``scope`` through (one function per scope,
    so that :func:`route_scopes` can read a route's scope back)."""
    return _CHECKS[scope]


def _tenant_of(scope: Scope) -> Callable[..., Awaitable[str]]:
    async def tenant(grant: TokenGrant) -> str:
        return grant.tenant

    # Set as objects: a string annotation (this module's __future__ import) could not
    # name the closure's ``scope`` when FastAPI resolves it.
    tenant.__annotations__ = {"grant": Annotated[TokenGrant, Depends(scoped(scope))]}
    tenant.__annotations__["return"] = str
    return tenant


ReadTenant = Annotated[str, Depends(_tenant_of("read"))]
WriteTenant = Annotated[str, Depends(_tenant_of("write"))]
AdminTenant = Annotated[str, Depends(_tenant_of("admin"))]
Admin = Annotated[TokenGrant, Depends(scoped("admin"))]
State = Annotated[ApiState, Depends(state_of)]


def route_scopes(route: BaseRoute | None) -> set[str]:
    """The scopes a route's dependencies check (one for a route that needs a token, none
    for a public one)."""
    dependant = getattr(route, "dependant", None)
    pending = [] if dependant is None else [dependant]
    found = set()
    while pending:
        current = pending.pop()
        found |= {s for s, check in _CHECKS.items() if current.call is check}
        pending.extend(current.dependencies)
    return found


def needs_token(request: Request) -> bool:
    """Whether the route that matched ``request`` checks a token."""
    return bool(route_scopes(request.scope.get("route")))


async def authorize(request: Request) -> TokenGrant:
    """The token checks of the matched route outside of FastAPI's dependencies (an
    exception handler that runs before them): the same HTTPException without a valid
    token, or with one that lacks the route's scope."""
    credentials = await _bearer(request)
    grant = await caller(request, credentials)
    for scope in sorted(route_scopes(request.scope.get("route"))):
        grant = await _CHECKS[scope](request, grant)
    return grant


async def bearer_tenant(request: Request) -> str | None:
    """The tenant of the request's token, or None: no token, an invalid one, or a token
    store that cannot answer now. For routes that answer everyone (``/readyz``) and only
    say more to a caller with a token."""
    try:
        credentials = await _bearer(request)
        grant = await caller(request, credentials)
    except (HTTPException, StoreUnavailableError):
        return None
    return grant.tenant
