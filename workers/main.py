"""Celery worker entrypoint: one process per profile (a set of queues).

``python -m workers.main --profile cpu`` or ``quarry worker --profile embed``. GPU hosts
run only the ``embed`` profile.

Metrics: every process of the worker writes its samples into the worker's own folder
(prometheus-client's multiprocess mode), and the main process serves their sum on the
profile's port (``worker_metrics_port_cpu`` / ``_embed``, tasks/worker_exposition.py). The
library picks its mode when it is first imported, so nothing that imports it (tasks'
modules, workers.resources) is imported here before :func:`run_worker` set the folder.

Must not import: api/, cli/.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import Any

from config.endpoints import resolve_endpoints
from config.logging import configure_logging
from config.queues import EMBED_CHUNKS_TASK, WORKER_PROFILES, queues_for_profile
from config.settings import (
    QuarrySettings,
    load_settings,
    prepare_worker_environment,
    prepare_worker_metrics,
)
from pipeline.errors import PipelineError
from tasks import context
from tasks.transport import TRANSPORT

log = logging.getLogger("quarry.worker")


def node_name(profile: str, host: str | None = None) -> str:
    return f"{profile}@{host or socket.gethostname()}"


def concurrency_for(profile: str, settings: QuarrySettings) -> int:
    if profile == "embed":
        return settings.worker_embed_concurrency
    return settings.worker_cpu_concurrency


def pool_for(profile: str) -> str:
    # The embed worker runs its batches in one thread of its own process: the model is
    # loaded once, at start-up, in the process that uses it (no fork after torch), and
    # the consumer keeps buffering the next batch while the device works on this one.
    return "threads" if profile == "embed" else "prefork"


def prefetch_multiplier_for(profile: str, settings: QuarrySettings) -> int:
    # celery-batches can only flush `flush_every` messages if that many are prefetched:
    # concurrency x multiplier must reach it; twice it keeps the next batch ready.
    if profile in ("embed", "all"):
        concurrency = 1 if profile == "embed" else settings.worker_cpu_concurrency
        return max(1, -(-2 * settings.embed_flush_messages // concurrency))
    return 1


def worker_argv(
    profile: str, settings: QuarrySettings, queues: tuple[str, ...] | None = None
) -> list[str]:
    concurrency = 1 if profile == "embed" else concurrency_for(profile, settings)
    return [
        "worker",
        "--queues",
        ",".join(queues or queues_for_profile(profile)),
        "--concurrency",
        str(concurrency),
        "--hostname",
        node_name(profile),
        "--loglevel",
        settings.log_level,
        "--pool",
        pool_for(profile),
        "--prefetch-multiplier",
        str(prefetch_multiplier_for(profile, settings)),
        "--without-mingle",
        "--without-gossip",
    ]


def configure_app(app: Any, profile: str, settings: QuarrySettings) -> None:
    """The worker's own Celery setup: its transport, tasks, batch flushing and steps."""
    # A malformed entry on a queue is skipped and kept, not fatal (tasks.transport).
    app.conf.broker_transport = TRANSPORT
    app.loader.import_default_modules()
    embed_task = app.tasks[EMBED_CHUNKS_TASK]
    embed_task.flush_every = settings.embed_flush_messages
    embed_task.flush_interval = settings.embed_flush_interval_s
    if profile in ("embed", "all"):
        from workers.batch_reset import BatchesReset

        app.steps["consumer"].add(BatchesReset)
    if profile in ("cpu", "all") and settings.job_sweep_interval_s > 0:
        from workers.sweep_timer import connect_sweep_timer

        connect_sweep_timer(app, settings.job_sweep_interval_s)


def run_worker(profile: str, queues: tuple[str, ...] | None = None) -> None:
    """Build the profile's resources, then consume; a bad model or setting exits 2."""
    prepare_worker_environment()
    settings = load_settings()
    metrics_dir = prepare_worker_metrics(settings, profile)  # before prometheus_client

    from celery import signals

    from tasks import batch_events, observers, transport, worker_exposition
    from tasks.app import app
    from wiring.stores import redis_client
    from workers.lease import new_holder, start_lease
    from workers.resources import Closers, build_embedder, build_resources

    configure_logging(settings.log_level, settings.log_json)
    observers.connect()
    batch_events.connect()
    closers = Closers()
    configure_app(app, profile, settings)
    try:
        if pool_for(profile) == "threads":
            embedder = build_embedder(settings) if profile in ("embed", "all") else None
            context.install(build_resources(profile, settings, closers, embedder=embedder))
        elif profile in ("embed", "all"):
            from wiring.models import model_folder

            model_folder(settings.embed_model)
    except PipelineError as exc:
        sys.stderr.write(f"quarry worker: error: {exc}\n")
        raise SystemExit(2) from exc

    def on_process_init(**_: Any) -> None:
        context.install(build_resources(profile, settings, closers))

    def on_process_shutdown(**_: Any) -> None:
        closers.close()
        context.install(None)

    def on_child_shutdown(**kwargs: Any) -> None:
        on_process_shutdown(**kwargs)
        worker_exposition.process_ended(metrics_dir)

    if pool_for(profile) == "prefork":
        signals.worker_process_init.connect(on_process_init, weak=False)
        signals.worker_process_shutdown.connect(on_child_shutdown, weak=False)
    signals.worker_shutdown.connect(on_process_shutdown, weak=False)
    server = worker_exposition.serve_worker_metrics(
        settings.worker_metrics_bind_host,
        settings.worker_metrics_port(profile),
        metrics_dir,
        profile,
    )
    # This process's lease on the messages it will hold (workers/lease.py).
    holder = new_holder(node_name(profile))
    transport.HOLDER = holder
    stop_lease = start_lease(redis_client(resolve_endpoints(settings)), holder)
    signals.worker_shutdown.connect(lambda **_: stop_lease.set(), weak=False)
    try:
        app.worker_main(worker_argv(profile, settings, queues))
    finally:
        if server is not None:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Quarry Celery worker.")
    parser.add_argument("--profile", choices=sorted(WORKER_PROFILES), default="all")
    args = parser.parse_args()
    run_worker(args.profile)


if __name__ == "__main__":
    main()
