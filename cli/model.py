"""``quarry model export``: the query model's ONNX export, made where the API runs.

The API embeds queries with onnxruntime and never imports torch, so it never exports:
this command does, once (an install step: ``make install``, the Docker build, ``quarry
dev up``). It is idempotent: the export is named by the model, the export recipe and the
weights' bytes, so a changed model or recipe makes a new one and an unchanged one is
kept. Exporting imports torch, in this process only.

Must not import: torch at module level, drivers.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.console import err, guarded, settings
from cli.extras import missing

model_app = typer.Typer(help="The query model: its ONNX export.", no_args_is_help=True)


@model_app.command("export")
def export(quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False) -> None:
    """Export the query model to ONNX where the API runs, unless it is there already
    (into `query_model_dir`, unset: `<data_dir>/models`)."""
    try:
        from wiring.models import export_query_model, query_model_file
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("model export", exc)) from None

    current = settings()
    if not quiet and not guarded(lambda: query_model_file(current)).is_file():
        err.print("exporting the query model (once: about a minute)", markup=False)
    path, made = guarded(lambda: export_query_model(current))
    if not quiet:
        err.print(f"{'exported' if made else 'already exported'}: {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
