"""``quarry index | status | jobs | cancel``, through the API (``quarry token`` is in
cli/tokens.py).

The CLI talks to the API at ``QUARRY_API_URL`` with ``QUARRY_API_TOKEN`` (defaults: the
local stack and its development token). ``index --wait`` polls the job's status and
draws one progress bar per stage; its exit code follows the contract in cli/console.py
(0 done, 1 failed or cancelled, 2 bad input, 3 unreachable, queue full or ``--timeout``),
so that a CI step fails with the job and can tell a failed job from an outage. A full
queue (429) is waited on with backoff, as the server's Retry-After says; while
following, an API that stops answering is polled again until ``--timeout`` (or for
``API_GRACE_S`` without one). ``status`` and ``cancel`` take a job id's unique prefix.

Must not import: torch, drivers.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.console import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    err,
    guarded,
    out,
    settings,
)
from config.endpoints import resolve_endpoints, secrets_path
from pipeline.errors import InvalidInputError, QueueFullError, TransientError
from pipeline.sources.locations import parse_source

POLL_S = 0.5
API_GRACE_S = 60.0  # without --timeout: how long an API that stopped answering is polled
PREFIX_SCAN = 500  # newest jobs searched for a job id's prefix
TERMINAL = {"done", "failed", "cancelled"}
_UUID_CHARS = frozenset("0123456789abcdef-")


def api_client() -> Any:
    from cli.api_client import QuarryApiClient

    current = settings()
    endpoints = guarded(lambda: resolve_endpoints(current))
    if not endpoints.api_token:
        err.print(
            f"quarry: error: no API token for {endpoints.api_url}: set QUARRY_API_TOKEN, or"
            f" run where the local stack's data folder is (no {secrets_path(current)} here;"
            " QUARRY_DATA_DIR names another)",
            markup=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    return QuarryApiClient(endpoints.api_url, endpoints.api_token)


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("status")(status)
    app.command("jobs")(jobs)
    app.command("cancel")(cancel)


def admitted(action: Any, max_wait_s: float) -> Any:
    """Run ``action``; on 429 wait (Retry-After, growing, with jitter) and try again."""
    deadline = time.monotonic() + max_wait_s
    attempt = 0
    while True:
        try:
            return action()
        except QueueFullError as exc:
            wait_s = min(60.0, exc.retry_after_s * 2**attempt) * (1 + random.random() / 4)  # noqa: S311
            if time.monotonic() + wait_s > deadline:
                raise
            err.print(f"queue full, retrying in {wait_s:.1f} s", markup=False)
            time.sleep(wait_s)
            attempt += 1


def index(
    source: Annotated[str, typer.Argument(help="A folder, a .tar.gz, or a git URL.")],
    *,
    repo: Annotated[
        str | None, typer.Option(help="Repository name (default: from SOURCE).")
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(
            help="The ref (branch, tag, pull request) the job publishes to; for a git URL or"
            " a bare repository folder also what is fetched (a commit id: the default ref)."
        ),
    ] = None,
    commit: Annotated[str | None, typer.Option(help="The commit id to record.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    callback: Annotated[str | None, typer.Option(help="Webhook URL for job events.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same job.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Estimate; enqueue nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_wait_s: Annotated[float, typer.Option(help="Longest wait for a full queue.")] = 600.0,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="With --wait: give up (exit 3) after this many seconds."),
    ] = None,
) -> None:
    """Enqueue SOURCE for indexing and print the job id (its last line).

    With --wait, follow the job; stdout's last line is the job id (with --json, the
    final status as one JSON line). Exit codes: 0 done; 1 the job failed or was
    cancelled; 2 bad input or configuration; 3 API unreachable, queue still full after
    --max-wait-s, or --timeout passed (the job may still run: its id is printed)."""
    started = time.monotonic()
    local = Path(source).expanduser()
    is_archive = local.is_file() and source.endswith((".tar.gz", ".tgz"))
    location = str(local.resolve()) if local.exists() else source
    client = api_client()
    body = {
        "source": location,
        "repo": repo,
        "ref": ref,
        "commit": commit,
        "callback_url": callback,
        "idempotency_key": idempotency_key,
    }
    if dry_run:
        if is_archive:
            err.print("quarry: error: --dry-run takes a folder or a git URL", markup=False)
            raise typer.Exit(2)
        report = guarded(lambda: client.create_job(body, dry_run=True))
        _print_dry_run(report, as_json)
        return
    if is_archive:
        params = {k: v for k, v in body.items() if v and k != "source"}
        params["repo"] = repo or guarded(lambda: _default_name(location))
        created = guarded(
            lambda: admitted(lambda: client.upload_archive(local, params), max_wait_s)
        )
    else:
        created = guarded(lambda: admitted(lambda: client.create_job(body), max_wait_s))
    job_id = created["job_id"]
    if not wait:
        sys.stdout.write(json.dumps({"job_id": job_id}) + "\n" if as_json else f"{job_id}\n")
        return
    if not as_json:
        err.print(f"job {job_id}", markup=False)
    deadline = None if timeout is None else started + timeout
    try:
        final = follow(client, job_id, quiet=as_json, deadline=deadline)
    except _GaveUpError as exc:
        err.print(f"quarry: error: {exc}", markup=False)
        sys.stdout.write(json.dumps({"job_id": job_id}) + "\n" if as_json else f"{job_id}\n")
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    if as_json:
        sys.stdout.write(json.dumps(final) + "\n")
    else:
        print_summary(final)
        sys.stdout.write(f"{job_id}\n")
    raise typer.Exit(exit_code(final))


def exit_code(status: dict[str, Any]) -> int:
    """The contract's code for a job's status: 0 done, 1 failed or cancelled, 3 still
    running (a caller that stopped waiting)."""
    if status["status"] == "done":
        return EXIT_OK
    return EXIT_FAILED if status["status"] in TERMINAL else EXIT_UNAVAILABLE


class _GaveUpError(Exception):
    """--timeout passed, or the API stopped answering for longer than allowed."""


def _default_name(location: str) -> str:
    from pipeline.sources.locations import repo_name_from

    return repo_name_from(parse_source(location))


def follow(
    client: Any, job_id: str, *, quiet: bool, deadline: float | None = None
) -> dict[str, Any]:
    """Poll until the job ends; with a progress bar per stage unless ``quiet``. Raises
    _GaveUpError at ``deadline`` (monotonic), or when the API has not answered for
    API_GRACE_S without one; bad input (an unknown job) exits at once."""
    answered = time.monotonic()
    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    with progress:
        bars = {
            name: progress.add_task(name, total=None, note="")
            for name in ("chunk", "embed", "write")
        }
        while True:
            now = time.monotonic()
            try:
                status = guarded(lambda: client.job(job_id), passing=TransientError)
            except TransientError as exc:
                if deadline is None and now - answered > API_GRACE_S:
                    raise _GaveUpError(f"{exc} (for over {API_GRACE_S:.0f} s)") from None
                if deadline is not None and now > deadline:
                    raise _GaveUpError(f"job {job_id}: gave up at --timeout: {exc}") from None
                err.print(f"{exc}; polling again", markup=False)
                time.sleep(min(5.0, 2 * POLL_S))
                continue
            answered = now
            if deadline is not None and now > deadline and status["status"] not in TERMINAL:
                raise _GaveUpError(
                    f"job {job_id} is still {status['status']} ({status['stage']},"
                    f" {status['percent']} %) at --timeout; it goes on running"
                )
            files, chunks = status["files"], status["chunks"]
            todo = max(files["todo"], files["chunked"])
            progress.update(
                bars["chunk"], total=todo or None, completed=files["chunked"], note="files"
            )
            progress.update(
                bars["embed"],
                total=chunks["total"] or None,
                completed=chunks["embedded"] + chunks["cached"],
                note=f"chunks ({chunks['cached']} cached)",
            )
            eta = status.get("eta_s")
            progress.update(
                bars["write"],
                total=todo or None,
                completed=files["written"] + files["failed"],
                note=f"files  {status['stage']}"
                + (f"  eta {eta:.0f} s" if eta else "")
                + _waiting_note(status),
            )
            if status["status"] in TERMINAL:
                return status  # type: ignore[no-any-return]
            time.sleep(POLL_S)


def _waiting_note(status: dict[str, Any]) -> str:
    stores = [w["store"] for w in status.get("waiting_on", [])]
    return f"  waiting on {', '.join(stores)} (breaker open)" if stores else ""


def print_summary(status: dict[str, Any]) -> None:
    files, chunks = status["files"], status["chunks"]
    err.print(
        f"{status['status']}: {status['repo']}@{status['commit']} (ref {status.get('ref')})"
        f"  files {files['total']} "
        f"(written {files['written']}, skipped {files['skipped']}, failed {files['failed']}, "
        f"deleted {files['deleted']})  chunks {chunks['total']} "
        f"(embedded {chunks['embedded']}, cached {chunks['cached']})",
        markup=False,
    )
    if status.get("message"):
        err.print(f"  {status['message']}", markup=False)
    for wait in status.get("waiting_on", []):
        err.print(
            f"  waiting on {wait['store']} until {wait['until']}: {wait['reason']}", markup=False
        )
    for error in status.get("errors", [])[:10]:
        err.print(f"  error {error['path'] or '-'}: {error['message']}", markup=False)


def _print_dry_run(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    sys.stdout.writelines(_report_lines(report))


def _report_lines(report: Mapping[str, Any], indent: str = "") -> list[str]:
    """``key: value`` lines, a nested mapping's keys indented below its own (none for an
    empty one), never a Python repr."""
    lines = []
    for key, value in report.items():
        if isinstance(value, Mapping):
            lines.append(f"{indent}{key}:{'' if value else ' none'}\n")
            lines += _report_lines(value, indent + "  ")
        elif isinstance(value, (list, tuple)):
            lines.append(f"{indent}{key}: {', '.join(str(v) for v in value) or 'none'}\n")
        else:
            lines.append(f"{indent}{key}: {value}\n")
    return lines


def status(
    job_id: Annotated[
        str, typer.Argument(help="The job id `quarry index` printed, or its unique prefix.")
    ],
    *,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print a job's status: stdout's one line is STATUS PERCENT % STAGE (with --json,
    the whole status). Exit codes: 0 done; 1 failed or cancelled; 2 bad input (no such
    job); 3 still queued or running, or the API unreachable."""
    client = api_client()
    current = guarded(lambda: client.job(resolve_job_id(client, job_id)))
    if as_json:
        sys.stdout.write(json.dumps(current, indent=2) + "\n")
    else:
        print_summary(current)
        sys.stdout.write(f"{current['status']} {current['percent']} % {current['stage']}\n")
    raise typer.Exit(exit_code(current))


def resolve_job_id(client: Any, text: str) -> str:
    """A job id, or the one job among the tenant's newest PREFIX_SCAN whose id starts
    with ``text`` (at least 4 characters); InvalidInputError naming it otherwise."""
    wanted = text.strip().lower()
    if len(wanted) == 36 or not wanted or not set(wanted) <= _UUID_CHARS:
        return text
    if len(wanted) < 4:
        raise InvalidInputError(f"job id prefix {text!r}: give at least 4 characters")
    found = [j["job_id"] for j in client.jobs(None, PREFIX_SCAN) if j["job_id"].startswith(wanted)]
    if not found:
        raise InvalidInputError(
            f"job {text!r} not found: no job id of your newest {PREFIX_SCAN} starts with it"
        )
    if len(found) > 1:
        raise InvalidInputError(f"job id prefix {text!r} is ambiguous: {', '.join(found[:5])}")
    return str(found[0])


def jobs(
    repo: Annotated[str | None, typer.Option(help="Only this repository's jobs.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only these statuses, comma-separated (queued,running,done,...)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest jobs of your tenant (whole ids: `quarry status` also takes a prefix)."""
    listed = guarded(lambda: api_client().jobs(repo, limit, status=status))
    if as_json:
        sys.stdout.write(json.dumps(listed, indent=2) + "\n")
        return
    table = Table()
    table.add_column("job", no_wrap=True, min_width=36)
    for heading in ("repo", "ref", "commit", "status", "stage", "%", "files", "created"):
        table.add_column(heading)
    for job in listed:
        table.add_row(
            job["job_id"],
            job["repo"],
            job.get("ref") or "",
            (job["commit"] or "")[:12],
            job["status"],
            job["stage"],
            str(job["percent"]),
            str(job["files"]["total"]),
            (job["created_at"] or "")[:19],
        )
    out.print(table)


def cancel(
    job_id: Annotated[str, typer.Argument(help="A job id, or its unique prefix.")],
) -> None:
    """Cancel a job: no new work; the previous snapshot stays searchable."""
    client = api_client()
    result = guarded(lambda: client.cancel(resolve_job_id(client, job_id)))
    sys.stdout.write(f"{result['job_id']} {result['status']}\n")
