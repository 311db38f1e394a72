"""Checks and JSON shapes shared by the job, snapshot and token stores and their fakes.

Owns what the real stores and the in-memory fakes must agree on, so that both refuse
the same input with the same message: job ids (UUIDs), the texts PostgreSQL cannot
hold, counters, the JSON of errors, webhook deliveries and symbols, file rows, and API
tokens (made here, stored as sha256 digests only). Also turns a job row back into a
:class:`~pipeline.jobs.Job`.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.errors import InvalidInputError
from pipeline.jobs import (
    Job,
    JobError,
    JobRequest,
    JobSource,
    JobStatus,
    SourceKind,
    WebhookDelivery,
    check_tenant,
)
from pipeline.models import FileVersion, RepoRef
from pipeline.statements.sql import check_repo, check_texts
from pipeline.tokens import ApiToken

MAX_WEBHOOKS = 50
MAX_REINDEX_PATHS = 100_000
INT8_MAX = 2**63 - 1
TOKEN_PREFIX = "qk_"  # noqa: S105 (a prefix that marks Quarry tokens, not a secret)
TOKEN_MIN_CHARS = 16
TOKEN_MAX_CHARS = 512
ABANDONED = frozenset({"failed", "cancelled"})
FileRow = tuple[str, str, str, int]  # path, content sha256, language, size in bytes
Symbol = tuple[str, str, str]  # name, qualified name, kind

# --- jobs ---------------------------------------------------------------------------


def parse_job_id(job_id: object) -> str | None:
    """The canonical form of a UUID job id, or None when it is not one."""
    try:
        return str(uuid.UUID(str(job_id)))
    except ValueError:
        return None


def check_job_id(job_id: str) -> str:
    parsed = parse_job_id(job_id)
    if parsed is None:
        raise InvalidInputError(f"job id {job_id!r} is not a UUID")
    return parsed


def check_request(request: JobRequest, job_id: str, commit: str | None) -> tuple[str, str | None]:
    """The canonical job id and the commit (``commit``, else the request's; ``""`` is
    unknown) of a job to create; refuses what the jobs table would refuse, naming it."""
    check_repo(request.repo)
    canonical = check_job_id(job_id)
    commit = (commit if commit is not None else request.commit) or None
    source = request.source
    if not isinstance(source.kind, SourceKind):
        raise InvalidInputError(f"source kind {source.kind!r}: use one of path, git, archive")
    check_texts("source location", [source.location], allow_empty=False)
    named = {
        "source ref": source.ref,
        "callback URL": request.callback_url,
        "idempotency key": request.idempotency_key,
        "commit": commit,
    }
    for what, value in named.items():
        if value is not None:
            check_texts(what, [value], allow_empty=False)
    if request.reindex_paths:
        if commit is not None:
            raise InvalidInputError("reindex_paths: a re-index job takes no commit (resolved)")
        if len(request.reindex_paths) > MAX_REINDEX_PATHS:
            raise InvalidInputError(
                f"reindex_paths: {len(request.reindex_paths)} paths, at most {MAX_REINDEX_PATHS}"
            )
        check_texts("reindex path", request.reindex_paths, allow_empty=False)
    return canonical, commit


def check_stage(stage: str) -> str:
    check_texts("stage", [stage], allow_empty=False)
    return stage


def check_terminal(status: JobStatus | str) -> JobStatus:
    try:
        parsed = JobStatus(status)
    except ValueError:
        parsed = None
    if parsed is None or not parsed.terminal:
        raise InvalidInputError(f"job status {status!r}: finish with done, failed or cancelled")
    return parsed


def check_counters(counters: Mapping[str, int]) -> dict[str, int]:
    checked: dict[str, int] = {}
    for name, value in counters.items():
        check_texts("counter name", [name], allow_empty=False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"counter {name!r} is {value!r}, not an integer")
        checked[name] = value
    return checked


def check_errors(errors: Sequence[JobError]) -> list[JobError]:
    for error in errors:
        check_texts("error path", [error.path])
        check_texts(f"error message of {error.path!r}", [error.message])
    return list(errors)


def check_delivery(delivery: WebhookDelivery) -> WebhookDelivery:
    for what, value in (("event", delivery.event), ("URL", delivery.url)):
        check_texts(f"webhook {what}", [value], allow_empty=False)
    check_texts("webhook outcome", [delivery.outcome], allow_empty=False)
    check_texts(f"webhook error of {delivery.url!r}", [delivery.error])
    return delivery


def error_json(error: JobError) -> dict[str, Any]:
    return {"path": error.path, "message": error.message, "at": error.at}


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "event": d.event,
        "url": d.url,
        "attempt": d.attempt,
        "outcome": d.outcome,
        "status_code": d.status_code,
        "error": d.error,
        "at": d.at,
        "duration_s": d.duration_s,
    }


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _delivery(d: Mapping[str, Any]) -> WebhookDelivery:
    status_code = d.get("status_code")
    return WebhookDelivery(
        event=str(d["event"]),
        url=str(d["url"]),
        attempt=int(d["attempt"]),
        outcome=str(d["outcome"]),
        status_code=None if status_code is None else int(status_code),
        error=str(d.get("error", "")),
        at=float(d["at"]),
        duration_s=float(d.get("duration_s", 0.0)),
    )


def job_from_row(row: Sequence[Any]) -> Job:
    """A job from the columns of ``job_sql._JOB_SELECT`` (jsonb already decoded)."""
    job_id, tenant, name, commit, status, stage, kind, location, ref = row[:9]
    callback, key, counters, errors, webhooks, created, started, finished = row[9:17]
    snapshot_id, message, reindex, ref_name, seq = row[17:]
    return Job(
        job_id=str(job_id),
        repo=RepoRef(tenant, name),
        commit=commit,
        status=JobStatus(status),
        stage=stage,
        source=JobSource(SourceKind(kind), location, ref),
        callback_url=callback,
        idempotency_key=key,
        counters={str(k): int(v) for k, v in dict(counters).items()},
        errors=tuple(JobError(str(e["path"]), str(e["message"]), float(e["at"])) for e in errors),
        webhooks=tuple(_delivery(d) for d in webhooks),
        created_at=float(created),
        started_at=None if started is None else float(started),
        finished_at=None if finished is None else float(finished),
        snapshot_id=None if snapshot_id is None else int(snapshot_id),
        message=message,
        reindex_paths=tuple(str(p) for p in reindex),
        ref_name=str(ref_name),
        seq=int(seq),
    )


# --- snapshots ----------------------------------------------------------------------


def check_commit(commit: str) -> str:
    check_texts("commit", [commit], allow_empty=False)
    return commit


def check_abandon_status(status: str) -> str:
    if status not in ABANDONED:
        raise InvalidInputError(f"snapshot status {status!r}: abandon as failed or cancelled")
    return status


def file_rows(files: Iterable[FileVersion]) -> list[FileRow]:
    """Checked rows, one per path; a path listed twice is refused, naming it."""
    rows: dict[str, FileRow] = {}
    for f in files:
        check_texts("file path", [f.path], allow_empty=False)
        check_texts(f"sha256 of {f.path!r}", [f.sha256], allow_empty=False)
        check_texts(f"language of {f.path!r}", [f.language])
        if isinstance(f.size_bytes, bool) or not 0 <= f.size_bytes <= INT8_MAX:
            raise InvalidInputError(f"size of {f.path!r} is {f.size_bytes!r} bytes")
        if f.path in rows:
            raise InvalidInputError(f"file path {f.path!r} is listed twice")
        rows[f.path] = (f.path, f.sha256, f.language, int(f.size_bytes))
    return list(rows.values())


def symbol_rows(
    symbols: Mapping[tuple[str, str], Sequence[tuple[str, str, str]]],
) -> list[dict[str, Any]]:
    """Checked ``{"path", "sha", "symbols": [[name, qualified name, kind], ...]}``."""
    rows = []
    for (path, sha), found in symbols.items():
        check_texts("file path", [path], allow_empty=False)
        check_texts(f"sha256 of {path!r}", [sha], allow_empty=False)
        listed = []
        for symbol in found:
            if len(symbol) != 3:
                raise InvalidInputError(f"symbol {symbol!r} of {path!r}: expected 3 fields")
            check_texts(f"symbol of {path!r}", symbol)
            listed.append([str(part) for part in symbol])
        rows.append({"path": path, "sha": sha, "symbols": listed})
    return rows


def symbols_from_json(value: Sequence[Sequence[str]]) -> list[Symbol]:
    return [(str(name), str(qualified), str(kind)) for name, qualified, kind in value]


# --- API tokens ---------------------------------------------------------------------


def new_token() -> str:
    """A fresh bearer token: ``qk_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What is stored of a token: its sha256 (any string hashes, even a malformed one)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def check_token(tenant: str, token: str) -> str:
    """A token chosen elsewhere: 16-512 printable ASCII characters without spaces. The
    message names the tenant, never the token."""
    check_tenant(tenant)
    ok = TOKEN_MIN_CHARS <= len(token) <= TOKEN_MAX_CHARS and token.isascii()
    if not ok or not token.isprintable() or any(c.isspace() for c in token):
        raise InvalidInputError(
            f"the token given for tenant {tenant!r} is not {TOKEN_MIN_CHARS}-"
            f"{TOKEN_MAX_CHARS} printable ASCII characters without spaces"
        )
    return token


def check_label(label: str) -> str:
    check_texts("token label", [label])
    return label


def token_from_row(row: Sequence[Any]) -> ApiToken:
    """A row of ``pipeline.statements.token_sql``'s record columns, as a record."""
    token_id, tenant, label, scopes, created, last_used, revoked = row
    return ApiToken(
        token_id=str(token_id),
        tenant=str(tenant),
        label=str(label),
        scopes=tuple(str(s) for s in scopes),
        created_at=float(created),
        last_used_at=None if last_used is None else float(last_used),
        revoked_at=None if revoked is None else float(revoked),
    )
