"""What every command shares: the consoles, one-line errors, the settings.

Must not import: torch, drivers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from config.settings import QuarrySettings, load_settings
from pipeline.errors import ConfigError, InvalidInputError, PipelineError

T = TypeVar("T")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; a Quarry error becomes one line on stderr and an exit code."""
    try:
        return action()
    except (ConfigError, InvalidInputError) as exc:
        err.print(f"quarry: error: {exc}", markup=False)
        raise typer.Exit(2) from None
    except PipelineError as exc:
        err.print(f"quarry: error: {exc}", markup=False)
        raise typer.Exit(1) from None


def settings() -> QuarrySettings:
    return guarded(load_settings)
