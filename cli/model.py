"""``quarry model export | switch | status | resume | cancel`` (and ``train``, in
:mod:`cli.model_train`): the query model's ONNX export,
made where the API runs, and the embedding model of the index (issue 21 item 5).

``switch`` is an operator's command over PostgreSQL and the broker, like ``quarry
quota``: it needs the stores' credentials, not a token, and no API route starts,
shows or cancels a switch, so no tenant token reaches it. It loads the model here (to
learn its dimension and fingerprint), refuses when the API's export of it is missing,
registers it as the model being backfilled and sends the backfill's first step to the
embed workers (pipeline/stages/backfill.py).

The API embeds queries with onnxruntime and never imports torch, so it never exports:
this command does, once (an install step: ``make install``, the Docker build, ``quarry
dev up``). It is idempotent: the export is named by the model, the export recipe and the
weights' bytes, so a changed model or recipe makes a new one and an unchanged one is
kept. Exporting imports torch, in this process only.

Must not import: torch at module level, drivers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import EXIT_BAD_INPUT, err, guarded, out, settings
from cli.extras import missing
from cli.model_train import train
from config.settings import QuarrySettings
from pipeline.embedding_models import ModelSpec, check_backend, check_switch
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.adapters.postgres.model_registry import PgModelRegistry

model_app = typer.Typer(
    help="The embedding model: the query model's ONNX export, and switching the index's model.",
    no_args_is_help=True,
)
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="The model (name or folder); unset: QUARRY_EMBED_MODEL."),
]
BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="auto, torch, onnx-fp32, onnx-int8 or onnx-int8-smooth; unset: QUARRY_EMBED_BACKEND.",
    ),
]


def _settings_for(model: str | None, backend: str | None) -> QuarrySettings:
    from wiring.models import settings_for

    current = settings()
    if backend is not None:
        guarded(lambda: check_backend(backend))
    return settings_for(current, model or current.embed_model, backend or current.embed_backend)


@model_app.command("export")
def export(
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    model: ModelOption = None,
    backend: BackendOption = None,
) -> None:
    """Export the query model to ONNX where the API runs, unless it is there already
    (into `query_model_dir`, unset: `<data_dir>/models`); `--model` for the model of a
    coming `quarry model switch`."""
    try:
        from wiring.models import export_query_model, query_model_file
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("model export", exc)) from None

    current = _settings_for(model, backend)
    if not quiet and not guarded(lambda: query_model_file(current)).is_file():
        err.print("exporting the query model (once: about a minute)", markup=False)
    path, made = guarded(lambda: export_query_model(current))
    if not quiet:
        err.print(f"{'exported' if made else 'already exported'}: {path}", markup=False)


def _registry() -> PgModelRegistry:
    try:
        from pipeline.adapters.postgres.model_registry import PgModelRegistry
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("model", exc)) from None
    from config.endpoints import resolve_endpoints

    endpoints = guarded(lambda: resolve_endpoints(settings()))
    return guarded(lambda: PgModelRegistry(endpoints.postgres_dsn, pool_size=1))


@model_app.command("switch")
def switch(
    model: Annotated[str, typer.Argument(help="The new model: a name or a model folder.")],
    backend: BackendOption = None,
) -> None:
    """Switch the index to another embedding model without downtime: its vectors are
    backfilled by the embed workers while search reads the active model's; search moves
    to it in one step once it covers every chunk, then the old vectors are dropped."""
    try:
        from pipeline import flow
        from tasks.app import create_app
        from wiring.models import embedder, model_folder, model_spec, query_model_file
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("model switch", exc)) from None
    other = _settings_for(model, backend)
    backend = other.embed_backend
    registry = _registry()
    try:  # a switch that is running refuses at once, before the model is loaded
        known = guarded(registry.models)
        guarded(lambda: check_switch(ModelSpec("", model, backend, 0), known))
    finally:
        registry.close()
    folder = guarded(lambda: _folder(model_folder, model))
    export_file = guarded(lambda: query_model_file(other))
    if not export_file.is_file():
        err.print(
            f"model {model!r} ({backend}) has no query-model export for the API ({export_file}):"
            f" run `quarry model export --model {folder} --backend {backend}` where the API"
            " runs, then switch again",
            markup=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    err.print(f"loading {model} to read its dimension", markup=False)
    loaded = guarded(lambda: embedder(other))
    spec = guarded(lambda: model_spec(other, loaded))
    registry = _registry()
    try:
        registered = guarded(lambda: registry.start_backfill(spec))
    finally:
        registry.close()
    app = create_app(settings())
    app.send_task(flow.MODEL_BACKFILL_TASK, kwargs={"model_id": registered.model_id})
    out.print(
        f"switching to {registered.model_id} ({registered.dimension} dimensions,"
        f" {registered.storage}): backfill started; `quarry model status` shows it",
        markup=False,
    )


def _folder(resolve: object, model: str) -> object:
    try:
        return resolve(model)  # type: ignore[operator]
    except ConfigError as exc:
        raise ConfigError(f"unknown model {model!r}: {exc}") from exc


@model_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The registered models: the active one, a switch's progress, the retired ones."""
    registry = _registry()
    try:
        found = guarded(registry.models)
    finally:
        registry.close()
    rows = [
        {
            "model_id": m.model_id,
            "state": m.state,
            "dimension": m.dimension,
            "backend": m.backend,
            "name": m.name,
            "storage": m.storage,
            "chunks_done": m.chunks_done,
            "chunks_total": m.chunks_total,
            "vectors_dropped": m.dropped,
            "error": m.error,
        }
        for m in found
    ]
    if as_json:
        out.print(json.dumps({"models": rows}, indent=2), markup=False)
        return
    table = Table(title="embedding models")
    for column in ("model", "state", "dim", "storage", "backfill", "note"):
        table.add_column(column)
    for row in rows:
        progress = f"{row['chunks_done']}/{row['chunks_total']}" if row["chunks_total"] else ""
        note = row["error"] or ("vectors dropped" if row["vectors_dropped"] else "")
        table.add_row(
            str(row["model_id"]), str(row["state"]), str(row["dimension"]),
            str(row["storage"]), progress, str(note),
        )  # fmt: skip
    out.print(table)


@model_app.command("resume")
def resume() -> None:
    """Send the running switch's backfill on again (after its step's message was lost,
    e.g. with the broker's data): it goes on from the chunks still missing; a second
    chain of steps only repeats work."""
    try:
        from pipeline import flow
        from tasks.app import create_app
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("model resume", exc)) from None
    registry = _registry()
    try:
        running = [m for m in guarded(registry.live) if m.state == "backfilling"]
    finally:
        registry.close()
    if not running:
        err.print("no switch is running", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    create_app(settings()).send_task(
        flow.MODEL_BACKFILL_TASK, kwargs={"model_id": running[0].model_id}
    )
    out.print(f"resumed the switch to {running[0].model_id}", markup=False)


@model_app.command("cancel")
def cancel() -> None:
    """Stop the running switch: its model retired and its vectors dropped; search never
    left the active model."""
    registry = _registry()
    try:
        running = [m for m in guarded(registry.live) if m.state == "backfilling"]
        if not running:
            err.print("no switch is running", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        guarded(lambda: registry.cancel(running[0], "cancelled"))
        guarded(registry.drop_retired)
    finally:
        registry.close()
    out.print(f"cancelled the switch to {running[0].model_id}", markup=False)


model_app.command("train")(train)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
