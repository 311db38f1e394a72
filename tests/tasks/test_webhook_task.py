"""``quarry.webhook.deliver`` called directly with fakes: the retry schedule the settings
choose, and deliveries that end undelivered kept as dead letters that replay."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from config.queues import WEBHOOK_DELIVER_TASK
from config.settings import load_settings
from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.dead_letters import InMemoryDeadLetters
from pipeline.adapters.fakes.deletion_store import InMemoryRepoDeletionStore
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.in_flight import InMemoryInFlight
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.adapters.fakes.upload_store import InMemoryUploadStore
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.adapters.fakes.webhook_key_store import InMemoryWebhookKeyStore
from pipeline.adapters.fakes.webhook_sender import InMemoryWebhookSender, Response
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.tokens import CharBoundTokenCounter
from pipeline.errors import StoreUnavailableError
from pipeline.jobs import JobRequest, JobSource, SourceKind
from pipeline.models import DeadLetter, RepoRef
from pipeline.stages.indexing import JobContext
from pipeline.webhooks.retries import RetrySchedule
from tasks import context
from tasks.webhook import deliver_webhook, retry_schedule

URL = "https://hooks.example/quarry?tenant=acme"
EVENT = {"event": "job.done", "delivery_id": "d-1"}


class Retried(Exception):  # noqa: N818 (stands in for celery's Retry)
    def __init__(self, kwargs: dict[str, Any], countdown: float) -> None:
        super().__init__("retry")
        self.kwargs = kwargs
        self.countdown = countdown


class DownLetters(InMemoryDeadLetters):
    def add(self, letter: DeadLetter) -> None:
        raise StoreUnavailableError("redis", "connection refused")


@dataclass
class Hook:
    jobs: InMemoryJobStore
    sender: InMemoryWebhookSender
    letters: InMemoryDeadLetters
    job_id: str


def _install(
    responses: Sequence[Response], *, attempts: int = 3, letters: InMemoryDeadLetters | None = None
) -> Hook:
    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        raise AssertionError(f"a delivery sends nothing on, got {task}")

    jobs = InMemoryJobStore()
    request = JobRequest(
        RepoRef("acme", "tools"), JobSource(SourceKind.PATH, "/src"), callback_url=URL
    )
    job, _ = jobs.create(request, job_id="00000000-0000-4000-8000-000000000001", commit="c1")
    sender = InMemoryWebhookSender(resolve=lambda host, port: ["93.184.216.34"])
    sender.script(*responses)
    letters = InMemoryDeadLetters() if letters is None else letters
    context.install(
        context.Resources(
            settings=load_settings(
                env={},
                webhook_max_attempts=attempts,
                webhook_retry_base_s=1.0,
                webhook_retry_cap_s=4.0,
            ),
            jobs=JobContext(jobs, InMemorySnapshotStore(), InMemoryJobBoard(), send),
            dead_letters=letters,
            webhook_secret="whsec-test",
            cpu=context.CpuProfile(
                vectors=InMemoryVectorStore(),
                graph=InMemoryGraphStore(),
                blobs=InMemoryBlobStore(),
                deletions=InMemoryRepoDeletionStore(InMemoryJobStore()),
                uploads=InMemoryUploadStore(),
                fetcher=InMemorySourceFetcher(),
                in_flight=InMemoryInFlight(),
                chunking=ChunkingOptions(),
                counter=CharBoundTokenCounter(),
                webhooks=sender,
                webhook_keys=InMemoryWebhookKeyStore(),
            ),
        )
    )
    return Hook(jobs, sender, letters, job.job_id)


@pytest.fixture(autouse=True)
def _retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def fake_retry(*, kwargs: dict[str, Any], countdown: float, **_: Any) -> Retried:
        return Retried(kwargs, countdown)

    monkeypatch.setattr(deliver_webhook, "retry", fake_retry)
    yield
    context.install(None)


def _run_until_it_ends(hook: Hook, **kwargs: Any) -> tuple[str, list[float]]:
    """Run the delivery and each retry it asks for; its outcome and the waits."""
    kwargs = {"job_id": hook.job_id, **EVENT, **kwargs}
    waits: list[float] = []
    for _ in range(100):
        try:
            return deliver_webhook.run(**kwargs), waits
        except Retried as retried:
            waits.append(retried.countdown)
            kwargs = retried.kwargs
    raise AssertionError("the delivery never ended")


def test_the_default_settings_choose_the_documented_schedule() -> None:
    schedule = retry_schedule(load_settings(env={}))
    assert schedule == RetrySchedule(base_s=40.0, cap_s=600.0, max_attempts=10)
    assert schedule.window_s() == (30 * 60.0, 60 * 60.0)


def test_a_receiver_that_keeps_failing_is_given_up_as_one_dead_letter_with_its_event() -> None:
    hook = _install([503, 503, 503, 503])
    outcome, waits = _run_until_it_ends(hook)
    assert outcome == "failed"
    assert len(hook.sender.requests) == 3
    schedule = RetrySchedule(base_s=1.0, cap_s=4.0, max_attempts=3)
    assert len(waits) == 2
    assert all(
        schedule.longest_s(n) / 2 <= w <= schedule.longest_s(n) for n, w in enumerate(waits, 1)
    )
    (letter,) = hook.letters.list()
    assert letter.task == WEBHOOK_DELIVER_TASK
    # The task's arguments less its attempt: a replay starts again at 1. No URL.
    assert letter.payload == {"job_id": hook.job_id, **EVENT}
    assert letter.attempts == 3
    assert hook.job_id in letter.error and "job.done" in letter.error
    assert "https://hooks.example/quarry" in letter.error and "answered 503" in letter.error
    job = hook.jobs.get(hook.job_id)
    assert job is not None
    assert [d.outcome for d in job.webhooks] == ["retrying", "retrying", "failed"]


def test_a_callback_that_never_answers_costs_max_attempts_and_one_letter() -> None:
    hook = _install(["timeout"] * 20, attempts=4)
    outcome, waits = _run_until_it_ends(hook)
    assert outcome == "failed"
    assert len(hook.sender.requests) == 4 and len(waits) == 3
    assert sum(waits) <= RetrySchedule(base_s=1.0, cap_s=4.0, max_attempts=4).window_s()[1]
    assert len(hook.letters.list()) == 1


def test_a_4xx_is_a_dead_letter_at_once_not_retried() -> None:
    hook = _install([410])
    outcome, waits = _run_until_it_ends(hook)
    assert (outcome, waits) == ("refused", [])
    (letter,) = hook.letters.list()
    assert letter.attempts == 1 and "answered 410" in letter.error


def test_a_replayed_letter_starts_at_attempt_one_and_goes_to_the_jobs_own_url() -> None:
    hook = _install([503, 503, 503, 200, 200])
    assert _run_until_it_ends(hook)[0] == "failed"
    (letter,) = hook.letters.list()
    # What `quarry dlq replay` sends: the payload unchanged, as keyword arguments.
    assert deliver_webhook.run(**letter.payload) == "delivered"
    assert hook.sender.requests[-1].url == URL
    job = hook.jobs.get(hook.job_id)
    assert job is not None
    assert (job.webhooks[-1].attempt, job.webhooks[-1].outcome) == (1, "delivered")
    # A letter cannot name a URL of its own: the task takes none.
    with pytest.raises(TypeError):
        deliver_webhook.run(**letter.payload, callback_url="https://elsewhere.example/")


def test_a_delivered_event_leaves_no_letter() -> None:
    hook = _install([500, 200])
    assert _run_until_it_ends(hook)[0] == "delivered"
    assert hook.letters.list() == []


def test_a_letter_that_cannot_be_kept_does_not_fail_or_resend_the_delivery() -> None:
    hook = _install([404], letters=DownLetters())
    assert _run_until_it_ends(hook) == ("refused", [])
    assert len(hook.sender.requests) == 1
