"""Repository deletion, the record: what a deletion is, its stages in order and how its
status reads over the API. The work is pipeline/stages/deletion.py.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from pipeline.errors import ConflictError
from pipeline.models import RepoRef


class DeletionStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (DeletionStatus.DONE, DeletionStatus.FAILED)


# In order. "graph": the graph's nodes (GraphStore.delete_repository, in batches); then
# the rows, each stage in bounded batches (pipeline/statements/deletion_sql.py), the
# repository row last of them; then the shared content only this repository held.
STAGES: Final[tuple[str, ...]] = (
    "graph",
    "chunks",
    "files",
    "symbols",
    "waiting_graphs",
    "jobs",
    "snapshots",
    "repository",
    "blobs",
    "cache",
)
# The counter each stage adds to (stages not named here count under their own name).
COUNTERS: Final[dict[str, str]] = {"graph": "graph_nodes", "cache": "cache_rows"}


def counter_of(stage: str) -> str:
    return COUNTERS.get(stage, stage)


def new_deletion_id() -> str:
    return str(uuid.uuid4())


def parse_deletion_id(value: str) -> str | None:
    """The canonical form of a deletion id, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class RepoDeletion:
    """One deletion of one repository; ``counters``: what each stage removed."""

    deletion_id: str
    repo: RepoRef
    status: DeletionStatus
    stage: str = "queued"
    counters: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "deletion_id": self.deletion_id,
            "repo": self.repo.name,
            "status": str(self.status),
            "stage": self.stage,
            "counters": dict(sorted(self.counters.items())),
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


def deleting(repo: RepoRef, deletion_id: str) -> ConflictError:
    """The refusal of a job for a repository being deleted."""
    return ConflictError(
        f"repository {repo.name!r} is being deleted (deletion {deletion_id}); no new jobs"
    )
