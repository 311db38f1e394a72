"""``/v1/tokens``: the tenant's API tokens, listed, created and revoked (admin scope).

A token is shown once, in the answer that creates it; afterwards it is named by its
public id (``tk_...``). A token grants only scopes it holds itself (403 otherwise), and
a tenant never sees nor revokes another tenant's token: that id answers 404 like one
never issued. A revocation applies at once in the API process that made it and within
``api.state.TOKEN_CACHE_S`` seconds in the others (each keeps answers that long).

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api import audit
from api.auth import Admin, State
from pipeline.errors import NotFoundError
from pipeline.tokens import SCOPES, Scope

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field("", max_length=200, description="A note kept with the token.")
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=len(SCOPES),
        description="What the token may do: read (search, graph, repositories, jobs),"
        " write (enqueue and cancel jobs, reconcile) and admin (tokens, git credentials)."
        " At most the scopes of the token that asks.",
    )


@router.get("")
def list_tokens(caller: Admin, state: State) -> dict[str, Any]:
    """The tenant's tokens, revoked ones too, newest first: id, label, scopes, when
    created, last used (to the minute) and revoked. Never a token or its digest."""
    return {"tokens": [t.public() for t in state.tokens.list_tokens(caller.tenant)]}


@router.post("", status_code=201)
def create_token(
    body: TokenCreate, caller: Admin, state: State, request: Request, response: Response
) -> dict[str, Any]:
    """A new token of the tenant, shown once under ``token`` (201); 403 when it would
    hold a scope the calling token does not."""
    beyond = [s for s in body.scopes if not caller.allows(s)]
    if beyond:
        detail = f"this token cannot grant the {beyond[0]!r} scope: it does not hold it"
        audit.note(request, reason=detail)
        raise HTTPException(403, detail)
    issued = state.tokens.issue(caller.tenant, body.label, body.scopes)
    response.headers["Cache-Control"] = "no-store"
    return {"token": issued.token, **issued.record.public()}


@router.delete("/{token_id}")
def revoke_token(token_id: str, caller: Admin, state: State) -> dict[str, Any]:
    """Revoke one of the tenant's tokens (the calling one too): its record, with
    ``revoked_at`` (the first revocation's, when revoked before); 404 when the tenant
    has no token of that id."""
    revoked = state.tokens.revoke_id(token_id, caller.tenant)
    if revoked is None:
        raise NotFoundError(f"no token {token_id[:40]!r} in this tenant")
    state.forget_token(revoked.token_id)
    return revoked.public()
