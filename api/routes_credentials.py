"""``/v1/credentials``: the tenant's git credentials for private repositories.

Add (``POST``), rotate (``PUT /{credential}``), list (``GET``) and remove (``DELETE /{credential}``)
an HTTPS token or an SSH deploy key with its pinned known_hosts lines. A clone uses the
tenant's credential whose scope (a URL prefix) covers the job's URL most narrowly
(pipeline/credentials/scopes.py); a job names no credential. No answer ever holds a
secret: the list gives names, kinds, scopes, usernames, key fingerprints and pinned host
keys. Another tenant's credential answers 404 like a name never used. Without a
credentials key (``QUARRY_CREDENTIALS_KEY``) every route answers 503 naming it.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel

from api.auth import AdminTenant, State
from pipeline.credentials.cipher import KEY_SETTING
from pipeline.credentials.material import CredentialKind
from pipeline.credentials.vault import CredentialVault
from pipeline.errors import InvalidInputError

router = APIRouter(prefix="/v1/credentials", tags=["credentials"])
PREFIX = router.prefix


class CredentialCreate(BaseModel):
    """A credential: ``token`` (and optionally ``username``, default ``x-access-token``)
    for ``https_token``; ``private_key`` and ``known_hosts`` for ``ssh_key``. ``scope``:
    the URL prefix it applies to (``https://host/org``, ``ssh://git@host:2222/org``)."""

    name: str
    kind: str
    scope: str
    token: str | None = None
    username: str | None = None
    private_key: str | None = None
    known_hosts: str | None = None


class CredentialRotate(BaseModel):
    """The new secret; ``username`` and ``known_hosts`` stay as they were when omitted."""

    token: str | None = None
    username: str | None = None
    private_key: str | None = None
    known_hosts: str | None = None


def _vault(state: State) -> CredentialVault:
    vault = state.credentials
    if vault is None:
        raise HTTPException(
            503,
            f"credentials are disabled: the server has no credentials key (set {KEY_SETTING}"
            " or the secrets file credentials_key)",
        )
    return vault


def _secret(kind: CredentialKind, token: str | None, private_key: str | None) -> str:
    wanted, other = (
        ("token", private_key) if kind is CredentialKind.HTTPS_TOKEN else ("private_key", token)
    )
    given = token if kind is CredentialKind.HTTPS_TOKEN else private_key
    if other is not None:
        unwanted = "private_key" if wanted == "token" else "token"
        raise InvalidInputError(f"{unwanted}: not taken by a {kind.value} credential")
    if given is None:
        raise InvalidInputError(f"{wanted}: required for a {kind.value} credential")
    return given


def _kind(text: str) -> CredentialKind:
    try:
        return CredentialKind(text)
    except ValueError:
        choices = ", ".join(k.value for k in CredentialKind)
        raise InvalidInputError(f"kind: use one of {choices}") from None


@router.post("", status_code=201)
def add_credential(body: CredentialCreate, tenant: AdminTenant, state: State) -> dict[str, Any]:
    """Add a credential (201); 409 when the tenant has one of that name or scope."""
    vault = _vault(state)
    kind = _kind(body.kind)
    if kind is CredentialKind.HTTPS_TOKEN and body.known_hosts:
        raise InvalidInputError("known_hosts: only an ssh_key credential pins host keys")
    record = vault.add(
        tenant,
        name=body.name,
        kind=kind,
        scope=body.scope,
        secret=_secret(kind, body.token, body.private_key),
        username=body.username,
        known_hosts=body.known_hosts,
    )
    return record.public()


@router.put("/{credential}")
def rotate_credential(
    credential: str, body: CredentialRotate, tenant: AdminTenant, state: State
) -> dict[str, Any]:
    """Replace the credential's secret (404 if the tenant has none of that name)."""
    vault = _vault(state)
    current = vault.get(tenant, credential)
    record = vault.rotate(
        tenant,
        credential,
        secret=_secret(current.kind, body.token, body.private_key),
        username=body.username,
        known_hosts=body.known_hosts,
    )
    return record.public()


@router.get("")
def list_credentials(tenant: AdminTenant, state: State) -> dict[str, Any]:
    """The tenant's credentials, without their secrets."""
    return {"credentials": [c.public() for c in _vault(state).list(tenant)]}


@router.delete("/{credential}", status_code=204)
def remove_credential(credential: str, tenant: AdminTenant, state: State) -> Response:
    """Remove a credential (204; 404 if the tenant has none of that name)."""
    _vault(state).remove(tenant, credential)
    return Response(status_code=204)
