"""What a Prometheus scrape of Quarry sees: the API's registry and the workers' endpoints.

* The API (one process) serves the metrics of its own process plus
  :class:`QueueCollector`: ``quarry_queue_depth{queue}`` and
  ``quarry_queue_fill_ratio{queue}`` read from Redis (LLEN, and the bounds of the
  settings) at scrape time. A Redis error skips those samples, never the scrape.
* A worker (a main process and its prefork children) runs prometheus-client's
  multiprocess mode: every process writes its samples to files in the worker's own
  folder (config.settings.prepare_worker_metrics, set before prometheus_client is first
  imported), and the main process serves their sum over HTTP on the profile's port.

Neither exports the admission-time gauges of the same two names (tasks/metrics.py):
the queue depths come from the API's scrape only, so that one source exports each name
and an idle producer's last sight of a queue never lingers as its depth.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from config.queues import ALL_QUEUES
from pipeline.ports import Admission
from tasks.metrics import ADMISSION_GAUGES

log = logging.getLogger("quarry.metrics")

QUEUE_DEPTH = "quarry_queue_depth"
QUEUE_FILL_RATIO = "quarry_queue_fill_ratio"


class QueueCollector:
    """Every queue's depth and fill ratio, read when Prometheus scrapes.

    ``admission`` gives the admission to read through (built on first use, so that the
    API starts while Redis is down); its ``bound`` is the setting of each queue.
    """

    def __init__(
        self, admission: Callable[[], Admission], queues: Sequence[str] = ALL_QUEUES
    ) -> None:
        self._admission = admission
        self._queues = tuple(queues)
        self._failing = False

    def describe(self) -> list[Metric]:
        # Names only: a registry that already exports either name refuses this collector.
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        depth, fill = self._families()
        try:
            admission = self._admission()
            for queue in self._queues:
                waiting, bound = admission.depth(queue), admission.bound(queue)
                depth.add_metric([queue], waiting)
                fill.add_metric([queue], waiting / bound if bound > 0 else 1.0)
        except Exception as exc:  # noqa: BLE001 (observers never fail the scrape)
            # The queues read so far stay; the others are skipped. Logged once per outage.
            if not self._failing:
                log.warning("queue depths unreadable, left out of the scrape: %s", exc)
            self._failing = True
        else:
            if self._failing:
                log.info("queue depths readable again")
            self._failing = False
        return [depth, fill]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                QUEUE_DEPTH, "Messages waiting in a queue, read at scrape time.", labels=["queue"]
            ),
            GaugeMetricFamily(
                QUEUE_FILL_RATIO,
                "Queue depth over its bound (1 is full), read at scrape time.",
                labels=["queue"],
            ),
        )


class Without:
    """A collector's metrics less the families named in ``names``."""

    def __init__(self, collector: Collector, names: frozenset[str]) -> None:
        self._collector = collector
        self._names = names

    def collect(self) -> Iterable[Metric]:
        return [m for m in self._collector.collect() if m.name not in self._names]


def api_registry(admission: Callable[[], Admission]) -> CollectorRegistry:
    """The API's scrape: this process's metrics, with the queue depths read from Redis."""
    registry = CollectorRegistry()
    registry.register(Without(REGISTRY, ADMISSION_GAUGES))
    registry.register(QueueCollector(admission))
    return registry


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes this process's samples to files (it decides
    when it is first imported)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def worker_registry(folder: Path) -> CollectorRegistry:
    """The sum of the samples every process of the worker wrote into ``folder``."""
    registry = CollectorRegistry()
    collector = MultiProcessCollector(None, path=str(folder))  # type: ignore[no-untyped-call]
    registry.register(Without(collector, ADMISSION_GAUGES))
    return registry


@dataclass
class MetricsServer:
    """A worker's ``/metrics`` endpoint, served by a thread of its main process."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_worker_metrics(host: str, port: int, folder: Path) -> MetricsServer | None:
    """Serve the worker's metrics on ``host:port``; None when off (port 0) or when the
    port cannot be bound (logged: metrics never stop a worker)."""
    if port == 0:
        return None
    if not multiprocess_mode():
        log.error(
            "prometheus_client was imported before the worker set its metrics folder: "
            "the metrics of its pool processes are missing from http://%s:%d/metrics",
            host,
            port,
        )
    try:
        server, thread = start_http_server(port, addr=host, registry=worker_registry(folder))
    except OSError as exc:
        log.error("worker metrics: cannot listen on %s:%d: %s", host, port, exc)
        return None
    log.info("worker metrics on http://%s:%d/metrics (samples in %s)", host, port, folder)
    return MetricsServer(server, thread)


def process_ended(folder: Path, pid: int | None = None) -> None:
    """A pool process ends: drop its live gauges (multiprocess bookkeeping). Never raises."""
    try:
        mark_process_dead(pid if pid is not None else os.getpid(), str(folder))  # type: ignore[no-untyped-call]
    except Exception:
        log.exception("worker metrics: marking process %s dead failed", pid)
