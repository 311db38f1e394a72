"""``quarry dlq list | replay ID | drop ID``: the tasks that failed for good (writes, and
webhook deliveries given up or refused).

A replay sends the letter's task again with its original arguments (a fresh attempt
count) and removes the letter once the broker took the task.

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.table import Table

from cli.console import err, guarded, out, settings
from cli.extras import missing
from config.endpoints import resolve_endpoints
from pipeline.models import DeadLetter
from pipeline.ports import DeadLetters

dlq_app = typer.Typer(
    help="Dead letters: writes and webhook deliveries that failed for good.", no_args_is_help=True
)


def _letters() -> DeadLetters:
    try:
        from pipeline.adapters.redis.client import connect_redis
        from pipeline.adapters.redis.dead_letters import RedisDeadLetters
    except ImportError as exc:  # the client alone (pip install quarry)
        raise typer.Exit(missing("dlq", exc)) from None

    endpoints = guarded(lambda: resolve_endpoints(settings()))
    return RedisDeadLetters(connect_redis(endpoints.redis_url, timeout_s=5))


def _letter(letters: DeadLetters, letter_id: str) -> DeadLetter:
    letter = guarded(lambda: letters.get(letter_id))
    if letter is None:
        err.print(f"quarry: error: no dead letter with id {letter_id!r}", markup=False)
        raise typer.Exit(2)
    return letter


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
) -> None:
    """List dead letters, oldest first."""
    letters = guarded(lambda: _letters().list(limit))
    if as_json:
        for letter in letters:
            row = {
                "id": letter.letter_id,
                "task": letter.task,
                "error": letter.error,
                "attempts": letter.attempts,
                "failed_at": letter.failed_at,
                "payload": letter.payload,
            }
            sys.stdout.write(json.dumps(row) + "\n")
        return
    if not letters:
        out.print("no dead letters")
        return
    table = Table("id", "task", "attempts", "failed at", "error")
    for letter in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.failed_at))
        table.add_row(letter.letter_id, letter.task, str(letter.attempts), when, letter.error)
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(letter_id: Annotated[str, typer.Argument(help="The letter's id.")]) -> None:
    """Send a letter's task again with its original arguments, then drop the letter."""
    letters = _letters()
    from tasks.app import create_app

    letter = _letter(letters, letter_id)
    app = create_app(settings())
    result = app.send_task(letter.task, kwargs=dict(letter.payload))
    guarded(lambda: letters.remove(letter_id))
    out.print(f"replayed {letter_id} as task {result.id} ({letter.task})")


@dlq_app.command("drop")
def dlq_drop(letter_id: Annotated[str, typer.Argument(help="The letter's id.")]) -> None:
    """Delete a letter for good."""
    letters = _letters()
    _letter(letters, letter_id)
    guarded(lambda: letters.remove(letter_id))
    out.print(f"dropped {letter_id}")
