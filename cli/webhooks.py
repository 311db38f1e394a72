"""``quarry webhook secret [--rotate [--overlap-s S]]``: the tenant's webhook signing
secret, over the API (the token's tenant). The secret is printed alone on stdout, for
a receiver's configuration; the rest goes to stderr.

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cli.console import err, guarded
from cli.jobs import api_client

app = typer.Typer(help="Webhook signing: your tenant's secret.", no_args_is_help=True)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="webhook")


@app.command("secret")
def secret(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new secret current; print it.")
    ] = False,
    overlap_s: Annotated[
        float,
        typer.Option(
            min=0,
            max=30 * 24 * 3600,
            help="With --rotate: how long the old secret keeps signing beside the new one.",
        ),
    ] = 24 * 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="The whole answer as JSON.")] = False,
) -> None:
    """Print the secret your receivers verify deliveries with (X-Quarry-Signature-256)."""
    client = api_client()
    answer = guarded(
        (lambda: client.rotate_webhook_secret(overlap_s)) if rotate else client.webhook_secret
    )
    if as_json:
        sys.stdout.write(json.dumps(answer) + "\n")
        return
    err.print(f"generation {answer['generation']}", markup=False)
    if answer.get("previous_signs_until"):
        err.print(
            f"the previous secret signs too until {answer['previous_signs_until']}", markup=False
        )
    sys.stdout.write(answer["secret"] + "\n")
