"""Celery worker entrypoint: one process per profile (a set of queues).

``python -m workers.main --profile cpu`` or ``quarry worker --profile embed``. GPU hosts
run only the ``embed`` profile.

Must not import: api/, cli/.
"""

from __future__ import annotations

import argparse
import socket

from config.queues import WORKER_PROFILES, queues_for_profile
from config.settings import QuarrySettings, load_settings


def node_name(profile: str, host: str | None = None) -> str:
    return f"{profile}@{host or socket.gethostname()}"


def concurrency_for(profile: str, settings: QuarrySettings) -> int:
    if profile == "embed":
        return settings.worker_embed_concurrency
    return settings.worker_cpu_concurrency


def worker_argv(
    profile: str, settings: QuarrySettings, queues: tuple[str, ...] | None = None
) -> list[str]:
    return [
        "worker",
        "--queues",
        ",".join(queues or queues_for_profile(profile)),
        "--concurrency",
        str(concurrency_for(profile, settings)),
        "--hostname",
        node_name(profile),
        "--loglevel",
        settings.log_level,
        "--pool",
        "prefork",
        "--without-mingle",
        "--without-gossip",
    ]


def run_worker(profile: str, queues: tuple[str, ...] | None = None) -> None:
    from tasks.app import app

    settings = load_settings()
    app.worker_main(worker_argv(profile, settings, queues))


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Quarry Celery worker.")
    parser.add_argument("--profile", choices=sorted(WORKER_PROFILES), default="all")
    args = parser.parse_args()
    run_worker(args.profile)


if __name__ == "__main__":
    main()
