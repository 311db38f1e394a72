"""Commands of the full install, registered only where their packages are installed.

The CLI alone (``pip install quarry``: the client a CI runner needs) enqueues, follows,
cancels and searches over HTTP; ``quarry chunk``, ``quarry eval``, ``quarry dlq`` and
``quarry bench`` need tree-sitter, the model, Redis or the stores (``pip install
'quarry[server]'``). Where one cannot be imported, its name stays a command that says
what is missing and exits 2, instead of the whole CLI failing to start.

Must not import: torch, drivers (at module level).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import typer

from cli.console import err

FULL_INSTALL = "pip install 'quarry[server]'"


def missing(name: str, exc: ImportError) -> int:
    """Say that ``quarry <name>`` needs the full install; the exit code (2)."""
    err.print(
        f"quarry: error: `quarry {name}` needs the full install ({FULL_INSTALL}): "
        f"{exc.name or exc} is not installed",
        markup=False,
    )
    return 2


def missing_command(name: str, exc: ImportError) -> Callable[..., None]:
    def command(ctx: typer.Context) -> None:
        raise typer.Exit(missing(name, exc))

    command.__doc__ = f"(full install only: {FULL_INSTALL})"
    return command


_ANY_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def register_command(app: typer.Typer, name: str, module: str) -> None:
    """``module.register(app)``, or a stand-in command ``name`` if it cannot be imported."""
    try:
        loaded: Any = importlib.import_module(module)
    except ImportError as exc:
        app.command(name, context_settings=_ANY_ARGS)(missing_command(name, exc))
        return
    loaded.register(app)


def register_group(app: typer.Typer, name: str, module: str, attr: str) -> None:
    """``app.add_typer(module.attr, name=name)``, or a stand-in command if it cannot be
    imported."""
    try:
        group: Any = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        app.command(name, context_settings=_ANY_ARGS)(missing_command(name, exc))
        return
    app.add_typer(group, name=name)
