"""The task signal handlers, sent real Celery signals by fake tasks: outcome counters,
run times by task and queue, and the log context of every line a task writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import signals
from prometheus_client import REGISTRY

from config.logging import log_context, reset_log_context
from config.queues import CHUNK, EMBED, INGEST, WRITE
from config.settings import load_settings
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.jobs import Job, JobRequest, JobSource, SourceKind
from pipeline.models import RepoRef
from pipeline.stages.indexing import JobContext
from tasks import context, observers

REPO = {"tenant": "acme", "name": "tools"}


@dataclass
class FakeRequest:
    delivery_info: Mapping[str, Any] | None = None


@dataclass(eq=False)  # hashable by identity, as signal senders must be
class FakeTask:
    """What the handlers read of a task: its name and its current request."""

    name: str
    request: FakeRequest = field(default_factory=FakeRequest)


@dataclass
class BufferedRequest:
    """A celery-batches SimpleRequest: its message's kwargs and delivery info."""

    kwargs: Mapping[str, Any]
    delivery_info: Mapping[str, Any] = field(default_factory=lambda: {"routing_key": EMBED})


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _count(task: str, queue: str, outcome: str) -> float:
    return _value("quarry_tasks_total", task=task, queue=queue, outcome=outcome)


@pytest.fixture(autouse=True)
def _connected() -> Iterator[None]:
    observers.connect()
    observers.connect()  # idempotent: one handler per signal
    try:
        yield
    finally:
        signals.task_prerun.disconnect(dispatch_uid="quarry.observers.prerun")
        signals.task_postrun.disconnect(dispatch_uid="quarry.observers.postrun")
        context.install(None)
        reset_log_context()


def _run(
    task: Any,
    task_id: str,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    state: str = "SUCCESS",
    body: Any = None,
) -> None:
    """Send the signals Celery's tracer sends around a task body."""
    signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=args, kwargs=kwargs)
    if body is not None:
        body()
    signals.task_postrun.send(
        sender=task,
        task_id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        retval=None,
        state=state,
    )


def test_a_task_that_succeeds_counts_started_and_succeeded_once_and_its_run_time() -> None:
    task = FakeTask("quarry.chunk.files", FakeRequest({"routing_key": CHUNK}))
    name = task.name
    before = {o: _count(name, CHUNK, o) for o in ("started", "succeeded", "failed")}
    seconds_before = _value("quarry_task_seconds_count", task=name, queue=CHUNK)
    seen: dict[str, str] = {}

    def body() -> None:
        seen.update(log_context())

    _run(task, "t-1", kwargs={"job_id": "job-1", "repo": REPO, "files": []}, body=body)
    assert _count(name, CHUNK, "started") == before["started"] + 1
    assert _count(name, CHUNK, "succeeded") == before["succeeded"] + 1
    assert _count(name, CHUNK, "failed") == before["failed"]
    assert _value("quarry_task_seconds_count", task=name, queue=CHUNK) == seconds_before + 1
    assert seen == {"job_id": "job-1", "repo": "acme/tools", "task_id": "t-1"}
    assert log_context() == {}  # cleared when the task ended


@pytest.mark.parametrize(("state", "outcome"), [("FAILURE", "failed"), ("RETRY", "retried")])
def test_a_failed_or_retried_task_counts_that_outcome(state: str, outcome: str) -> None:
    task = FakeTask("quarry.write.chunks", FakeRequest({"routing_key": WRITE}))
    before = _count(task.name, WRITE, outcome)
    succeeded = _count(task.name, WRITE, "succeeded")
    _run(task, f"t-{state}", kwargs={"message": {"job_id": "j", "repo": REPO}}, state=state)
    assert _count(task.name, WRITE, outcome) == before + 1
    assert _count(task.name, WRITE, "succeeded") == succeeded


def test_the_queue_is_the_routing_key_else_the_route_of_the_task_name() -> None:
    routed = FakeTask("quarry.ingest.job", FakeRequest({"routing_key": "elsewhere"}))
    assert observers.queue_of(routed, ()) == "elsewhere"
    assert observers.queue_of(FakeTask("quarry.ingest.job"), ()) == INGEST
    assert observers.queue_of(FakeTask("celery.ping"), ()) == ""


def test_a_batch_takes_the_queue_and_job_of_its_buffered_messages() -> None:
    task = FakeTask("quarry.embed.chunks")  # a batch's own request has no delivery info
    message = {"job_id": "job-7", "repo": REPO, "file": {}}
    one_job = [BufferedRequest({"message": message}), BufferedRequest({"message": message})]
    before = _count(task.name, EMBED, "succeeded")
    seen: dict[str, str] = {}
    _run(task, "batch-1", args=(one_job,), kwargs={}, body=lambda: seen.update(log_context()))
    assert _count(task.name, EMBED, "succeeded") == before + 1
    assert seen == {"job_id": "job-7", "repo": "acme/tools", "task_id": "batch-1"}

    other = {"job_id": "job-8", "repo": {"tenant": "acme", "name": "other"}}
    two_jobs = [BufferedRequest({"message": message}), BufferedRequest({"message": other})]
    assert observers.log_fields("batch-2", (two_jobs,), {}) == {
        "task_id": "batch-2",
        "job_id": "",
        "repo": "",
    }


class CountingJobStore(InMemoryJobStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        self.reads += 1
        return super().get(job_id, tenant)


def test_a_task_that_names_only_its_job_gets_the_repository_from_the_job_store_once() -> None:
    store = CountingJobStore()
    request = JobRequest(RepoRef("acme", "tools"), JobSource(SourceKind.PATH, "/src"), commit="c")
    job, _ = store.create(request, job_id="00000000-0000-4000-8000-0000000000aa", commit="c")
    jobs = JobContext(store, InMemorySnapshotStore(), InMemoryJobBoard(), lambda *_: None)
    context.install(context.Resources(settings=load_settings(env={}), jobs=jobs))
    task = FakeTask("quarry.write.commit", FakeRequest({"routing_key": WRITE}))
    seen: list[Mapping[str, str]] = []
    for attempt in range(2):
        kwargs = {"job_id": job.job_id}
        _run(task, f"c-{attempt}", kwargs=kwargs, body=lambda: seen.append(log_context()))
    assert [s["repo"] for s in seen] == ["acme/tools", "acme/tools"]
    assert store.reads == 1


def test_a_job_store_that_cannot_be_read_leaves_the_repository_out() -> None:
    context.install(None)  # no resources: reading the job raises inside the observer
    fields = observers.log_fields("t", (), {"job_id": "job-unreadable"})
    assert fields == {"task_id": "t", "job_id": "job-unreadable", "repo": ""}


def test_an_observer_that_fails_logs_and_never_stops_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Nameless:
        request = FakeRequest()

    with caplog.at_level(logging.ERROR, logger="quarry.tasks.observers"):
        _run(Nameless(), "broken", kwargs={})
    assert any("observer failed for broken" in r.getMessage() for r in caplog.records)
