"""``quarry push-hook add | list | remove``: push webhooks of the tenant's repositories
(GitHub and GitLab), over the API (the token's tenant, admin scope).

``add`` prints the settings to paste into the platform on stderr and the hook's secret
alone on stdout (shown once: the API cannot show it again).

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.console import err, guarded, out
from cli.jobs import api_client

app = typer.Typer(
    help="Push webhooks: GitHub or GitLab pushes index their branch or tag.",
    no_args_is_help=True,
)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="push-hook")


def settings_to_paste(hook: dict[str, Any]) -> list[str]:
    """The platform's webhook form, field by field (the secret as the next line says)."""
    if hook["platform"] == "github":
        return [
            "GitHub: Settings > Webhooks > Add webhook",
            f"  Payload URL:   {hook['url']}",
            "  Content type:  application/json",
            "  Secret:        the line on stdout",
            "  Events:        Just the push event",
        ]
    return [
        "GitLab: Settings > Webhooks > Add new webhook",
        f"  URL:           {hook['url']}",
        "  Secret token:  the line on stdout",
        "  Trigger:       Push events (all branches) and Tag push events",
    ]


@app.command("add")
def add(
    platform: Annotated[str, typer.Option(help="github or gitlab.")],
    clone_url: Annotated[str, typer.Option(help="The URL Quarry clones (https or ssh).")],
    repo: Annotated[
        str | None, typer.Option(help="The repository's name (default: from the URL).")
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option(help="The git credential that covers the URL (private repositories)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole answer as JSON.")] = False,
) -> None:
    """Register a push hook; print where to paste what, and its secret (shown once)."""
    body = {"platform": platform, "clone_url": clone_url, "repo": repo, "credential": credential}
    client = api_client()
    try:
        hook = guarded(lambda: client.add_push_hook({k: v for k, v in body.items() if v}))
    finally:
        client.close()
    if as_json:
        sys.stdout.write(json.dumps(hook) + "\n")
        return
    err.print(f"push hook {hook['hook_id']} for {hook['repo']!r}", markup=False)
    for line in settings_to_paste(hook):
        err.print(line, markup=False)
    sys.stdout.write(hook["secret"] + "\n")


@app.command("list")
def list_(
    repo: Annotated[str | None, typer.Option(help="Only this repository's hooks.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The tenant's push hooks and their URLs, never their secrets."""
    client = api_client()
    try:
        found = guarded(lambda: client.push_hooks(repo))
    finally:
        client.close()
    if as_json:
        out.print(json.dumps(found, indent=2, sort_keys=True), markup=False)
        return
    table = Table("hook", "repo", "platform", "clone url", "url")
    for h in found:
        table.add_row(h["hook_id"], h["repo"], h["platform"], h["clone_url"], h["url"])
    out.print(table)


@app.command("remove")
def remove(hook_id: Annotated[str, typer.Argument(help="The hook's id (ph_...).")]) -> None:
    """Remove a push hook: its URL answers 404 from then on."""
    client = api_client()
    try:
        guarded(lambda: client.remove_push_hook(hook_id))
    finally:
        client.close()
    err.print(f"push hook {hook_id} removed", markup=False)
