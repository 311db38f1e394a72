"""``quarry repo delete NAME``: delete a repository from every store (through the API);
``quarry repo refs NAME`` lists its refs and ``quarry repo delete-ref NAME REF`` deletes one.

Prints the deletion's id (``--json``: the API's answer). With ``--wait`` it follows the
deletion to its end. Exit codes: 0 done (or queued, without ``--wait``); 1 the deletion
failed; 2 a bad argument, an unknown repository, or one with a job in progress (409);
3 the API cannot be reached (or stopped answering while followed).

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from cli.console import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, err, guarded
from cli.jobs import api_client
from pipeline.errors import TransientError

POLL_S = 0.5
API_GRACE_S = 60.0  # how long --wait polls an API that does not answer before it gives up

repo_app = typer.Typer(
    help="Repositories: list a repository's refs, delete a ref, delete a repository.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(repo_app, name="repo")


def _follow(client: Any, deletion_id: str) -> dict[str, Any]:
    answered = time.monotonic()
    while True:
        try:
            status: dict[str, Any] = guarded(
                lambda: client.repo_deletion(deletion_id), passing=TransientError
            )
        except TransientError as exc:
            if time.monotonic() - answered > API_GRACE_S:
                err.print(f"quarry: error: {exc} (for over {API_GRACE_S:.0f} s)", markup=False)
                raise typer.Exit(EXIT_UNAVAILABLE) from None
            time.sleep(2 * POLL_S)
            continue
        answered = time.monotonic()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(POLL_S)


@repo_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The repository name.")],
    *,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the deletion to its end.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete NAME's rows, vectors, graph and the content no other repository holds. The
    repository disappears from listings and search at once; the rest goes in the
    background. Needs a token with the admin scope."""
    client = api_client()
    queued = guarded(lambda: client.delete_repo(name))
    deletion_id = str(queued["deletion_id"])
    if not wait:
        sys.stdout.write(json.dumps(queued) + "\n" if as_json else f"{deletion_id}\n")
        return
    if not as_json:
        err.print(f"deletion {deletion_id} of {name}", markup=False)
    final = _follow(client, deletion_id)
    if as_json:
        sys.stdout.write(json.dumps(final) + "\n")
    else:
        counters = ", ".join(f"{k} {v}" for k, v in sorted(final["counters"].items()))
        err.print(f"{final['status']}: removed {counters or 'nothing'}", markup=False)
        if final.get("error"):
            err.print(f"error: {final['error']}", markup=False)
        sys.stdout.write(f"{deletion_id}\n")
    raise typer.Exit(EXIT_OK if final["status"] == "done" else EXIT_FAILED)


@repo_app.command("refs")
def refs(
    name: Annotated[str, typer.Argument(help="The repository name.")],
    *,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """NAME's refs (branches, tags, pull requests), the default ref first: the commit
    each holds, its files, when it was published."""
    found = guarded(lambda: api_client().refs(name))
    if as_json:
        sys.stdout.write(json.dumps(found) + "\n")
        return
    for ref in found["refs"]:
        mark = " (default)" if ref["default"] else ""
        sys.stdout.write(
            f"{ref['name']}{mark}\t{ref['commit'][:12]}\t{ref['files']} files"
            f"\t{ref['published_at']}\n"
        )


@repo_app.command("delete-ref")
def delete_ref(
    name: Annotated[str, typer.Argument(help="The repository name.")],
    ref: Annotated[str, typer.Argument(help="The ref: feature/x or refs/heads/feature/x.")],
    *,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete one ref of NAME (not its default ref); what no other ref holds is freed."""
    gone = guarded(lambda: api_client().delete_ref(name, ref))
    if as_json:
        sys.stdout.write(json.dumps(gone) + "\n")
        return
    err.print(
        f"deleted ref {gone['ref']} of {gone['repo']} (commit {gone['commit'][:12]});"
        f" {gone['chunks_deleted']} chunk rows freed",
        markup=False,
    )
