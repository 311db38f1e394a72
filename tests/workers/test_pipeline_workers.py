"""Embed and write stages through real Celery workers, a real outage, the dead letters.

Runs on the session stack (real Redis, PostgreSQL + pgvector, the Bolt server, the
`cpu` and `embed` workers with the real model on the CPU).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from config.endpoints import Endpoints
from config.queues import EMBED_CHUNKS_TASK, WRITE_CHUNKS_TASK
from config.settings import child_environment
from devstack.services import PostgresService
from devstack.stack import Stack
from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.postgres.connect import connect
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.adapters.redis.breakers import RedisCircuitBreaker
from pipeline.adapters.redis.client import connect_redis
from pipeline.adapters.redis.dead_letters import RedisDeadLetters
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.messages import FileChunks, encode_file_chunks, encode_vectors
from pipeline.models import DeadLetter, FileVersion, RepoRef
from tests.stackutil import run_quarry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "languages"


def _batches(repo: RepoRef, limit: int = 12) -> list[FileChunks]:
    batches = []
    for path in sorted(p for p in FIXTURES.rglob("*") if p.is_file())[:limit]:
        data = path.read_bytes()
        rel = str(path.relative_to(FIXTURES))
        analysis = analyze_file(rel, data)
        if isinstance(analysis, FileAnalysis) and analysis.chunks:
            version = FileVersion(
                rel, hashlib.sha256(data).hexdigest(), analysis.source.language, len(data)
            )
            batches.append(FileChunks(None, repo, version, analysis.chunks))
    return batches


def _expected(batches: list[FileChunks]) -> set[tuple[str, str, str]]:
    return {(b.file.path, b.file.sha256, c.chunk_id) for b in batches for c in b.chunks}


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def store(endpoints: Endpoints) -> Iterator[PgVectorStore]:
    with PgVectorStore(endpoints.postgres_dsn, dimension=384) as vectors:
        yield vectors


def _cache_rows(endpoints: Endpoints) -> int:
    with connect(endpoints.postgres_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM embedding_cache").fetchone()
    assert row is not None
    return int(row[0])


def _stored_models(endpoints: Endpoints, repo: RepoRef) -> list[tuple[str | None, bool]]:
    with connect(endpoints.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT c.model_id, c.embedding IS NOT NULL FROM chunks c"
            " JOIN repositories r ON r.id = c.repository_id"
            " WHERE r.tenant_id = %s AND r.name = %s",
            (repo.tenant, repo.name),
        ).fetchall()
    return [(r[0], bool(r[1])) for r in rows]


def test_chunks_are_embedded_by_the_model_and_written_then_a_copy_hits_the_cache(
    app: Celery, store: PgVectorStore, endpoints: Endpoints
) -> None:
    repo = RepoRef("e2e", f"embed-{uuid.uuid4().hex[:8]}")
    batches = _batches(repo)
    for batch in batches:
        app.send_task(EMBED_CHUNKS_TASK, kwargs={"message": encode_file_chunks(batch)})
    _wait_for(lambda: store.chunk_keys(repo) == _expected(batches), 240, "every chunk written")
    assert _stored_models(endpoints, repo) == [("all-MiniLM-L6-v2", True)]

    cached = _cache_rows(endpoints)
    copy = RepoRef("e2e", f"fork-{uuid.uuid4().hex[:8]}")
    forked = [FileChunks(None, copy, b.file, b.chunks) for b in batches]
    for batch in forked:
        app.send_task(EMBED_CHUNKS_TASK, kwargs={"message": encode_file_chunks(batch)})
    _wait_for(lambda: store.chunk_keys(copy) == _expected(forked), 120, "the fork written")
    assert _cache_rows(endpoints) == cached  # identical chunks: nothing embedded again


def _write_message(batch: FileChunks) -> dict[str, Any]:
    message = encode_file_chunks(batch)
    message["model_id"] = "fake-embedder"
    message["vectors"] = encode_vectors(InMemoryEmbedder().embed([c.text for c in batch.chunks]))
    return message


def test_postgres_down_opens_the_breaker_writes_wait_and_all_land_after(
    app: Celery, stack: Stack, store: PgVectorStore, endpoints: Endpoints
) -> None:
    repo = RepoRef("e2e", f"outage-{uuid.uuid4().hex[:8]}")
    batches = _batches(repo)
    store.ensure_repository(repo)
    postgres = PostgresService(stack.settings, stack.layout, endpoints)
    breaker = RedisCircuitBreaker("postgres", connect_redis(endpoints.redis_url))
    postgres.stop()
    try:
        for batch in batches:
            app.send_task(WRITE_CHUNKS_TASK, kwargs={"message": _write_message(batch)})
        _wait_for(lambda: breaker.state == "open", 90, "the postgres breaker to open")
    finally:
        postgres.start()
    _wait_for(lambda: store.chunk_keys(repo) == _expected(batches), 180, "every write to land")
    letters = RedisDeadLetters(connect_redis(endpoints.redis_url)).list(1000)
    assert not [x for x in letters if repo.name in json.dumps(x.payload)]


def test_a_malformed_write_is_dead_lettered_listed_replayed_and_dropped(
    app: Celery, stack: Stack, store: PgVectorStore, endpoints: Endpoints
) -> None:
    letters = RedisDeadLetters(connect_redis(endpoints.redis_url))
    repo = RepoRef("e2e", f"dlq-{uuid.uuid4().hex[:8]}")
    (batch,) = _batches(repo, limit=1)
    broken = _write_message(batch)
    broken["vectors"] = ["***"] * len(batch.chunks)
    result = app.send_task(WRITE_CHUNKS_TASK, kwargs={"message": broken})
    _wait_for(lambda: letters.get(result.id) is not None, 60, "the dead letter")
    env = {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}
    listed = run_quarry("dlq", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    (row,) = [r for r in rows if r["id"] == result.id]
    assert row["task"] == WRITE_CHUNKS_TASK
    assert "vectors" in row["error"]

    dropped = run_quarry("dlq", "drop", result.id, env=env)
    assert dropped.returncode == 0, dropped.stderr
    assert letters.get(result.id) is None
    unknown = run_quarry("dlq", "drop", result.id, env=env)
    assert unknown.returncode == 2
    assert f"no dead letter with id {result.id!r}" in unknown.stderr

    # A letter whose cause was fixed (here: a good payload) replays into the store.
    letters.add(
        DeadLetter(
            letter_id=f"fixed-{repo.name}",
            task=WRITE_CHUNKS_TASK,
            payload={"message": _write_message(batch)},
            error="StoreUnavailableError: postgres unavailable",
            attempts=21,
            failed_at=time.time(),
        )
    )
    replayed = run_quarry("dlq", "replay", f"fixed-{repo.name}", env=env)
    assert replayed.returncode == 0, replayed.stderr
    _wait_for(lambda: store.chunk_keys(repo) == _expected([batch]), 60, "the replayed write")
    assert letters.get(f"fixed-{repo.name}") is None
