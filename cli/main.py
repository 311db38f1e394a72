"""`quarry`: the console script. Each command is a thin shell over a use case.

Errors Quarry raises on purpose end as one line on stderr (exit 2 for bad settings or
input, 1 for the rest), never as a traceback.

Must not import: torch at module level (commands import heavy parts when they run).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from cli import credentials, jobs, push_hooks, quotas, reconcile, repos, search, tokens, webhooks
from cli.console import EXIT_CODES_HELP, err, exit_code_of, guarded, out, settings
from cli.extras import register_command, register_group
from pipeline.errors import PipelineError

app = typer.Typer(
    name="quarry",
    help="Quarry: index code repositories into a code graph and a hybrid search index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog=EXIT_CODES_HELP,
)
dev_app = typer.Typer(
    help="The local stack: real services on loopback, no docker.", no_args_is_help=True
)
config_app = typer.Typer(help="Settings: check them, document them.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(config_app, name="config")


# --- dev -------------------------------------------------------------------------------
@dev_app.command("up")
def dev_up(quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False) -> None:
    """Start the local stack (idempotent); returns when every service is healthy."""
    from devstack.stack import Stack

    def report(line: str) -> None:
        if not quiet:
            err.print(line, markup=False)

    stack = Stack(settings(), report=report)
    guarded(stack.up)
    if not quiet:
        err.print(f"stack is up (data folder {stack.layout.root})", markup=False)


@dev_app.command("down")
def dev_down() -> None:
    """Stop everything `quarry dev up` started."""
    from devstack.stack import Stack

    stopped = guarded(Stack(settings()).down)
    err.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running", markup=False)


@dev_app.command("status")
def dev_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each service with its pid, address and health (and the local stack's Flower login).
    Exit 1 if any is unhealthy."""
    from devstack.stack import Stack

    status = guarded(Stack(settings()).status)
    services = status["services"]
    workers = services["workers"]
    healthy = all(v["healthy"] for k, v in services.items() if k != "workers") and all(
        w["healthy"] for w in workers.values()
    )
    if as_json:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        table = Table("service", "healthy", "pid", "address / queues")
        for name, entry in services.items():
            if name == "workers":
                continue
            address = entry["url"]
            if "login" in entry:
                address += f"\nlogin: {entry['login']['user']} / {entry['login']['password']}"
            table.add_row(name, _mark(entry["healthy"]), str(entry["pid"] or "-"), address)
        for name, entry in workers.items():
            metrics_url = entry.get("metrics_url")
            table.add_row(
                f"worker {name}",
                _mark(entry["healthy"]),
                str(entry["pid"] or "-"),
                ", ".join(entry["queues"]) + (f"\nmetrics: {metrics_url}" if metrics_url else ""),
            )
        out.print(table)
    raise typer.Exit(0 if healthy else 1)


@dev_app.command("env")
def dev_env() -> None:
    """Print `export` lines for the local stack: eval "$(quarry dev env)". Exit 2, printing
    nothing, where no local stack was made (its data folder holds no secrets)."""
    from config.endpoints import read_stack_secrets, secrets_path
    from devstack.stack import Stack

    current = settings()
    if guarded(lambda: read_stack_secrets(current)) is None:
        err.print(
            f"quarry: error: no local stack here: {secrets_path(current)} does not exist"
            " (run `quarry dev up`, or set QUARRY_DATA_DIR to the stack's data folder)",
            markup=False,
        )
        raise typer.Exit(2)
    for line in guarded(Stack(current).env_lines):
        sys.stdout.write(line + "\n")


def _mark(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


# --- migrate ---------------------------------------------------------------------------
@app.command("migrate")
def migrate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would run.")] = False,
) -> None:
    """Apply pending SQL and Cypher migrations (the stack runs this on `dev up`)."""
    from config.endpoints import resolve_endpoints
    from devstack.migrate import migrate_all

    endpoints = guarded(lambda: resolve_endpoints(settings()))
    for line in guarded(lambda: migrate_all(endpoints, dry_run=dry_run)):
        sys.stdout.write(line + "\n")


# --- config ----------------------------------------------------------------------------
@config_app.command("check")
def config_check() -> None:
    """Validate the settings; print them with secrets hidden."""
    from config.docs import effective_settings

    for line in effective_settings(settings()):
        sys.stdout.write(line + "\n")


@config_app.command("docs")
def config_docs() -> None:
    """Print every setting with its default as a Markdown table."""
    from config.docs import settings_table

    sys.stdout.write(settings_table())


# --- worker ----------------------------------------------------------------------------
@app.command("worker")
def worker(
    profile: Annotated[
        str, typer.Option(help="cpu (ingest, chunk, write, webhook), embed, all")
    ] = "all",
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues, overrides profile")
    ] = None,
) -> None:
    """Run a Celery worker for one profile (GPU hosts run `--profile embed`)."""
    from config.queues import ALL_QUEUES, queues_for_profile
    from workers.main import run_worker

    try:
        chosen = queues_for_profile(profile)
    except ValueError as exc:
        err.print(f"quarry: error: {exc}", markup=False)
        raise typer.Exit(2) from None
    if queues:
        chosen = tuple(q.strip() for q in queues.split(",") if q.strip())
        unknown = [q for q in chosen if q not in ALL_QUEUES]
        if unknown:
            err.print(
                f"quarry: error: unknown queue {unknown[0]!r} (known: {', '.join(ALL_QUEUES)})",
                markup=False,
            )
            raise typer.Exit(2)
    settings()
    run_worker(profile, chosen)


register_command(app, "chunk", "cli.chunk")
jobs.register(app)
tokens.register(app)
quotas.register(app)
credentials.register(app)
reconcile.register(app)
repos.register(app)
search.register(app)
webhooks.register(app)
push_hooks.register(app)
register_command(app, "eval", "cli.eval")
register_command(app, "model", "cli.model")
register_group(app, "bench", "bench.commands", "bench_app")
register_group(app, "dlq", "cli.dlq", "dlq_app")


def main() -> None:
    try:
        app()
    except PipelineError as exc:  # one a command left unguarded (a benchmark's stack)
        err.print(f"quarry: error: {exc}", markup=False)
        sys.exit(exit_code_of(exc))


if __name__ == "__main__":
    main()
