"""``quarry reconcile REPO``: find where PostgreSQL and the graph disagree with the
repository's searchable snapshot, and repair it (through the API).

Exit codes: 0 consistent (or repaired, with ``--wait``: the re-index job is done); 1
the stores disagree and ``--dry-run`` changed nothing, or the re-index job failed; 2 a
bad argument or an unknown repository.

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.console import err, guarded
from cli.jobs import api_client, follow, print_summary

KINDS = (
    ("vectors_missing", "chunk rows missing in PostgreSQL"),
    ("graph_missing", "missing or out of date in the graph"),
    ("vector_ghosts", "rows of files not in the snapshot"),
    ("vector_stale", "rows of an older version"),
    ("graph_ghosts", "graph nodes of files not in the snapshot"),
)


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile)


def _print_drift(repo: str, result: dict[str, Any]) -> None:
    drift = result["drift"]
    if drift["consistent"]:
        err.print(f"{repo}: both stores agree with the snapshot ({drift['files']} files)")
        return
    err.print(f"{repo}: the stores disagree with the snapshot ({drift['files']} files)")
    for key, what in KINDS:
        paths = drift[key]
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            err.print(f"  {len(paths)} {what}: {shown}", markup=False)
    deleted = result.get("deleted") or {}
    if any(deleted.values()):
        err.print(
            f"  deleted {deleted.get('vector_rows', 0)} rows and "
            f"{deleted.get('graph_nodes', 0)} graph nodes",
        )


def reconcile(
    repo: Annotated[str, typer.Argument(help="The repository name.")],
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; change nothing.")
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Re-index every file, not only those a store lacks.")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(help="Where to read the files again (default: the last done job's)."),
    ] = None,
    ref: Annotated[str | None, typer.Option(help="The git ref of --source.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the re-index job.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check that PostgreSQL and the graph hold what REPO's searchable snapshot lists,
    and repair them: ghost rows and nodes are deleted, missing files re-indexed."""
    if source is not None and Path(source).exists():
        source = str(Path(source).resolve())  # the API takes absolute local paths
    client = api_client()
    body = {"dry_run": dry_run, "all": everything, "source": source, "ref": ref}
    result = guarded(lambda: client.reconcile(repo, body))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _print_drift(repo, result)
    job_id = result.get("job_id")
    if job_id is None:
        raise typer.Exit(1 if dry_run and not result["drift"]["consistent"] else 0)
    if not as_json:
        sys.stdout.write(f"{job_id}\n")
    if not wait:
        return
    final = follow(client, job_id, quiet=as_json)
    if not as_json:
        print_summary(final)
    raise typer.Exit(0 if final["status"] == "done" else 1)
