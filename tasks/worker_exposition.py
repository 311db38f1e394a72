"""A worker's ``/metrics``: the sum of the samples its processes wrote, served over HTTP.

A worker (a main process and its prefork children) runs prometheus-client's
multiprocess mode: every process writes its samples to files in the worker's own folder
(config.settings.prepare_worker_metrics, set before prometheus_client is first
imported), and the main process serves their sum on the profile's port: the metrics
that the profile's tasks record (``tasks.metrics.OWNERS``; the embed profile's embedding,
the cpu profile's writes, webhooks and sweeps, both profiles' tasks, breakers, dead
letters and jobs). The others, which prometheus-client shows at 0 from their definition,
and the admission gauges are left out, as in the API's scrape (tasks/exposition.py).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from tasks.exposition import Owned
from tasks.metrics import CPU, EMBED

log = logging.getLogger("quarry.metrics")


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes this process's samples to files (it decides
    when it is first imported)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def roles_of(profile: str) -> frozenset[str]:
    """The owners (tasks.metrics.OWNERS) whose metrics a worker of ``profile`` records."""
    return frozenset({CPU, EMBED}) if profile == "all" else frozenset({profile})


def worker_registry(folder: Path, profile: str) -> CollectorRegistry:
    """The sum of the samples every process of the worker wrote into ``folder``, of the
    metrics a worker of ``profile`` records."""
    registry = CollectorRegistry()
    collector = MultiProcessCollector(None, path=str(folder))  # type: ignore[no-untyped-call]
    registry.register(Owned(collector, roles_of(profile)))
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


def serve_worker_metrics(host: str, port: int, folder: Path, profile: str) -> MetricsServer | None:
    """Serve the metrics of a worker of ``profile`` on ``host:port``; None when off (port
    0) or when the port cannot be bound (logged: metrics never stop a worker)."""
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
        server, thread = start_http_server(
            port, addr=host, registry=worker_registry(folder, profile)
        )
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
