"""API tokens' scopes and public records: what a token may do and how it is listed.

A token holds one or more scopes, each independent of the others (admin does not imply
read): ``read`` (search, the graph, repositories, jobs' status and list, metrics),
``write`` (enqueue and cancel jobs, uploads, reconcile) and ``admin`` (the tenant's
tokens and git credentials). Which route needs which is declared by the route
(api/auth.py). A token is listed and revoked by its ``token_id`` (``tk_`` and 16 hex
digits, random, unrelated to the token), never by the token or its digest.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pipeline.errors import InvalidInputError

Scope = Literal["read", "write", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("read", "write", "admin")
TOKEN_ID_PREFIX: Final = "tk_"  # noqa: S105 (marks a public token id, not a secret)
# last_used_at is written when a token authenticates and was last written longer ago
# than this: a busy token costs one row update a minute, not one per request.
LAST_USED_RESOLUTION_S: Final = 60
_TOKEN_ID: Final = re.compile(r"^tk_[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a valid token authenticates as: its tenant, its public id and its scopes."""

    tenant: str
    token_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's public record (times in epoch seconds); never the token or its digest."""

    token_id: str
    tenant: str
    label: str
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    def public(self) -> dict[str, Any]:
        """The JSON shape of the API and ``quarry token list --json``."""
        return {
            "id": self.token_id,
            "tenant": self.tenant,
            "label": self.label,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
            "revoked": self.revoked_at is not None,
        }


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token, shown once, and its public record."""

    token: str
    record: ApiToken


def check_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes in their canonical order, duplicates dropped; :class:`InvalidInputError`
    naming an unknown scope, or when there is none."""
    given = list(scopes)
    unknown = [s for s in given if s not in SCOPES]
    if unknown:
        raise InvalidInputError(
            f"unknown token scope {unknown[0]!r}: use {', '.join(map(repr, SCOPES))}"
        )
    if not given:
        raise InvalidInputError(f"a token needs at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


def new_token_id() -> str:
    return TOKEN_ID_PREFIX + secrets.token_hex(8)


def parse_token_id(value: str) -> str | None:
    """``value`` when it is a well-formed token id, else None."""
    return value if _TOKEN_ID.match(value) else None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
