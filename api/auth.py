"""Bearer-token authentication: every route but /healthz, the OpenAPI pages and the web
page's files (/ui, which hold no data) needs a token, and a token names its tenant.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.state import ApiState

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


Tenant = Annotated[str, Depends(tenant)]
State = Annotated[ApiState, Depends(state_of)]
