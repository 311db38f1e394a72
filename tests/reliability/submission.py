"""A job request checked as ``POST /v1/jobs`` checks it, without HTTP: the API's own body
model (lengths), its source check, the default repository name, then submission to an
in-memory job store (which refuses what the jobs table cannot hold).

Returns the job, or raises what the API turns into a 4xx: a PermanentError (422, 415,
409 or 404) or the body model's ValidationError (422). Anything else would be a 500.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from api.auth import State
from api.routes_jobs import JobCreate, checked_source
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.jobs import Job, JobRequest
from pipeline.models import RepoRef
from pipeline.sources.locations import repo_name_from
from pipeline.sources.policy import LocalSourcePolicy
from pipeline.stages.indexing import JobContext
from pipeline.stages.ingest import submit

# What names the bad input in a refusal's message.
FIELD_WORDS = (
    "source", "git url", "ref", "repository", "callback url", "idempotency", "commit",
    "archive", "path", "tenant",
)  # fmt: skip

# Local paths anywhere but the service's data folder are allowed here, so that the
# generated sources reach the other checks; tests/pipeline/test_source_policy.py and
# tests/security/test_local_sources.py test the roots themselves.
DATA_DIR = Path("/srv/quarry-data")
_STATE = cast(
    State,
    SimpleNamespace(
        settings=SimpleNamespace(source_allow_file_urls=False),
        source_policy=LocalSourcePolicy.build([Path("/")], [DATA_DIR]),
    ),
)


def context() -> JobContext:
    def send(*_args: Any) -> None:
        raise AssertionError("submission sends through admit, not send")

    return JobContext(InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), send)


def submit_like_the_api(ctx: JobContext, body: dict[str, Any], tenant: str = "default") -> Job:
    fields = JobCreate(**body)
    source = checked_source(_STATE, fields.source, fields.ref)
    request = JobRequest(
        repo=RepoRef(tenant, fields.repo or repo_name_from(source)),
        source=source,
        commit=fields.commit or None,
        callback_url=fields.callback_url or None,
        idempotency_key=fields.idempotency_key or None,
    )
    admitted: list[str] = []
    job, _created = submit(ctx, request, admit=lambda task, _kwargs: admitted.append(task))
    return job


def names_a_field(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in FIELD_WORDS)
