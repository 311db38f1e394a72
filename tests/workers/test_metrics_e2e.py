"""Metrics and logs after a real job on the session stack: the API's /metrics (with its
token) and each worker's metrics port, scraped over HTTP as Prometheus does, hold every
metric of the job with plausible values; the workers' log lines carry the job."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.queues import (
    ALL_QUEUES,
    CHUNK,
    CHUNK_FILES_TASK,
    COMMIT_JOB_TASK,
    EMBED,
    EMBED_CHUNKS_TASK,
    INGEST,
    INGEST_JOB_TASK,
    WRITE,
    WRITE_CHUNKS_TASK,
)
from config.settings import QuarrySettings
from devstack.layout import StackLayout
from devstack.stack import Stack
from tasks.exposition import QUEUE_DEPTH, QUEUE_FILL_RATIO
from tasks.metrics import OWNERS
from tests.observability import base_name, metric_names_in_config
from tests.workers.jobs_api import enqueue, wait

pytestmark = pytest.mark.timeout(300)

Samples = list[tuple[str, dict[str, str], float]]


def _scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    return _parse(httpx.get(url, headers=headers or {}, timeout=10))


def _parse(response: httpx.Response) -> Samples:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def _sum(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for n, got, v in samples if n == name and labels.items() <= got.items())


def _values(samples: Samples, name: str, **labels: str) -> list[float]:
    return [v for n, got, v in samples if n == name and labels.items() <= got.items()]


def _label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {got[label] for n, got, _ in samples if n == name}


def _names(samples: Samples) -> set[str]:
    return {n for n, _, _ in samples}


def _families(url: str, headers: dict[str, str] | None = None) -> set[str]:
    """The metric families a scrape exports (counters without ``_total``, as OWNERS)."""
    response = httpx.get(url, headers=headers or {}, timeout=10)
    return {family.name for family in text_string_to_metric_families(response.text)}


def _not_owned(role: str) -> set[str]:
    return {name for name, owners in OWNERS.items() if role not in owners}


def _eventually(check: Callable[[], None], timeout_s: float = 20) -> None:
    # The job reads done as soon as the commit ends it; the commit task's own outcome
    # is counted a moment later, when the task returns.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _worker_url(settings: QuarrySettings, profile: str) -> str:
    return f"http://127.0.0.1:{settings.worker_metrics_port(profile)}/metrics"


def test_a_job_shows_in_the_metrics_of_the_api_and_of_every_worker(
    api: httpx.Client, tree: Path, stack: Stack, stack_settings: QuarrySettings
) -> None:
    # A file of its own, so that the embedding cache cannot answer every chunk.
    marker = uuid.uuid4().hex
    (tree / "metrics_probe.py").write_text(
        f'def probe_{marker}():\n    """Only this job has it: {marker}."""\n    return 1\n',
        encoding="utf-8",
    )
    repo = f"metrics-{marker[:8]}"
    job_id = enqueue(api, source=str(tree), repo=repo)
    status = wait(api, job_id)
    assert status["status"] == "done", status

    searched = api.get("/v1/search", params={"q": "probe", "repo": repo})
    assert searched.status_code == 200, searched.text

    api_url = str(api.base_url).rstrip("/") + "/metrics"
    assert httpx.get(api_url, timeout=10).status_code == 401  # the token is needed
    on_api = _parse(api.get("/metrics"))
    for queue in ALL_QUEUES:
        fill = _values(on_api, "quarry_queue_fill_ratio", queue=queue)
        assert len(fill) == 1 and 0 <= fill[0] <= 1, (queue, fill)
        assert len(_values(on_api, "quarry_queue_depth", queue=queue)) == 1, queue

    workers = stack.status()["services"]["workers"]  # what `quarry dev status` shows
    urls = {profile: entry["metrics_url"] for profile, entry in workers.items()}
    assert urls == {p: _worker_url(stack_settings, p) for p in ("cpu", "embed")}

    def check_workers() -> None:
        cpu = _scrape(_worker_url(stack_settings, "cpu"))
        embed = _scrape(_worker_url(stack_settings, "embed"))
        both = cpu + embed + on_api
        for task, queue in (
            (INGEST_JOB_TASK, INGEST),
            (CHUNK_FILES_TASK, CHUNK),
            (EMBED_CHUNKS_TASK, EMBED),
            (WRITE_CHUNKS_TASK, WRITE),
            (COMMIT_JOB_TASK, WRITE),
        ):
            on_queue = _sum(both, "quarry_tasks_total", task=task, queue=queue)
            started = _sum(both, "quarry_tasks_total", task=task, outcome="started")
            done = _sum(both, "quarry_tasks_total", task=task, outcome="succeeded")
            assert on_queue > 0 and done > 0 and started >= done, task
            assert _sum(both, "quarry_task_seconds_count", task=task, queue=queue) > 0, task
            assert _sum(both, "quarry_task_seconds_sum", task=task) > 0, task
        assert _sum(cpu + on_api, "quarry_jobs_total", status="done") >= 1
        assert _sum(cpu + on_api, "quarry_job_seconds_count", status="done") >= 1
        assert _sum(cpu + on_api, "quarry_job_files_sum", status="done") >= status["files"]["total"]
        assert _sum(embed, "quarry_embed_batch_chunks_count") > 0
        assert _sum(embed, "quarry_embed_batch_tokens_sum") > 0
        assert _sum(embed, "quarry_embed_chunks_total", result="embedded") > 0
        assert "quarry_embed_cache_hit_ratio" in _names(embed)
        assert _sum(cpu, "quarry_written_items_total", store="postgres") > 0
        # Every metric the alert rules and the dashboard read is exported by someone.
        exported = {base_name(name) for name in _names(both)}
        assert metric_names_in_config() <= exported, metric_names_in_config() - exported
        assert _sum(on_api, "quarry_search_seconds_count", step="total") >= 1
        # Each process exports only what it records: the API no task, breaker or
        # embedding series at 0, the cpu worker no embedding series, the embed worker no
        # write, webhook or sweep series.
        exported = {
            "api": _families(api_url, dict(api.headers)),
            "cpu": _families(_worker_url(stack_settings, "cpu")),
            "embed": _families(_worker_url(stack_settings, "embed")),
        }
        exported["api"] -= {QUEUE_DEPTH, QUEUE_FILL_RATIO}  # read at scrape time, checked above
        for role, families in exported.items():
            assert not families & _not_owned(role), (role, families & _not_owned(role))
        assert {"quarry_tasks", "quarry_breaker_state"} <= exported["cpu"] & exported["embed"]
        assert "quarry_embed_chunks_per_second" in exported["embed"]
        assert "quarry_broker_messages_restored" in exported["cpu"]
        assert {"quarry_search_seconds", "quarry_jobs"} <= exported["api"]
        for samples in (cpu, embed):
            stores = _label_values(samples, "quarry_breaker_state", "store")
            assert stores == {"postgres", "graph"}
            assert _sum(samples, "quarry_breaker_state") == 0  # all closed
            # The queue depths come from the API's scrape alone.
            assert "quarry_queue_depth" not in _names(samples)

    _eventually(check_workers)


def test_every_line_a_task_writes_names_its_job_repository_and_task(
    api: httpx.Client, tree: Path, stack: Stack
) -> None:
    repo = f"logs-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(api, source=str(tree), repo=repo)
    assert wait(api, job_id)["status"] == "done"
    layout = StackLayout(stack.settings.data_dir)

    def check() -> None:
        lines = layout.logfile("worker-cpu").read_text(encoding="utf-8").splitlines()
        ours = [line for line in lines if f"job={job_id}" in line]
        # The commit logs the job's end; its ingest knows only the job id, and the
        # repository comes from the job store.
        ended = [line for line in ours if f"job {job_id} done" in line]
        assert ended, ours[-5:]
        assert f"[job={job_id} repo=default/{repo} task=" in ended[0]

    _eventually(check)
