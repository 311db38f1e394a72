"""``quarry search "..."``: hybrid search through the API, printed for people or as JSON.

``--json`` prints the API's object unchanged (``{"query", "mode", "k", "results"}``).
Exit codes: 0 with results, 1 with none, 2 for a bad argument or an unknown repository.

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.syntax import Syntax

from cli.console import err, guarded, out
from cli.jobs import api_client

SNIPPET_LINES = 8


def register(app: typer.Typer) -> None:
    app.command("search")(search)


def _print_results(found: dict[str, Any], snippet_lines: int) -> None:
    results = found["results"]
    if not results:
        err.print(f"no results for {found['query']!r}", markup=False)
        return
    for rank, hit in enumerate(results, start=1):
        symbol = f"  {escape(hit['symbol'])}" if hit.get("symbol") else ""
        out.print(
            f"[bold]{rank}. {escape(hit['repo'])}:{escape(hit['path'])}"
            f":{hit['start_line']}-{hit['end_line']}[/bold]{symbol}"
            f"  [dim]{hit['kind']} {hit['language']} score {hit['score']:.4f}"
            f" via {'+'.join(hit['retrievers'])}[/dim]"
        )
        lines = hit["snippet"].splitlines()[:snippet_lines]
        if lines:
            out.print(
                Syntax(
                    "\n".join(lines),
                    hit["language"] or "text",
                    line_numbers=True,
                    start_line=hit["start_line"],
                    word_wrap=True,
                )
            )
        for kind, linked in (hit.get("neighbours") or {}).items():
            names = (
                [linked["qualified_name"]]
                if isinstance(linked, dict)
                else [n["qualified_name"] for n in linked or []]
            )
            if names:
                out.print(f"   [dim]{kind}:[/dim] {escape(', '.join(names))}")


def search(
    query: Annotated[str, typer.Argument(help="Words, identifiers or a question.")],
    *,
    repo: Annotated[
        list[str] | None, typer.Option(help="Only this repository (repeatable).")
    ] = None,
    lang: Annotated[list[str] | None, typer.Option(help="Only this language (repeatable).")] = None,
    path: Annotated[str | None, typer.Option(help="Path glob: * and ?; or a folder.")] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="function, method, class, module or other.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many results.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, vector or lexical.")] = "hybrid",
    expand: Annotated[
        list[str] | None, typer.Option(help="callers, callees or container (repeatable).")
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="The ref to search (default: each repository's default).")
    ] = None,
    commit: Annotated[
        str | None, typer.Option(help="Search as of this commit, while a ref holds it.")
    ] = None,
    lines: Annotated[int, typer.Option(help="Snippet lines shown per result.")] = SNIPPET_LINES,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """Search the indexed repositories: vector and full-text retrieval, fused."""
    client = api_client()
    found: dict[str, Any] = guarded(
        lambda: client.search(
            query,
            repo=",".join(repo) if repo else None,
            lang=",".join(lang) if lang else None,
            path=path,
            kind=",".join(kind) if kind else None,
            k=k,
            mode=mode,
            expand=tuple(expand or ()),
            ref=ref,
            commit=commit,
        )
    )
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    else:
        _print_results(found, max(0, lines))
        for warning in found.get("warnings", []):
            err.print(f"warning: {warning}", markup=False)
    raise typer.Exit(0 if found["results"] else 1)
