"""What a Prometheus scrape of Quarry sees: the API's registry and the workers' endpoints.

* The API (one process) serves the metrics it records itself (searches, the jobs it
  cancels: ``tasks.metrics.OWNERS``) with its process's own, plus
  :class:`QueueCollector`: ``quarry_queue_depth{queue}`` and
  ``quarry_queue_fill_ratio{queue}`` read from Redis (LLEN, and the bounds of the
  settings) at scrape time. A Redis error skips those samples, never the scrape.
* A worker (a main process and its prefork children) serves the sum of its processes'
  samples of the metrics its profile records on the profile's port:
  tasks/worker_exposition.py.

:class:`Owned` leaves out the rest: a metric another process records would show here
at 0 (prometheus-client shows a metric without labels from its definition on). So
neither exports the admission-time gauges of the queue depths' names: the depths come
from the API's scrape only, and an idle producer's last sight of a queue never lingers.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.queues import ALL_QUEUES
from pipeline.ports import Admission
from tasks.metrics import API, OWNERS

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


class Owned:
    """A collector's metrics that a process in one of the ``roles`` records
    (``tasks.metrics.OWNERS``); other families (the process's own, a metric not in
    OWNERS) pass."""

    def __init__(self, collector: Collector, roles: frozenset[str]) -> None:
        self._collector = collector
        self._roles = roles

    def collect(self) -> Iterable[Metric]:
        return [m for m in self._collector.collect() if self.exports(m.name)]

    def exports(self, name: str) -> bool:
        owners = OWNERS.get(name)
        return owners is None or bool(owners & self._roles)


def api_registry(admission: Callable[[], Admission]) -> CollectorRegistry:
    """The API's scrape: the metrics it records, with the queue depths read from Redis."""
    registry = CollectorRegistry()
    registry.register(Owned(REGISTRY, frozenset({API})))
    registry.register(QueueCollector(admission))
    return registry
