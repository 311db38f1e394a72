"""``quarry token create | list | revoke``: an operator's commands over PostgreSQL.

They need the stores' credentials (``QUARRY_POSTGRES_DSN``, or the local stack's), not
a token: the operator makes a tenant's first token and can always revoke one, whatever
the API says. A tenant manages its own tokens over the API instead (``/v1/tokens``,
admin scope). ``create`` gives every scope unless ``--scope`` narrows it (as before
scopes existed); the token is printed once, on stdout's last line. ``list`` and
``revoke`` name tokens by their public id (``tk_...``), never by the token.

Must not import: torch, drivers (at module level: the client alone has no psycopg).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import EXIT_BAD_INPUT, err, guarded, out, settings
from cli.extras import missing
from config.endpoints import resolve_endpoints
from pipeline.jobs import check_tenant
from pipeline.tokens import SCOPES, check_scopes, parse_token_id

if TYPE_CHECKING:
    from pipeline.adapters.postgres.token_store import PgTokenStore

token_app = typer.Typer(
    help="API tokens (operator commands, over PostgreSQL).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")


def _store() -> PgTokenStore:
    try:
        from pipeline.adapters.postgres.token_store import PgTokenStore
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("token", exc)) from None
    endpoints = guarded(lambda: resolve_endpoints(settings()))
    return guarded(lambda: PgTokenStore(endpoints.postgres_dsn, pool_size=1))


@token_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the token acts for.")],
    label: Annotated[str, typer.Option(help="A note kept with the token.")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help=f"A scope the token holds ({', '.join(SCOPES)}); repeat it for more."
            " Default: every scope.",
        ),
    ] = None,
) -> None:
    """Create an API token for TENANT; it is printed once, on the last line (an operator's
    command: it writes to PostgreSQL, so it needs the full install)."""
    guarded(lambda: check_tenant(tenant))
    scopes = guarded(lambda: check_scopes(scope or SCOPES))
    store = _store()
    try:
        issued = guarded(lambda: store.issue(tenant, label, scopes))
    finally:
        store.close()
    err.print(
        f"token {issued.record.token_id} for tenant {tenant!r}, scopes"
        f" {', '.join(scopes)} (shown once; stored hashed):",
        markup=False,
    )
    sys.stdout.write(issued.token + "\n")


@token_app.command("list")
def list_(
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's tokens. Default: every tenant's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The tokens (revoked ones too), newest first: id, tenant, label, scopes, created,
    last used (to the minute), revoked. Never a token."""
    if tenant is not None:
        guarded(lambda: check_tenant(tenant))
    store = _store()
    try:
        found = guarded(lambda: store.list_tokens(tenant))
    finally:
        store.close()
    if as_json:
        out.print(json.dumps([t.public() for t in found], indent=2), markup=False)
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    if tenant is None:
        table.add_column("tenant")
    for name in ("label", "scopes", "created", "last used", "revoked"):
        table.add_column(name)
    for token in found:
        times = [_minute(t) for t in (token.created_at, token.last_used_at, token.revoked_at)]
        table.add_row(
            token.token_id,
            *([token.tenant] if tenant is None else []),
            token.label,
            ", ".join(token.scopes),
            times[0],
            times[1] or "never",
            times[2],
        )
    out.print(table)


def _minute(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tk_...), as listed.")],
    tenant: Annotated[
        str | None, typer.Option(help="Refuse unless the token is this tenant's.")
    ] = None,
) -> None:
    """Revoke a token for good. The API refuses it at once in new processes and within
    10 s in running ones (each keeps answers that long)."""
    if parse_token_id(token_id) is None:
        err.print(f"quarry: error: {token_id[:40]!r} is not a token id (tk_...)", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    store = _store()
    try:
        revoked = guarded(lambda: store.revoke_id(token_id, tenant))
    finally:
        store.close()
    if revoked is None:
        where = f" of tenant {tenant!r}" if tenant else ""
        err.print(f"quarry: error: no token {token_id}{where}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    when = revoked.public()["revoked_at"]
    sys.stdout.write(f"{revoked.token_id} of tenant {revoked.tenant} revoked at {when}\n")
