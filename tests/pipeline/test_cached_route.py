"""The chunk stage's cache-first route: a file whose every chunk the embedding cache holds
for the active model goes to the write stage with those vectors, skipping the embed stage
(pipeline.stages.embed.write_cached, pipeline.stages.backfill.CachedVectors). On fakes:
the registry of tests/pipeline/test_backfill.py, the in-memory cache and vector store;
the real workers run it in tests/workers (the cached re-index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from config.queues import EMBED_CHUNKS_TASK, WRITE_CHUNKS_TASK
from pipeline.adapters.fakes.vector_store import InMemoryEmbeddingCache, InMemoryVectorStore
from pipeline.analysis.inventory import take_inventory
from pipeline.messages import decode_file_chunks, decode_vectors
from pipeline.sources.blobs import local_reader
from pipeline.stages.backfill import CachedVectors
from pipeline.stages.chunk import chunk_files
from pipeline.stages.write import write_files
from tests.pipeline.test_backfill import FakeRegistry, model
from tests.reliability.chunk_worker import COUNTER, OPTIONS, REPO, fake_context

DIM = 8
Sent = list[tuple[str, list[dict[str, Any]]]]


def _tree(root: Path) -> Path:
    for name in ("a", "b", "c"):
        (root / f"{name}.py").write_text(
            f'def {name}_first(x):\n    """Return x for {name}."""\n    return x\n\n\n'
            f"def {name}_second(y):\n    return y * 2\n"
        )
    return root


def _chunk(root: Path, sent: Sent, cached: CachedVectors | None) -> tuple[int, str, Any]:
    ctx, job_id = fake_context(sent)
    files = take_inventory(root).files
    ctx.board.set_counters(job_id, {"files.todo": len(files)})
    served = chunk_files(
        ctx, job_id, REPO, files, read=local_reader(root), options=OPTIONS, counter=COUNTER,
        repo_paths=lambda: None, cached=cached,
    )  # fmt: skip
    return served, job_id, ctx


def _fill(cache: InMemoryEmbeddingCache, sent: Sent, model_id: str, skip: str = "") -> None:
    """Cache a vector for every chunk the EMBED messages in ``sent`` carry, but those of
    the file ``skip``."""
    rng = np.random.default_rng(7)
    for task, payloads in sent:
        assert task == EMBED_CHUNKS_TASK
        for payload in payloads:
            batch = decode_file_chunks(payload["message"])
            if batch.file.path == skip:
                continue
            vectors = {
                c.content_hash: rng.standard_normal(DIM).astype(np.float32) for c in batch.chunks
            }
            cache.put_many(model_id, vectors)


def test_files_the_cache_holds_whole_go_to_the_write_stage_with_those_vectors(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path)
    cache = InMemoryEmbeddingCache(dimension=DIM)
    first: Sent = []
    assert _chunk(root, first, None)[0] == 0
    _fill(cache, first, "model-a", skip="c.py")
    total = sum(len(decode_file_chunks(p["message"]).chunks) for _, ps in first for p in ps)
    registry = FakeRegistry([model("model-a", "active", DIM)])

    sent: Sent = []
    served, job_id, ctx = _chunk(root, sent, CachedVectors(registry, cache, refresh_s=0))
    by_task = {task: payloads for task, payloads in sent}
    embedded = [decode_file_chunks(p["message"]).file.path for p in by_task[EMBED_CHUNKS_TASK]]
    assert embedded == ["c.py"]  # one chunk missing: the whole file goes to be embedded
    [write] = by_task[WRITE_CHUNKS_TASK]  # one message for the job's cached files
    messages = write["messages"]
    assert sorted(decode_file_chunks(m).file.path for m in messages) == ["a.py", "b.py"]
    c_chunks = total - served
    assert served == sum(len(decode_file_chunks(m).chunks) for m in messages) and c_chunks > 0
    for message in messages:
        batch = decode_file_chunks(message)
        assert message["model_id"] == "model-a"
        got = decode_vectors(message["vectors"], len(batch.chunks))
        want = cache.get_many("model-a", [c.content_hash for c in batch.chunks])
        for chunk, vector in zip(batch.chunks, got, strict=True):
            assert vector is not None
            np.testing.assert_array_equal(vector, want[chunk.content_hash])
    counters = ctx.board.counters(job_id)
    assert counters["chunks.cached"] == served and "chunks.embedded" in counters

    # The write stage takes the routed message as it takes the embed stage's.
    store = InMemoryVectorStore(dimension=DIM)
    store.ensure_repository(REPO)
    assert write_files(ctx, store, messages) == served
    assert ctx.board.counters(job_id).get("files.written") == 2


def test_every_file_goes_to_the_embed_stage_during_a_backfill_or_without_the_registry(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path)
    cache = InMemoryEmbeddingCache(dimension=DIM)
    first: Sent = []
    _chunk(root, first, None)
    _fill(cache, first, "model-a")
    for registry in (
        FakeRegistry([model("model-a", "active", DIM), model("model-b", "backfilling", 4, 2)]),
        FakeRegistry([]),  # no active model registered yet
    ):
        sent: Sent = []
        served, _, _ = _chunk(root, sent, CachedVectors(registry, cache, refresh_s=0))
        assert served == 0 and [task for task, _ in sent] == [EMBED_CHUNKS_TASK]
    down = FakeRegistry([model("model-a", "active", DIM)])
    down.down = True
    sent = []
    assert _chunk(root, sent, CachedVectors(down, cache, refresh_s=0))[0] == 0
    assert [task for task, _ in sent] == [EMBED_CHUNKS_TASK]
    # The same registry answering again: the cache serves the files.
    down.down = False
    sent = []
    assert _chunk(root, sent, CachedVectors(down, cache, refresh_s=0))[0] > 0
    assert [task for task, _ in sent] == [WRITE_CHUNKS_TASK]
