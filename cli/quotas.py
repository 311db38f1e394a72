"""``quarry quota show | set``: an operator's commands over PostgreSQL (pipeline/quotas.py).

Like ``quarry token``, they need the stores' credentials (``QUARRY_POSTGRES_DSN``, or the
local stack's), not a token: no API route sets a quota, so a tenant cannot raise its
own. A limit not set is the settings' default (``QUARRY_QUOTA_*``); ``--default NAME``
unsets one.

Must not import: torch, drivers (at module level: the client alone has no psycopg).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import EXIT_BAD_INPUT, err, guarded, out, settings
from cli.extras import missing
from config.endpoints import resolve_endpoints
from pipeline.jobs import check_tenant
from pipeline.quotas import Quota, check_limit_values, default_limits

if TYPE_CHECKING:
    from pipeline.adapters.postgres.quota_store import PgQuotaStore

# Not a Quota (nothing is used up): the tenant's search share, shown and set beside them.
SEARCH_CONCURRENCY = "search_concurrency"

quota_app = typer.Typer(
    help="Tenant quotas (operator commands, over PostgreSQL).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(quota_app, name="quota")


def _store() -> PgQuotaStore:
    try:
        from pipeline.adapters.postgres.quota_store import PgQuotaStore
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("quota", exc)) from None
    endpoints = guarded(lambda: resolve_endpoints(settings()))
    return guarded(lambda: PgQuotaStore(endpoints.postgres_dsn, pool_size=1))


@quota_app.command("show")
def show(
    tenant: Annotated[str, typer.Option(help="The tenant.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The tenant's quotas: limit (set, or the default), used and remaining; and its
    search concurrency (a share of each API process, nothing used up)."""
    guarded(lambda: check_tenant(tenant))
    store = _store()
    try:
        status = guarded(lambda: store.status(tenant, default_limits(settings())))
        overrides = guarded(lambda: store.overrides(tenant))
    finally:
        store.close()
    shown: dict[str, dict[str, int | bool]] = dict(status.public())
    shown[SEARCH_CONCURRENCY] = {"limit": status.limits.search_concurrency}
    for name, figures in shown.items():
        figures["set"] = overrides.get(name) is not None
    if as_json:
        out.print(json.dumps({"tenant": tenant, "quotas": shown}, indent=2), markup=False)
        return
    table = Table(title=f"quotas of tenant {tenant}")
    for column in ("quota", "limit", "used", "remaining"):
        table.add_column(column)
    for name, figures in shown.items():
        limit = f"{figures['limit']}" + ("" if figures["set"] else " (default)")
        if name == SEARCH_CONCURRENCY and not figures["limit"]:
            limit = "no bound" + ("" if figures["set"] else " (default)")
        used, left = (str(figures[k]) if k in figures else "-" for k in ("used", "remaining"))
        table.add_row(name, limit, used, left)
    out.print(table)


@quota_app.command("set")
def set_(
    *,
    tenant: Annotated[str, typer.Option(help="The tenant.")],
    concurrent_jobs: Annotated[
        int | None, typer.Option(min=0, help="Jobs queued or running at once.")
    ] = None,
    files_per_day: Annotated[
        int | None, typer.Option(min=0, help="Files indexed (added or changed) per UTC day.")
    ] = None,
    stored_chunks: Annotated[
        int | None, typer.Option(min=0, help="Chunks its repositories may hold.")
    ] = None,
    search_concurrency: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Its searches and graph reads running at once in each API process (more wait"
            " in its line); 0: no bound.",
        ),
    ] = None,
    default: Annotated[
        list[str] | None,
        typer.Option(
            "--default",
            help="Unset a limit: the default applies"
            f" ({', '.join([*(q.value for q in Quota), SEARCH_CONCURRENCY])}); repeat it for"
            " more.",
        ),
    ] = None,
) -> None:
    """Set limits of TENANT (the others keep theirs). Applies to new jobs at once; the
    X-Quota-Remaining headers and the search concurrency follow within
    quota_status_cache_s."""
    guarded(lambda: check_tenant(tenant))
    changes: dict[str, int | None] = {
        name: value
        for name, value in (
            ("concurrent_jobs", concurrent_jobs),
            ("files_per_day", files_per_day),
            ("stored_chunks", stored_chunks),
            (SEARCH_CONCURRENCY, search_concurrency),
        )
        if value is not None
    }
    for name in default or []:
        if name in changes:
            err.print(f"quarry: error: --default {name} and --{name.replace('_', '-')}: pick one")
            raise typer.Exit(EXIT_BAD_INPUT)
        changes[name] = None
    if not changes:
        err.print("quarry: error: nothing to set: give a limit or --default NAME", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    guarded(lambda: check_limit_values(changes))
    store = _store()
    try:
        now = guarded(lambda: store.set_limits(tenant, changes))
    finally:
        store.close()
    said = ", ".join(f"{k}={'default' if v is None else v}" for k, v in now.items())
    out.print(f"tenant {tenant}: {said}", markup=False)
