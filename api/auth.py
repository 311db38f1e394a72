"""Bearer-token authentication: every route needs a token but the probes (/healthz,
/readyz: status only), the web page's files (/ui) and the API reference (/docs,
/openapi.json; see api/reference.py), which hold no data; a token names its tenant.
tests/security/test_auth_required.py checks every route of the app.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.state import ApiState
from pipeline.errors import StoreUnavailableError

_bearer = HTTPBearer(auto_error=False, description="An API token: `quarry token create`.")


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.quarry
    return state


def tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant; 401 without a valid token."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            401, "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="quarry"'}
        )
    found = state_of(request).tenant_for(credentials.credentials)
    if found is None:
        raise HTTPException(
            401,
            "invalid or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return found


async def request_tenant(request: Request) -> str:
    """:func:`tenant` outside of FastAPI's dependencies (an exception handler that runs
    before them); the same HTTPException without a valid token."""
    credentials = await _bearer(request)
    return await run_in_threadpool(tenant, request, credentials)


async def bearer_tenant(request: Request) -> str | None:
    """The tenant of the request's token, or None: no token, an invalid one, or a token
    store that cannot answer now. For routes that answer everyone (``/readyz``) and only
    say more to a caller with a token."""
    try:
        return await request_tenant(request)
    except (HTTPException, StoreUnavailableError):
        return None


def needs_token(request: Request) -> bool:
    """Whether the route that matched ``request`` depends on :func:`tenant`."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    pending = [] if dependant is None else [dependant]
    while pending:
        current = pending.pop()
        if current.call is tenant:
            return True
        pending.extend(current.dependencies)
    return False


Tenant = Annotated[str, Depends(tenant)]
State = Annotated[ApiState, Depends(state_of)]
