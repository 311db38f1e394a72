"""Queue names, worker profiles and task routing: constants every process agrees on.

Must not import: anything of Quarry (config is the leaf).
"""

from __future__ import annotations

from typing import Final

INGEST: Final = "quarry.ingest"
CHUNK: Final = "quarry.chunk"
EMBED: Final = "quarry.embed"
WRITE: Final = "quarry.write"
WEBHOOK: Final = "quarry.webhook"

ALL_QUEUES: Final[tuple[str, ...]] = (INGEST, CHUNK, EMBED, WRITE, WEBHOOK)

# A profile is the set of queues one worker process consumes. GPU hosts run `embed`
# only; everything else is CPU-bound or I/O-bound and shares the `cpu` profile.
WORKER_PROFILES: Final[dict[str, tuple[str, ...]]] = {
    "cpu": (INGEST, CHUNK, WRITE, WEBHOOK),
    "embed": (EMBED,),
    "all": ALL_QUEUES,
}

# Task names are `quarry.<stage>.<verb>`; the stage picks the queue.
TASK_ROUTES: Final[dict[str, dict[str, str]]] = {
    "quarry.ingest.*": {"queue": INGEST},
    "quarry.chunk.*": {"queue": CHUNK},
    "quarry.embed.*": {"queue": EMBED},
    "quarry.write.*": {"queue": WRITE},
    "quarry.webhook.*": {"queue": WEBHOOK},
}


def queues_for_profile(profile: str) -> tuple[str, ...]:
    """The queues of a worker profile; a ValueError names an unknown profile."""
    try:
        return WORKER_PROFILES[profile]
    except KeyError:
        known = ", ".join(sorted(WORKER_PROFILES))
        raise ValueError(f"unknown worker profile {profile!r} (known: {known})") from None


# Task names: explicit and stable, since messages in flight and dead letters carry them.
# pipeline/flow.py places each in the stage graph.
EMBED_CHUNKS_TASK: Final = "quarry.embed.chunks"
WRITE_CHUNKS_TASK: Final = "quarry.write.chunks"
INGEST_JOB_TASK: Final = "quarry.ingest.job"
INGEST_MORE_TASK: Final = "quarry.ingest.more"
CHUNK_FILES_TASK: Final = "quarry.chunk.files"
GRAPH_PLAN_TASK: Final = "quarry.write.graph-plan"
GRAPH_FILES_TASK: Final = "quarry.write.graph-files"
COMMIT_JOB_TASK: Final = "quarry.write.commit"
WEBHOOK_DELIVER_TASK: Final = "quarry.webhook.deliver"
SWEEP_JOBS_TASK: Final = "quarry.ingest.sweep"
DELETE_REPO_TASK: Final = "quarry.write.delete-repo"
# Rows written since go into the HNSW index (migration 0021), after their job.
INDEX_VECTORS_TASK: Final = "quarry.write.index-vectors"
# A model switch (pipeline/embedding_models.py): on the embed queue, where the models are.
MODEL_BACKFILL_TASK: Final = "quarry.embed.model-backfill"
MODEL_RETIRE_TASK: Final = "quarry.embed.model-retire"

ALL_TASKS: Final = (
    INGEST_JOB_TASK,
    INGEST_MORE_TASK,
    CHUNK_FILES_TASK,
    EMBED_CHUNKS_TASK,
    WRITE_CHUNKS_TASK,
    GRAPH_PLAN_TASK,
    GRAPH_FILES_TASK,
    COMMIT_JOB_TASK,
    WEBHOOK_DELIVER_TASK,
    SWEEP_JOBS_TASK,
    DELETE_REPO_TASK,
    INDEX_VECTORS_TASK,
    MODEL_BACKFILL_TASK,
    MODEL_RETIRE_TASK,
)

# Which worker holds which delivered message (tasks/transport.py records it; the sweeper
# gives back the messages of a worker whose lease ran out: pipeline/adapters/redis/
# in_flight.py). A worker's main process renews its lease every LEASE_RENEW_S; a killed
# worker's messages are back on their queues within LEASE_TTL_S plus one sweep interval,
# instead of after the broker's visibility timeout.
HELD_KEY_PREFIX: Final = "quarry:broker:held:"
LEASE_KEY_PREFIX: Final = "quarry:broker:lease:"
LEASE_TTL_S: Final = 15
LEASE_RENEW_S: Final = 5
