"""Worker hosts in their own mount namespaces on one machine (issue 19, item 5).

A "host" is a mount and UTS namespace of its own (``unshare``, as root): its own
hostname, a private tmpfs over its data folder, and a tmpfs over the stack's data
folder, so that no host sees the stack's secrets or another host's checkouts. It runs
one ``quarry worker`` per profile against the Redis, PostgreSQL and graph server of a
stack on 127.0.0.1, reaching them through the endpoints passed in its environment. The
multi-host test (tests/workers/test_multi_host.py) and ``quarry bench multi-host``
(bench/multi_host.py) both start their hosts here.

Must not import: api/, cli/, a driver.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from config.endpoints import Endpoints
from config.settings import QuarrySettings, child_environment

QUARRY = str(Path(sys.executable).with_name("quarry"))
PROFILES = ("cpu", "embed")


class HostError(RuntimeError):
    """A host's workers exited or did not come up in time."""


@dataclass
class Host:
    """A host's process group (``unshare`` and the workers under it) and its log, which
    every start of the same host appends to; ``since`` is where the latest start began."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    since: int = 0

    def text(self) -> str:
        """The whole log, every start of this host included."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def latest(self) -> str:
        """The log of the latest start."""
        return self.log.read_bytes()[self.since :].decode("utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the host's whole worker set at once (main processes and pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def host_environment(settings: QuarrySettings, endpoints: Endpoints, data: Path) -> dict[str, str]:
    """The stack's settings with the host's own data folder and the stack's endpoints
    spelled out (the host cannot read the stack's secrets file)."""
    env = child_environment(
        settings,
        QUARRY_DATA_DIR=str(data),
        QUARRY_REDIS_URL=endpoints.redis_url,
        QUARRY_POSTGRES_DSN=endpoints.postgres_dsn,
        QUARRY_NEO4J_URI=endpoints.neo4j_uri,
        QUARRY_NEO4J_USER=endpoints.neo4j_user,
        QUARRY_NEO4J_PASSWORD=endpoints.neo4j_password,
        QUARRY_NEO4J_DATABASE=endpoints.neo4j_database,
        QUARRY_WEBHOOK_SECRET=endpoints.webhook_secret,
        QUARRY_WORKER_METRICS_PORT_CPU="0",
        QUARRY_WORKER_METRICS_PORT_EMBED="0",
    )
    env.pop("QUARRY_STACK_WORKERS", None)
    return env


def start_host(
    name: str,
    settings: QuarrySettings,
    endpoints: Endpoints,
    root: Path,
    *,
    profiles: tuple[str, ...] = PROFILES,
    ready_timeout_s: float = 180,
) -> Host:
    """Start (or start again) host ``name`` under ``root`` and wait until every worker
    says it is ready. ``root`` must be traversable by the stack's users."""
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    log = root / f"{name}.log"
    since = log.stat().st_size if log.exists() else 0
    quarry = shlex.quote(QUARRY)
    workers = " & ".join(f"{quarry} worker --profile {shlex.quote(p)}" for p in profiles)
    script = " && ".join(
        [
            f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(data))}",
            f"mount -t tmpfs -o mode=0700 tmpfs {shlex.quote(str(settings.data_dir))}",
            f"hostname {shlex.quote(name)}",
            f"({workers} & wait)",
        ]
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
            env=host_environment(settings, endpoints, data),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = Host(name, process, log, since)
    try:
        wait_ready(host, len(profiles), ready_timeout_s)
    except HostError:
        host.kill()
        raise
    return host


def wait_ready(host: Host, workers: int, timeout_s: float) -> None:
    """Until the host's latest start logged ``ready.`` once per worker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = host.latest()
        if text.count(" ready.") >= workers:
            return
        if not host.alive:
            raise HostError(f"{host.name} exited:\n{text[-3000:]}")
        time.sleep(0.5)
    raise HostError(f"{host.name} did not start:\n{host.text()[-3000:]}")


def handled(host: Host, task: str) -> int:
    """How many tasks called ``task`` the host's workers finished (their log lines); an
    embed task counts its flushes (one device batch of several messages)."""
    if task == "quarry.embed.chunks":
        return len(re.findall(r"flushed \d+ messages", host.text()))
    return len(re.findall(re.escape(task) + r"\[[^\]]+\] succeeded", host.text()))
