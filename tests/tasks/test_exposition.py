"""What Prometheus scrapes: queue depths read from the real Redis at scrape time (and a
scrape that survives Redis being down), the API's registry with one source per name,
and a worker's multiprocess endpoint summing its forked processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import DuplicateTimeseries

from config.queues import ALL_QUEUES, CHUNK, EMBED
from config.settings import METRICS_DIR_ENV, QuarrySettings
from pipeline.adapters.redis.admission import RedisAdmission
from pipeline.adapters.redis.client import connect_redis
from tasks import metrics
from tasks.exposition import Owned, QueueCollector, api_registry
from tests.observability import exported_metric_names, metric_names_in_config
from tests.stackutil import free_ports

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def _labelled(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _samples(text: str, name: str) -> dict[str, float]:
    """``queue`` label -> value of every sample named ``name``."""
    return {labels.get("queue", ""): value for labels, value in _labelled(text, name)}


@pytest.fixture
def admission(redis15: redis.Redis[Any], settings15: QuarrySettings) -> RedisAdmission:
    redis15.flushdb()
    return RedisAdmission(
        redis15, settings15.queue_bounds(), default_bound=settings15.queue_bound_write
    )


def test_the_collector_reads_every_queue_depth_and_fill_ratio_at_scrape_time(
    admission: RedisAdmission, settings15: QuarrySettings
) -> None:
    collector = QueueCollector(lambda: admission)
    for i in range(5):
        admission.push(CHUNK, f"message-{i}".encode())
    admission.push(EMBED, b"one")
    text = generate_latest(_registry_of(collector)).decode()
    depth = _samples(text, "quarry_queue_depth")
    fill = _samples(text, "quarry_queue_fill_ratio")
    assert set(depth) == set(fill) == set(ALL_QUEUES)
    assert depth[CHUNK] == 5 and depth[EMBED] == 1
    assert fill[CHUNK] == pytest.approx(5 / settings15.queue_bound_chunk)
    assert fill[EMBED] == pytest.approx(1 / settings15.queue_bound_embed)
    assert all(depth[q] == 0 for q in ALL_QUEUES if q not in (CHUNK, EMBED))

    admission.push(CHUNK, b"one more")  # read again at the next scrape, not cached
    again = _samples(generate_latest(_registry_of(collector)).decode(), "quarry_queue_depth")
    assert again[CHUNK] == 6


def test_a_redis_that_is_down_leaves_the_depths_out_and_the_scrape_stands(
    settings15: QuarrySettings, caplog: pytest.LogCaptureFixture
) -> None:
    (port,) = free_ports(1)  # nothing listens there
    down = RedisAdmission(
        connect_redis(f"redis://127.0.0.1:{port}/0"),
        settings15.queue_bounds(),
        default_bound=settings15.queue_bound_write,
    )
    registry = _registry_of(QueueCollector(lambda: down))
    with caplog.at_level(logging.WARNING, logger="quarry.metrics"):
        first = generate_latest(registry).decode()
        second = generate_latest(registry).decode()
    for text in (first, second):
        assert "# TYPE quarry_queue_depth gauge" in text
        assert _samples(text, "quarry_queue_depth") == {}
    warnings = [r for r in caplog.records if "queue depths unreadable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per scrape


def test_the_api_exports_the_scrape_time_depth_and_never_the_admission_gauge(
    admission: RedisAdmission,
) -> None:
    metrics.QUEUE_DEPTH.labels(CHUNK).set(999)  # what a past admission saw
    admission.push(CHUNK, b"only one")
    text = generate_latest(api_registry(lambda: admission)).decode()
    assert text.count("# TYPE quarry_queue_depth gauge") == 1
    assert text.count("# TYPE quarry_queue_fill_ratio gauge") == 1
    assert _samples(text, "quarry_queue_depth")[CHUNK] == 1
    assert "quarry_search_seconds" in text  # the process's own metrics are all there
    assert "quarry_jobs_total" in text and "process_cpu_seconds_total" in text


def test_the_api_leaves_out_the_metrics_only_workers_record() -> None:
    # Defined in this process (imported), never recorded by the API: at 0 they would
    # tell an operator that the API ran no task and embedded nothing.
    registry = CollectorRegistry()
    registry.register(Owned(REGISTRY, frozenset({metrics.API})))
    names = exported_metric_names(registry)
    workers_only = {
        "quarry_tasks_total",
        "quarry_task_seconds",
        "quarry_embed_chunks_per_second",
        "quarry_embed_truncated_chunks_total",
        "quarry_broker_messages_restored_total",
        "quarry_breaker_state",
        "quarry_dead_letters_total",
        "quarry_webhook_deliveries_total",
    }
    assert not names & workers_only, names & workers_only
    assert {"quarry_search_seconds", "quarry_searches_total", "quarry_jobs_total"} <= names


def test_every_metric_has_its_owners_and_the_config_reads_only_exported_ones() -> None:
    defined = {
        family.name
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    }
    assert set(metrics.OWNERS) == defined  # a new metric says who records it
    roles = frozenset().union(*metrics.OWNERS.values())
    assert roles == {metrics.API, metrics.CPU, metrics.EMBED}
    # What the rules and the dashboard read is exported by some process (the queue
    # depths by the API's QueueCollector, under the admission gauges' names).
    exported = {
        f"{name}_total" if kind == "counter" else name
        for name, kind in _kinds().items()
        if metrics.OWNERS[name]
    } | {"quarry_queue_depth", "quarry_queue_fill_ratio"}
    assert metric_names_in_config() <= exported, metric_names_in_config() - exported


def _kinds() -> dict[str, str]:
    return {
        family.name: family.type
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    }


def test_the_collector_and_the_admission_gauge_cannot_share_a_registry(
    admission: RedisAdmission,
) -> None:
    registry = CollectorRegistry()
    registry.register(metrics.QUEUE_DEPTH)
    with pytest.raises(DuplicateTimeseries):
        registry.register(QueueCollector(lambda: admission))


def _registry_of(collector: QueueCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


# A worker in miniature: the folder set before prometheus_client is imported, three
# forked children that count and exit, the main process serving their sum over HTTP.
WORKER = """
import os, sys, urllib.request
from config.settings import load_settings, prepare_worker_metrics
settings = load_settings(env={}, data_dir=sys.argv[1])
folder = prepare_worker_metrics(settings, "cpu")
from tasks import metrics, recording, worker_exposition
assert worker_exposition.multiprocess_mode()
metrics.QUEUE_DEPTH.labels("quarry.chunk").set(5)
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        recording.record_task("quarry.chunk.files", "quarry.chunk", "succeeded")
        recording.record_task_seconds("quarry.chunk.files", "quarry.chunk", 0.2)
        recording.record_breaker_state("postgres", "closed")
        worker_exposition.process_ended(folder)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
recording.record_task("quarry.chunk.files", "quarry.chunk", "started")
server = worker_exposition.serve_worker_metrics("127.0.0.1", int(sys.argv[2]), folder, "cpu")
assert server is not None
assert worker_exposition.serve_worker_metrics("127.0.0.1", server.port, folder, "cpu") is None
sys.stdout.write(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics").read().decode())
server.close()
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != METRICS_DIR_ENV}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_worker_serves_the_sum_of_its_forked_processes(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    result = _python(WORKER, str(tmp_path), str(port))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    chunk = {"queue": "quarry.chunk", "task": "quarry.chunk.files"}
    assert sorted(
        (labels["outcome"], value) for labels, value in _labelled(text, "quarry_tasks_total")
    ) == [("started", 1), ("succeeded", 3)]
    assert all(labels | chunk == labels for labels, _ in _labelled(text, "quarry_tasks_total"))
    assert _samples(text, "quarry_task_seconds_count")["quarry.chunk"] == 3
    assert _labelled(text, "quarry_breaker_state") == [({"store": "postgres"}, 0)]
    assert "quarry_queue_depth" not in text  # the API's scrape alone exports it
    # The cpu worker's own metrics, at 0 until recorded; not the embedding's (never
    # recorded here) nor the API's.
    assert _labelled(text, "quarry_broker_messages_restored_total") == [({}, 0)]
    assert "quarry_embed" not in text and "quarry_search" not in text
    assert "cannot listen on" in result.stderr  # a port in use is logged, not fatal


def test_importing_the_worker_entrypoint_leaves_prometheus_client_unimported() -> None:
    # run_worker must set the metrics folder before the library is first imported.
    code = "import sys, workers.main; assert 'prometheus_client' not in sys.modules"
    result = _python(code)
    assert result.returncode == 0, result.stderr
