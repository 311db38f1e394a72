"""What every command shares: the consoles, one-line errors and their exit codes, the
settings.

The exit codes are one contract for every command (README, "In CI"): 0 it worked (the
job is done); 1 the job failed or was cancelled, or the command's own work failed;
2 bad input or configuration (fix the command, do not retry); 3 the API or a service
could not be reached, a full queue outlasted ``--max-wait-s``, or ``--timeout`` passed
(try again later).

Must not import: torch, drivers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from config.settings import QuarrySettings, load_settings
from pipeline.errors import ConfigError, InvalidInputError, PipelineError, TransientError

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 the job failed or was cancelled; 2 bad input or configuration;"
    " 3 API unreachable, queue still full after --max-wait-s, or --timeout passed."
)

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)


def guarded(action: Callable[[], T], *, passing: type[PipelineError] | None = None) -> T:
    """Run ``action``; a Quarry error becomes one line on stderr and an exit code, except
    one of the ``passing`` kind, raised to the caller (which retries it)."""
    try:
        return action()
    except PipelineError as exc:
        if passing is not None and isinstance(exc, passing):
            raise
        err.print(f"quarry: error: {exc}", markup=False)
        raise typer.Exit(exit_code_of(exc)) from None


def exit_code_of(exc: PipelineError) -> int:
    """The contract's exit code for an error (see the module doc)."""
    if isinstance(exc, (ConfigError, InvalidInputError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, TransientError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def settings() -> QuarrySettings:
    return guarded(load_settings)
