"""Flower on the session stack: authenticated, it shows every stage queue, it counts each
embed message of a job (celery-batches runs many in one flush), and the job sweep every
interval stays out of its task list."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.endpoints import Endpoints
from config.queues import ALL_QUEUES, EMBED_CHUNKS_TASK, SWEEP_JOBS_TASK
from config.settings import QuarrySettings
from tests.workers.jobs_api import enqueue, new_content, searchable_chunks, wait
from workers.main import node_name

pytestmark = pytest.mark.timeout(120)


def test_flower_needs_its_password_and_shows_every_queue_with_its_workers(
    endpoints: Endpoints,
) -> None:
    url = f"{endpoints.flower_url}/api/queues/length"
    anonymous = httpx.get(url, timeout=10)
    assert anonymous.status_code == 401
    wrong = httpx.get(url, auth=(endpoints.flower_user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    auth = (endpoints.flower_user, endpoints.flower_password)
    # Flower learns the queues from the workers' events: give them a moment after start.
    deadline = time.monotonic() + 90
    names: set[str] = set()
    while time.monotonic() < deadline:
        response = httpx.get(url, auth=auth, timeout=10)
        assert response.status_code == 200, response.text
        queues: list[dict[str, Any]] = response.json()["active_queues"]
        names = {q["name"] for q in queues}
        if names >= set(ALL_QUEUES):
            break
        time.sleep(1)
    assert names >= set(ALL_QUEUES), names
    # Every queue is consumed by a live worker Flower inspects (not only configured).
    workers = httpx.get(
        f"{endpoints.flower_url}/api/workers", params={"refresh": "true"}, auth=auth, timeout=60
    )
    assert workers.status_code == 200, workers.text
    consumed = {
        q["name"] for info in workers.json().values() for q in info.get("active_queues") or []
    }
    assert consumed == set(ALL_QUEUES), workers.json().keys()


def _auth(endpoints: Endpoints) -> tuple[str, str]:
    return (endpoints.flower_user, endpoints.flower_password)


def _worker_counts(endpoints: Endpoints, worker: str) -> dict[str, int]:
    """Flower's per-worker event counts, as its Workers page shows them ("Processed" is
    task-received)."""
    response = httpx.get(
        f"{endpoints.flower_url}/workers", params={"json": 1}, auth=_auth(endpoints), timeout=10
    )
    assert response.status_code == 200, response.text
    for info in response.json()["data"]:
        if info.get("hostname") == worker:
            return {k: int(v) for k, v in info.items() if k.startswith("task-")}
    return {}


def _tasks(endpoints: Endpoints, name: str) -> dict[str, dict[str, Any]]:
    """Every task of that name in Flower's task list, by id."""
    response = httpx.get(
        f"{endpoints.flower_url}/api/tasks",
        params={"taskname": name},
        auth=_auth(endpoints),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    tasks: dict[str, dict[str, Any]] = response.json()
    return tasks


def test_flower_counts_every_embed_message_of_a_job(
    api: httpx.Client, tree: Path, endpoints: Endpoints
) -> None:
    worker = node_name("embed")
    marker = uuid.uuid4().hex
    (tree / "flower_probe.py").write_text(f"def probe_{marker}():\n    return 1\n")
    new_content(tree, marker)
    repo = f"flower-{marker[:8]}"
    before = _worker_counts(endpoints, worker)

    job_id = enqueue(api, source=str(tree), repo=repo)
    assert wait(api, job_id)["status"] == "done"
    # New content in every file: every file with chunks went through the embed queue, one
    # message per file (pipeline/stages/chunk.py).
    messages = len({path for path, _ in searchable_chunks(endpoints, repo)})
    assert messages > 1

    def ours() -> dict[str, dict[str, Any]]:
        tasks = _tasks(endpoints, EMBED_CHUNKS_TASK)
        return {k: t for k, t in tasks.items() if job_id in str(t.get("kwargs"))}

    deadline = time.monotonic() + 30
    seen = ours()
    while {t["state"] for t in seen.values()} != {"SUCCESS"} and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = ours()
    after = _worker_counts(endpoints, worker)
    print(f"flower: job of {messages} embed messages, embed worker {before} -> {after}")
    # Flower's task list has each message of the job, run and succeeded on the embed
    # worker; its Workers page counts them (Processed is task-received). At least: a
    # message held past the broker's visibility timeout (30 s in the tests, on busy
    # cores) is delivered again, and received and run again.
    assert len(seen) == messages, (len(seen), messages)
    assert {t["state"] for t in seen.values()} == {"SUCCESS"}
    assert {t["worker"] for t in seen.values()} == {worker}
    for event in ("task-received", "task-started", "task-succeeded"):
        assert after.get(event, 0) - before.get(event, 0) >= messages, (event, before, after)


def test_a_copy_of_known_content_skips_the_embed_queue_on_the_real_workers(
    api: httpx.Client, tree: Path, endpoints: Endpoints
) -> None:
    """The chunk stage's cache-first route on the real stack: the second repository of
    the same content is written from the embedding cache, and no message of its job
    reaches the embed queue (Flower's task list, which shows the first job's)."""
    marker = uuid.uuid4().hex
    new_content(tree, marker)
    jobs = []
    for name in ("first", "copy"):
        job_id = enqueue(api, source=str(tree), repo=f"cached-{name}-{marker[:8]}")
        final = wait(api, job_id)
        assert final["status"] == "done", final
        jobs.append((job_id, final))

    def embed_tasks(job_id: str) -> int:
        return sum(
            job_id in str(t.get("kwargs")) for t in _tasks(endpoints, EMBED_CHUNKS_TASK).values()
        )

    (first, _), (copy, copied) = jobs
    deadline = time.monotonic() + 30
    while embed_tasks(first) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert embed_tasks(first) > 0  # Flower shows the events: the first job embedded
    assert embed_tasks(copy) == 0
    chunks = copied["chunks"]
    assert chunks["cached"] == chunks["total"] > 0 and chunks["embedded"] == 0, chunks


def test_housekeeping_sweeps_run_but_stay_out_of_flowers_task_list(
    endpoints: Endpoints, stack_settings: QuarrySettings
) -> None:
    url = f"http://127.0.0.1:{stack_settings.worker_metrics_port('cpu')}/metrics"
    interval_s = stack_settings.job_sweep_interval_s
    first = _sweeps(url)
    time.sleep(max(3.0, 4 * interval_s))
    assert _sweeps(url) > first  # the sweep still runs, every interval
    listed = _tasks(endpoints, SWEEP_JOBS_TASK)
    assert not listed, f"{len(listed)} sweeps in Flower's task list"
    counts = _worker_counts(endpoints, node_name("cpu"))
    print(f"flower: cpu worker {counts}, sweeps counted by the worker {_sweeps(url)}")


def _sweeps(url: str) -> float:
    text = httpx.get(url, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "quarry_tasks_total"
        and sample.labels.get("task") == SWEEP_JOBS_TASK
        and sample.labels.get("outcome") == "succeeded"
    )
