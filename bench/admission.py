"""Enqueue throughput through admission: tasks/client.py TaskClient over RedisAdmission.

Usage: .venv/bin/python bench/admission.py [--redis-url URL] [--messages N]
       [--batch 100] [--repeat 3] [--json]

Unless ``--redis-url`` names a running Redis (whose queue ``quarry.chunk`` it will fill
and delete), a private redis-server is started on a free loopback port with the local
stack's flags (devstack/services.py RedisService: AOF, fsync every second) and
removed afterwards. Every task is ``quarry.chunk.file`` with its own kwargs of about 300
bytes of JSON (a job id, a repository, a path, a sha256, a commit, a language).
One producer thread; the queue is emptied (not timed) between runs and no worker reads it.

Timed, best and median of ``--repeat`` runs:
- build: ``TaskEnvelopes.build`` alone (the exact Celery message; no Redis);
- push: ``RedisAdmission.push`` of one ready message per call (the Lua script's round trip);
- push_many: ``RedisAdmission.push_many`` of ready messages, ``--batch`` per call;
- send: ``TaskClient.send`` per task (build + one EVALSHA round trip + gauges);
- send_many: ``TaskClient.send_many`` in batches of ``--batch`` (one EVALSHA per batch);
- celery_send_task: ``app.send_task`` per task, Celery's own publish (no bound), for scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from machine import cpu_model, free_ports  # bench/ is the script folder, so on sys.path

from config.endpoints import resolve_endpoints
from config.settings import load_settings
from devstack.layout import StackLayout
from devstack.processes import wait_until
from devstack.services import RedisService
from pipeline.adapters.redis.admission import RedisAdmission
from tasks.app import create_app
from tasks.client import TaskClient
from tasks.envelopes import TaskEnvelopes

TASK = "quarry.chunk.file"
QUEUE = "quarry.chunk"


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server (the stack's flags) on a free loopback port; yields its URL."""
    root = Path(tempfile.mkdtemp(prefix="quarry-bench-redis-", dir="/tmp"))
    (port,) = free_ports(1)
    env = {"QUARRY_DATA_DIR": str(root / "data"), "QUARRY_STACK_REDIS_PORT": str(port)}
    settings = load_settings(env=env)
    layout = StackLayout(settings.data_dir)
    layout.prepare()
    service = RedisService(settings, layout, resolve_endpoints(settings))
    try:
        service.start()
        wait_until(lambda: service.probe().healthy, 30, "redis")
        yield service.endpoints.redis_url
    finally:
        service.stop()
        shutil.rmtree(root, ignore_errors=True)


def task_kwargs(count: int) -> list[dict[str, Any]]:
    job = str(uuid.uuid4())
    return [
        {
            "job_id": job,
            "repo": {"tenant": "acme", "name": "payments-service"},
            "path": f"src/payments/adapters/ledger/module_{i:06d}.py",
            "sha256": f"{i:064x}",
            "commit": f"{i * 7919:040x}",
            "language": "python",
            "attempt": 0,
        }
        for i in range(count)
    ]


def timed(run: Callable[[], None], reset: Callable[[], None], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        reset()
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    reset()
    return seconds


def figures(count: int, seconds: list[float]) -> dict[str, Any]:
    return {
        "messages": count,
        "best_per_s": round(count / min(seconds)),
        "median_per_s": round(count / statistics.median(seconds)),
        "runs_s": [round(s, 3) for s in seconds],
    }


def workloads(app: Celery, admission: RedisAdmission, count: int, batch: int) -> dict[str, Any]:
    """The timed loops (name -> (messages, callable)) over ``count`` tasks' kwargs."""
    task_client = TaskClient(app, admission)
    envelopes = TaskEnvelopes(app)
    kwargs = task_kwargs(count)
    ready = [envelopes.build(TASK, k).message for k in kwargs]
    starts = range(0, count, batch)
    few = kwargs[: count // 4]  # Celery's own publish is slow: a quarter is enough

    def build() -> None:
        for k in kwargs:
            envelopes.build(TASK, k)

    def push() -> None:
        for message in ready:
            admission.push(QUEUE, message)

    def push_many() -> None:
        for i in starts:
            admission.push_many(QUEUE, ready[i : i + batch])

    def send() -> None:
        for k in kwargs:
            task_client.send(TASK, k)

    def send_many() -> None:
        for i in starts:
            task_client.send_many(TASK, kwargs[i : i + batch])

    def celery_send_task() -> None:
        for k in few:
            app.send_task(TASK, kwargs=k)

    return {
        "build": (count, build),
        "push": (count, push),
        "push_many": (count, push_many),
        "send": (count, send),
        "send_many": (count, send_many),
        "celery_send_task": (len(few), celery_send_task),
        "_sizes": (
            round(sum(map(len, ready)) / count),
            round(sum(len(json.dumps(k)) for k in kwargs) / count),
        ),
    }


def measure(url: str, count: int, batch: int, repeat: int) -> dict[str, Any]:
    client: redis.Redis[Any] = redis.Redis.from_url(url)
    app = create_app(load_settings(env={}, redis_url=url))
    admission = RedisAdmission(client, {}, default_bound=10 * count)
    runs = workloads(app, admission, count, batch)
    message_bytes, kwargs_bytes = runs.pop("_sizes")

    def reset() -> None:
        client.delete(QUEUE)

    try:
        result = {name: figures(n, timed(run, reset, repeat)) for name, (n, run) in runs.items()}
        return {
            "results": result,
            "message_bytes": message_bytes,
            "kwargs_bytes": kwargs_bytes,
            "redis": client.info("server").get("redis_version", "?"),
        }
    finally:
        reset()
        app.close()
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", help="a running Redis (default: start a private one)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="tasks per send_many call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(private_redis())
        measured = measure(url, args.messages, args.batch, args.repeat)
    result = {
        "task": TASK,
        "batch": args.batch,
        **measured,
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "loadavg_after": os.getloadavg()[0],
        "cpu": cpu_model(),
    }
    if args.json:
        print(json.dumps(result))
        return
    for name, row in result.pop("results").items():
        print(f"{name:>16}: {row['best_per_s']:>8} /s best, {row['median_per_s']:>8} /s median")
    for key, value in result.items():
        print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
