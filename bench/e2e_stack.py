"""A private local stack for ``quarry bench e2e``, and one job followed through its API.

Owns: starting and stopping a whole stack (``quarry dev up`` / ``down``: Redis,
PostgreSQL, the graph server, the ``cpu`` and ``embed`` workers, the API, Flower) in a
mode-711 folder under /tmp on free ports with the settings a run asks for; POSTing a
folder job and polling ``GET /v1/jobs/{id}`` until it ends (the first sighting of each
stage, the job's own server timestamps); and reading, from the workers' log lines in the
job's window, each task kind's summed runtime and the embed flushes' device seconds.

Must not import: api/, workers/, tasks/, torch.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.e2e_proc import StackProbe
from config.endpoints import resolve_endpoints
from config.settings import QuarrySettings, child_environment, load_settings
from devstack.ports import private_stack_ports
from pipeline.errors import StackError

TERMINAL = ("done", "failed", "cancelled")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
TASK_LINE = re.compile(r"Task quarry\.(\S+)\[[\w-]+\] succeeded in ([\d.e-]+)s")
FLUSH_LINE = re.compile(r"flushed (\d+) messages: (\d+) chunks embedded .*\(([\d.]+) s\), (\d+) c")


@dataclass(frozen=True, slots=True)
class Stack:
    """A running private stack: its settings, its data folder, an API client."""

    settings: QuarrySettings
    data_dir: Path
    api: httpx.Client

    @property
    def probe(self) -> StackProbe:
        return StackProbe(self.data_dir)


def run_quarry(*args: str, env: dict[str, str], timeout_s: float) -> None:
    """``quarry ARGS``; a StackError with its one-line error (a busy port, a service
    that did not start) when it fails."""
    quarry = str(Path(sys.executable).with_name("quarry"))
    result = subprocess.run(
        [quarry, *args], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        said = [line.removeprefix("quarry: error: ") for line in lines if "error:" in line]
        cause = (said or lines or [f"exit status {result.returncode}"])[-1]
        raise StackError(f"the benchmark's private stack: `quarry {' '.join(args)}`: {cause}")


@contextmanager
def private_stack(**overrides: Any) -> Iterator[Stack]:
    """``quarry dev up`` with these settings in its own folder and ports; always down."""
    root = Path(tempfile.mkdtemp(prefix="quarry-bench-e2e-", dir="/tmp"))
    root.chmod(0o711)
    # Free ports for everything it binds; the workers' metrics endpoints are off.
    ports: dict[str, Any] = private_stack_ports(worker_metrics=False)
    # The corpus copies live in scratch folders under /tmp (prepare()); the stack's own
    # data folder there stays refused, as every data folder is.
    overrides.setdefault("source_allowed_roots", (Path(tempfile.gettempdir()),))
    settings = load_settings(
        data_dir=root / "data",
        stack_start_timeout_s=300,
        **ports,
        **overrides,
    )
    env = child_environment(settings)
    try:
        run_quarry("dev", "up", env=env, timeout_s=900)
        endpoints = resolve_endpoints(settings)
        headers = {"Authorization": f"Bearer {endpoints.api_token}"}
        with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=60) as api:
            yield Stack(settings, root / "data", api)
    finally:
        try:
            run_quarry("dev", "down", env=env, timeout_s=300)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


# The bench's polling is not the pipeline's cost: a GET /v1/jobs/{id} costs the API
# ~3 ms of CPU, so a fixed 100 ms poll of a 6-minute cold job on a 2-core machine took
# 11 core-s from the stack it measures (bench/results/e2e.md, issue 22 item 2). The wait
# grows with the job's age instead: at most 1 % of the wall it reports, and 0.5 s.
POLL_REL = 0.01
POLL_MAX_S = 0.5


def poll_wait_s(poll_s: float, elapsed_s: float) -> float:
    """The next wait: ``poll_s`` at first, then 1 % of the time the job has run so far
    (so the reported wall is at most 1 % late), never above 0.5 s nor below ``poll_s``."""
    return max(poll_s, min(POLL_MAX_S, elapsed_s * POLL_REL))


def run_job(
    stack: Stack, source: Path, repo: str, *, poll_s: float, timeout_s: float
) -> dict[str, Any]:
    """POST a folder job, poll it to its end; its timeline, counters, CPU and logs."""
    probe = stack.probe
    before = probe.sample()
    wall0 = time.time()
    started = time.perf_counter()
    response = stack.api.post("/v1/jobs", json={"source": str(source), "repo": repo})
    response.raise_for_status()
    job_id = response.json()["job_id"]
    seen: dict[str, float] = {}
    deadline = started + timeout_s
    while True:
        status = stack.api.get(f"/v1/jobs/{job_id}").json()
        at = round(time.perf_counter() - started, 3)
        seen.setdefault(f"stage:{status['stage']}", at)
        if status["status"] in TERMINAL:
            seen.setdefault(status["status"], at)
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job_id} on {source} did not end in {timeout_s} s")
        time.sleep(poll_wait_s(poll_s, time.perf_counter() - started))
    wall_s = time.perf_counter() - started
    after = probe.sample()
    time.sleep(0.3)  # a task logs "succeeded" just after the job row says done
    created, finished = _epoch(status["created_at"]), _epoch(status["finished_at"])
    return {
        "job_id": job_id,
        "status": status["status"],
        "wall_s": round(wall_s, 3),
        "server_s": None if created is None or finished is None else round(finished - created, 3),
        "seen_s": seen,
        "files": status["files"],
        "chunks": status["chunks"],
        "errors": status["errors"][:5],
        "cpu": probe.cpu_between(before, after),
        "work": worker_work(stack.data_dir / "logs", wall0, time.time()),
    }


def worker_work(logs: Path, since: float, until: float) -> dict[str, Any]:
    """Summed runtime per task kind and the embed flushes, from the workers' log lines
    between two times (log times have ms resolution)."""
    tasks: dict[str, dict[str, float]] = {}
    flush = {"count": 0, "embedded": 0, "cached": 0, "device_s": 0.0}
    first_flush = last_flush = None
    for name in ("worker-cpu.log", "worker-embed.log"):
        path = logs / name
        if not path.is_file():
            continue
        for text in path.read_text(errors="replace").splitlines():
            found = LOG_LINE.match(text)
            if not found:
                continue
            at = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if not since - 0.002 <= at <= until:
                continue
            if task := TASK_LINE.search(found[2]):
                entry = tasks.setdefault(task[1], {"count": 0, "runtime_s": 0.0})
                entry["count"] += 1
                entry["runtime_s"] += float(task[2])
            elif line := FLUSH_LINE.search(found[2]):
                flush["count"] += 1
                flush["embedded"] += int(line[2])
                flush["cached"] += int(line[4])
                flush["device_s"] += float(line[3])
                first_flush = first_flush or at - float(line[3])
                last_flush = at
    span = None if first_flush is None or last_flush is None else last_flush - first_flush
    return {
        "tasks": {
            k: {**v, "runtime_s": round(v["runtime_s"], 2)} for k, v in sorted(tasks.items())
        },
        "embed_flushes": {**flush, "device_s": round(float(flush["device_s"]), 2)},
        "embed_span_s": None if span is None else round(span, 2),
    }
