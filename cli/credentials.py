"""``quarry credentials add | rotate | list | remove``: a tenant's git credentials for
private repositories, through the API; ``rekey``: the operator's re-encryption of every
tenant's credentials after a key rotation (PostgreSQL directly).

A secret is read from a file or from stdin (``-``), never from the command line, where
``ps`` and the shell's history would show it: ``--token-file`` for an HTTPS token (one
trailing newline dropped), ``--key-file`` for an SSH deploy key, with the server's host
key line(s) in ``--known-hosts-file`` (``ssh-keyscan`` output, checked out of band).

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.console import err, guarded, out, settings
from cli.extras import missing
from cli.jobs import api_client
from pipeline.errors import InvalidInputError

app = typer.Typer(
    help="Git credentials for private repositories (HTTPS tokens, SSH deploy keys).",
    no_args_is_help=True,
)

TokenFile = Annotated[
    str | None,
    typer.Option("--token-file", help="File holding the HTTPS token, or '-' for stdin."),
]
KeyFile = Annotated[
    str | None,
    typer.Option("--key-file", help="File holding the SSH private key, or '-' for stdin."),
]
KnownHostsFile = Annotated[
    Path | None,
    typer.Option(
        "--known-hosts-file", help="The server's host key line(s) to pin (ssh-keyscan output)."
    ),
]
Username = Annotated[
    str | None, typer.Option(help="HTTPS user name sent with the token (default x-access-token).")
]


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="credentials")


def read_secret(source: str, what: str) -> str:
    """The secret in file ``source`` (``-``: stdin), one trailing newline dropped."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what}: cannot read {source}: {exc}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _body(
    token_file: str | None, key_file: str | None, known_hosts_file: Path | None
) -> dict[str, Any]:
    if (token_file is None) == (key_file is None):
        raise InvalidInputError("give exactly one of --token-file or --key-file")
    body: dict[str, Any] = {}
    if token_file is not None:
        body["token"] = read_secret(token_file, "--token-file")
    if key_file is not None:
        body["private_key"] = read_secret(key_file, "--key-file")
    if known_hosts_file is not None:
        try:
            body["known_hosts"] = known_hosts_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"--known-hosts-file: {exc}") from None
    return body


def _show(record: dict[str, Any]) -> None:
    out.print(json.dumps(record, indent=2, sort_keys=True), markup=False)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name of your choice, e.g. github-deploy.")],
    *,
    scope: Annotated[
        str,
        typer.Option(help="URL prefix it applies to: https://host/org or ssh://git@host/org."),
    ],
    token_file: TokenFile = None,
    key_file: KeyFile = None,
    known_hosts_file: KnownHostsFile = None,
    username: Username = None,
) -> None:
    """Add a credential: an HTTPS token (--token-file) or an SSH deploy key (--key-file
    and --known-hosts-file). Jobs whose git URL lies under SCOPE clone with it."""
    body = guarded(lambda: _body(token_file, key_file, known_hosts_file))
    kind = "https_token" if token_file is not None else "ssh_key"
    body |= {"name": name, "kind": kind, "scope": scope}
    if username:
        body["username"] = username
    client = api_client()
    try:
        _show(guarded(lambda: client.add_credential(body)))
    finally:
        client.close()


@app.command("rotate")
def rotate(
    name: str,
    token_file: TokenFile = None,
    key_file: KeyFile = None,
    known_hosts_file: KnownHostsFile = None,
    username: Username = None,
) -> None:
    """Replace a credential's secret (and its pinned host keys with --known-hosts-file)."""
    body = guarded(lambda: _body(token_file, key_file, known_hosts_file))
    if username:
        body["username"] = username
    client = api_client()
    try:
        _show(guarded(lambda: client.rotate_credential(name, body)))
    finally:
        client.close()


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The tenant's credentials: names, kinds, scopes and fingerprints, never secrets."""
    client = api_client()
    try:
        found = guarded(client.credentials)
    finally:
        client.close()
    if as_json:
        out.print(json.dumps(found, indent=2, sort_keys=True), markup=False)
        return
    table = Table("name", "kind", "scope", "user", "fingerprint")
    for c in found:
        table.add_row(c["name"], c["kind"], c["scope"], c["username"] or "", c["fingerprint"] or "")
    out.print(table)


@app.command("rekey")
def rekey() -> None:
    """Re-seal every tenant's credentials under the current QUARRY_CREDENTIALS_KEY (after
    moving the old key to QUARRY_CREDENTIALS_PREVIOUS_KEYS). An operator's command: it
    writes to PostgreSQL, so it needs the full install."""
    try:
        from wiring import stores
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("credentials rekey", exc)) from None
    from config.endpoints import resolve_endpoints

    config = settings()
    endpoints = guarded(lambda: resolve_endpoints(config))
    store = guarded(lambda: stores.credential_store(endpoints))
    try:
        vault = guarded(lambda: stores.credential_vault(config, endpoints, store))
        if vault is None:
            err.print("quarry: error: no credentials key: set QUARRY_CREDENTIALS_KEY", markup=False)
            raise typer.Exit(2)
        count = guarded(vault.rekey)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    err.print(f"{count} credential(s) re-sealed with the current key", markup=False)


@app.command("remove")
def remove(name: str) -> None:
    """Remove a credential; jobs under its scope then clone without it."""
    client = api_client()
    try:
        guarded(lambda: client.remove_credential(name))
    finally:
        client.close()
    err.print(f"credential {name!r} removed", markup=False)
