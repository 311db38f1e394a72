"""Stage tasks called directly with fakes: the write path, the retry policy, dead letters."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from config.queues import EMBED_CHUNKS_TASK, WRITE_CHUNKS_TASK
from config.settings import load_settings
from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.circuit_breaker import InMemoryCircuitBreaker
from pipeline.adapters.fakes.dead_letters import InMemoryDeadLetters
from pipeline.adapters.fakes.deletion_store import InMemoryRepoDeletionStore
from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.in_flight import InMemoryInFlight
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.adapters.fakes.upload_store import InMemoryUploadStore
from pipeline.adapters.fakes.vector_store import InMemoryEmbeddingCache, InMemoryVectorStore
from pipeline.adapters.fakes.webhook_key_store import InMemoryWebhookKeyStore
from pipeline.adapters.fakes.webhook_sender import InMemoryWebhookSender
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.tokens import CharBoundTokenCounter
from pipeline.errors import ConfigError, StoreUnavailableError
from pipeline.messages import FileChunks, encode_file_chunks, encode_vectors
from pipeline.models import FileVersion, RepoRef
from pipeline.ports import GraphStore, VectorStore
from pipeline.stages.embedding import EmbeddingService
from pipeline.stages.guarded import Deferred, guarded
from pipeline.stages.indexing import JobContext
from tasks import context
from tasks.base import backoff_s, breaker_wait_s
from tasks.embed import embed_chunks
from tasks.write import write_chunks

REPO = RepoRef("acme", "tools")
SOURCE = (
    b"class Greeter:\n    def greet(self, name):\n        return helper(name)\n\n\n"
    b"def helper(name):\n    return name\n"
)
FILE = FileVersion("src/greet.py", "cd" * 32, "python", len(SOURCE))


class Retried(Exception):  # noqa: N818 (stands in for celery's Retry)
    def __init__(self, kwargs: dict[str, Any], countdown: float) -> None:
        super().__init__("retry")
        self.kwargs = kwargs
        self.countdown = countdown


class FlakyStore(InMemoryVectorStore):
    """Down (a transient error on every call) until ``failures`` upserts have failed."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def ensure_repository(self, repo: RepoRef) -> None:
        if self.failures > 0:
            raise StoreUnavailableError("postgres", "connection refused")
        super().ensure_repository(repo)

    def upsert_chunks(
        self, repo: RepoRef, chunks: Any, *, whole_versions: bool = False, defer_index: bool = False
    ) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("postgres", "connection refused")
        return super().upsert_chunks(
            repo, chunks, whole_versions=whole_versions, defer_index=defer_index
        )


@dataclass
class Fixture:
    vectors: VectorStore
    store: InMemoryVectorStore
    graph: InMemoryGraphStore
    letters: InMemoryDeadLetters
    breaker: InMemoryCircuitBreaker
    sent: list[tuple[str, dict[str, Any], float | None]] = field(default_factory=list)


def _analysis() -> FileAnalysis:
    result = analyze_file(FILE.path, SOURCE)
    assert isinstance(result, FileAnalysis)
    return result


def _install(
    store: InMemoryVectorStore,
    *,
    fail_max: int = 5,
    max_retries: int = 3,
    jobs: JobContext | None = None,
) -> Fixture:
    breaker = InMemoryCircuitBreaker("postgres", fail_max=fail_max, reset_timeout_s=30)
    graph = InMemoryGraphStore()
    letters = InMemoryDeadLetters()
    inner: Deferred[VectorStore] = Deferred(lambda: store)
    vectors = guarded(inner, breaker)
    embedder = InMemoryEmbedder()
    graph_store: Deferred[GraphStore] = Deferred(lambda: graph)
    context.install(
        context.Resources(
            settings=load_settings(env={}, write_max_retries=max_retries),
            embed=context.EmbedProfile(
                EmbeddingService(
                    embedder, InMemoryEmbeddingCache(), batch_tokens=4096, max_chunks=64
                )
            ),
            cpu=context.CpuProfile(
                vectors=vectors,
                graph=guarded(graph_store, InMemoryCircuitBreaker("graph", fail_max=5)),
                blobs=InMemoryBlobStore(),
                deletions=InMemoryRepoDeletionStore(InMemoryJobStore()),
                uploads=InMemoryUploadStore(),
                fetcher=InMemorySourceFetcher(),
                in_flight=InMemoryInFlight(),
                chunking=ChunkingOptions(),
                counter=CharBoundTokenCounter(),
                webhooks=InMemoryWebhookSender(),
                webhook_keys=InMemoryWebhookKeyStore(),
            ),
            dead_letters=letters,
            breakers={"postgres": breaker},
            jobs=jobs,
        )
    )
    return Fixture(vectors, store, graph, letters, breaker)


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_retry(*, kwargs: dict[str, Any], countdown: float, **_: Any) -> Retried:
        return Retried(kwargs, countdown)

    monkeypatch.setattr(write_chunks, "retry", fake_retry)


@pytest.fixture(autouse=True)
def _uninstall() -> Iterator[None]:
    yield
    context.install(None)


def _write_message() -> dict[str, Any]:
    chunks = _analysis().chunks
    message = encode_file_chunks(FileChunks("job-1", REPO, FILE, chunks))
    message["model_id"] = "fake-embedder"
    message["vectors"] = encode_vectors(InMemoryEmbedder().embed([c.text for c in chunks]))
    return json.loads(json.dumps(message))


def test_a_write_lands_and_replaying_it_changes_nothing() -> None:
    f = _install(InMemoryVectorStore())
    message = _write_message()
    written = write_chunks.run(message=message)
    assert written == len(message["chunks"])
    keys = f.store.chunk_keys(REPO)
    write_chunks.run(message=message)
    assert f.store.chunk_keys(REPO) == keys
    assert {k[2] for k in keys} == {c["id"] for c in message["chunks"]}


def test_a_malformed_write_is_dead_lettered_with_its_payload_not_retried() -> None:
    f = _install(InMemoryVectorStore())
    message = _write_message()
    message["vectors"] = ["not base64"] * len(message["chunks"])
    assert write_chunks.run(message=message) is None
    (letter,) = f.letters.list()
    assert letter.task == WRITE_CHUNKS_TASK
    assert letter.payload == {"message": message}
    assert "vectors" in letter.error
    assert f.breaker.state == "closed"


@pytest.mark.usefixtures("retries")
def test_a_transient_failure_is_retried_with_backoff_and_a_raised_attempt() -> None:
    _install(FlakyStore(failures=1))
    with pytest.raises(Retried) as caught:
        write_chunks.run(message=_write_message(), attempt=0)
    assert caught.value.kwargs["attempt"] == 1
    assert 0.5 <= caught.value.countdown <= 1.0


@pytest.mark.usefixtures("retries")
def test_exhausted_retries_end_in_the_dead_letters() -> None:
    f = _install(FlakyStore(failures=10), max_retries=3)
    assert write_chunks.run(message=_write_message(), attempt=3) is None
    (letter,) = f.letters.list()
    assert letter.attempts == 4
    assert "connection refused" in letter.error


@pytest.mark.usefixtures("retries")
def test_an_open_breaker_waits_its_remaining_time_without_using_an_attempt() -> None:
    f = _install(FlakyStore(failures=100), fail_max=2)
    for attempt in range(2):
        with pytest.raises(Retried):
            write_chunks.run(message=_write_message(), attempt=attempt)
    assert f.breaker.state == "open"
    with pytest.raises(Retried) as caught:
        write_chunks.run(message=_write_message(), attempt=2)
    assert caught.value.kwargs["attempt"] == 2
    assert 25 <= caught.value.countdown <= 37
    assert f.letters.list() == []


@pytest.mark.usefixtures("retries")
def test_a_breaker_wait_is_shown_in_the_job_status() -> None:
    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        raise AssertionError(f"nothing is sent while the store is down, got {task}")

    board = InMemoryJobBoard()
    jobs = JobContext(InMemoryJobStore(), InMemorySnapshotStore(), board, send)
    f = _install(FlakyStore(failures=100), fail_max=2, jobs=jobs)
    with pytest.raises(Retried):
        write_chunks.run(message=_write_message(), attempt=0)
    assert board.waits("job-1") == []  # a failure under a closed breaker is no wait
    before = time.time()
    with pytest.raises(Retried) as caught:
        write_chunks.run(message=_write_message(), attempt=1)
    assert f.breaker.state == "open"
    (wait,) = board.waits("job-1")
    assert wait.store == "postgres"
    assert before + caught.value.countdown <= wait.until <= time.time() + caught.value.countdown
    assert "quarry.write.chunks" in wait.reason
    assert "circuit breaker open" in wait.reason


@dataclass
class FakeRequest:
    id: str
    kwargs: dict[str, Any]


def test_one_flush_embeds_many_files_once_each_and_forwards_vectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f = _install(InMemoryVectorStore())

    def send_task(name: str, kwargs: dict[str, Any], countdown: float | None = None) -> None:
        f.sent.append((name, kwargs, countdown))

    monkeypatch.setattr(embed_chunks.app, "send_task", send_task)
    chunks = _analysis().chunks
    other = FileVersion("copy/greet.py", FILE.sha256, "python", FILE.size_bytes)
    requests = [
        FakeRequest("r1", {"message": encode_file_chunks(FileChunks("j1", REPO, FILE, chunks))}),
        FakeRequest("r2", {"message": encode_file_chunks(FileChunks("j2", REPO, other, chunks))}),
        FakeRequest("r3", {"message": {"file": "nonsense"}}),
    ]
    embed_chunks.run(requests)
    service = context.embed_profile()[1].embedding
    assert service is not None
    embedder = service.embedder
    assert isinstance(embedder, InMemoryEmbedder)
    assert len(embedder.embedded_texts) == len({c.content_hash for c in chunks})
    assert [name for name, _, _ in f.sent] == [WRITE_CHUNKS_TASK, WRITE_CHUNKS_TASK]
    for _, kwargs, _ in f.sent:  # one write per job of the flush
        (message,) = kwargs["messages"]
        vectors = message["vectors"]
        assert len(vectors) == len(chunks) and all(v for v in vectors)
    (letter,) = f.letters.list()
    assert (letter.task, letter.letter_id) == (EMBED_CHUNKS_TASK, "r3")


def test_backoff_grows_and_stays_jittered_within_bounds() -> None:
    assert backoff_s(0, rng=lambda: 0.0) == 0.5
    assert backoff_s(3, rng=lambda: 1.0) == 8.0
    assert backoff_s(30, rng=lambda: 1.0) == 300.0
    assert breaker_wait_s(10.0, rng=lambda: 1.0) == pytest.approx(12.0)
    assert breaker_wait_s(0.1, rng=lambda: 1.0) == pytest.approx(0.6)


def test_vectors_survive_the_trip_through_the_write_stage() -> None:
    f = _install(InMemoryVectorStore())
    message = _write_message()
    write_chunks.run(message=message)
    texts = [c["text"] for c in message["chunks"]]
    expected = InMemoryEmbedder().embed(texts)
    got = [f.store.embedding(REPO, FILE.sha256, c["id"]) for c in message["chunks"]]
    assert all(v is not None for v in got)
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-6)  # type: ignore[arg-type]


def test_one_flush_hands_a_jobs_files_to_one_write_that_settles_them_together() -> None:
    """A job of many small files costs one write task per flush, not one per file."""
    board = InMemoryJobBoard()
    sent: list[tuple[str, Mapping[str, Any]]] = []

    def send(name: str, kwargs_list: Sequence[Mapping[str, Any]]) -> None:
        sent.extend((name, kwargs) for kwargs in kwargs_list)

    ctx = JobContext(InMemoryJobStore(), InMemorySnapshotStore(), board, send)
    f = _install(InMemoryVectorStore(), jobs=ctx)
    chunks = _analysis().chunks
    versions = [
        FileVersion(f"pkg/m{i}.py", f"{i:02d}" * 32, "python", FILE.size_bytes) for i in range(5)
    ]
    requests = [
        FakeRequest(f"r{i}", {"message": encode_file_chunks(FileChunks("j1", REPO, v, chunks))})
        for i, v in enumerate(versions)
    ]
    embed_chunks.run(requests)
    ((name, kwargs),) = sent
    assert name == WRITE_CHUNKS_TASK and len(kwargs["messages"]) == 5
    payload = json.loads(json.dumps(kwargs))
    written = write_chunks.run(**payload)
    assert written == 5 * len(chunks)
    assert {k[:2] for k in f.store.chunk_keys(REPO)} == {(v.path, v.sha256) for v in versions}
    assert board.members("j1", "files.written") == {v.path for v in versions}
    write_chunks.run(**payload)  # delivered again: the same rows
    assert len(f.store.chunk_keys(REPO)) == 5 * len(chunks)


@pytest.mark.parametrize(("todo", "waits"), [(3, True), (200, True), (201, False), (None, False)])
def test_a_small_jobs_rows_wait_for_the_vector_index_and_a_large_jobs_do_not(
    todo: int | None, waits: bool
) -> None:
    """QUARRY_VECTOR_INDEX_DEFER_MAX_FILES (200): a job of at most that many files to
    do leaves its rows to the vector index task; a larger one, or one whose count is
    unknown, pays the index in its writes (migration 0021)."""
    board = InMemoryJobBoard()
    if todo is not None:
        board.set_counters("j1", {"files.todo": todo})
    sent: list[Mapping[str, Any]] = []

    def send(name: str, kwargs_list: Sequence[Mapping[str, Any]]) -> None:
        sent.extend(kwargs for kwargs in kwargs_list if name == WRITE_CHUNKS_TASK)

    ctx = JobContext(InMemoryJobStore(), InMemorySnapshotStore(), board, send)
    f = _install(InMemoryVectorStore(), jobs=ctx)
    chunks = _analysis().chunks
    version = FileVersion("pkg/m.py", "ab" * 32, "python", FILE.size_bytes)
    message = encode_file_chunks(FileChunks("j1", REPO, version, chunks))
    embed_chunks.run([FakeRequest("r1", {"message": message})])
    (write,) = sent
    assert write_chunks.run(**json.loads(json.dumps(write))) == len(chunks)
    assert f.store.pending_rows() == (len(chunks) if waits else 0)


def test_a_malformed_file_in_a_multi_file_write_fails_the_write_and_its_files() -> None:
    board = InMemoryJobBoard()
    ctx = JobContext(InMemoryJobStore(), InMemorySnapshotStore(), board, lambda _t, _k: None)
    f = _install(InMemoryVectorStore(), jobs=ctx)
    good, bad = _write_message(), _write_message()
    bad["file"] = {**bad["file"], "path": "src/other.py"}
    bad["vectors"] = ["not base64"] * len(bad["chunks"])
    assert write_chunks.run(messages=[good, bad]) is None
    assert f.store.chunk_keys(REPO) == set()  # nothing written: the write is one unit
    (letter,) = f.letters.list()
    assert letter.payload == {"messages": [good, bad]}
    assert board.members("job-1", "files.failed") == {FILE.path, "src/other.py"}


def test_an_active_model_that_does_not_load_here_sends_each_message_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """celery-batches acks a flush whatever it raises: a model that fails to load (its
    folder missing on this host) must not drop the messages, but send each again (and,
    past the retries, dead-letter it and fail its file)."""
    f = _install(InMemoryVectorStore())

    def send_task(name: str, kwargs: dict[str, Any], countdown: float | None = None) -> None:
        f.sent.append((name, kwargs, countdown))

    class Unloadable:
        def services(self) -> Any:
            raise ConfigError("model 'code-minilm': no model folder at /models/code-minilm")

    monkeypatch.setattr(embed_chunks.app, "send_task", send_task)
    resources, profile = context.embed_profile()
    unloadable = dataclasses.replace(profile, models=Unloadable())  # type: ignore[arg-type]
    monkeypatch.setattr("tasks.embed.embed_profile", lambda: (resources, unloadable))
    message = encode_file_chunks(FileChunks("j1", REPO, FILE, _analysis().chunks))
    embed_chunks.run([FakeRequest("r1", {"message": message})])
    assert [(name, kwargs["attempt"]) for name, kwargs, _ in f.sent] == [(EMBED_CHUNKS_TASK, 1)]
    assert f.sent[0][1]["message"] == message
    assert f.letters.list() == []
