"""One job followed from its POST to its end, as a timeline of first sightings (for
bench/jobs.py).

Times are ms from just before the POST. While the job runs, one thread polls, every
``poll_s``, the job board in Redis (pipeline/adapters/redis/job_board.py:
``quarry:job:J:counters`` and the file sets) and the job row in PostgreSQL; another GETs
``/v1/jobs/{id}`` every ``api_poll_s``. Events:

- ``post_answered``: the API answered the POST (client clock);
- ``created``, ``started``, ``finished``: the job row's own timestamps (server clock);
- ``stage:<stage>``, ``done`` (or ``failed``): the job row's stage and status, first seen;
- ``planned``: the ingest set the job's totals (``files.todo`` on the board);
- ``chunked``, ``embedded_files``, ``written``, ``settled``: the first file in that set;
- ``embedded``: chunks.embedded + chunks.cached > 0 (the first chunk has its vector);
- ``commit_enqueued``: the commit task was sent (the board's ``once:commit`` marker);
- ``api_embedded``, ``api_done``: the same, as a client polling the API sees them.

Around the job, CPU time from /proc: of the whole machine, of the stack's processes
(with the bench itself) and of everything else (``other_core_s``: other users of a
shared machine, which slow the run down).

After the job, the workers' log lines in its window give each task's received time and
runtime (Celery's ``Task ... succeeded in X s``) and each embed flush's device seconds
(tasks/embed.py's ``flushed ...`` line, 10 ms resolution).

Must not import: tasks/, workers/, api/ (it only reads what they write).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

SETS = {
    "files.chunked": "chunked",
    "files.embedded": "embedded_files",
    "files.written": "written",
    "files.settled": "settled",
}
TERMINAL = ("done", "failed", "cancelled")
JOB_ROW = (
    "SELECT status, stage, extract(epoch FROM created_at)::float8,"
    " extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8"
    " FROM jobs WHERE id = %s::uuid"
)
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
TASK_LINE = re.compile(r"Task quarry\.(\S+)\[([\w-]+)\] (received|succeeded in ([\d.e-]+)s)")
FLUSH_LINE = re.compile(r"flushed (\d+) messages: (\d+) chunks embedded .*\(([\d.]+) s\), (\d+) c")


@dataclass(slots=True)
class Watch:
    """What following a job needs: the API, Redis, PostgreSQL, the stack's log folder."""

    api: httpx.Client
    redis: redis.Redis[Any]
    pg: Any  # a psycopg connection in autocommit mode
    logs: Path
    poll_s: float
    api_poll_s: float


class Timeline:
    """First sightings of named events, in ms from its creation."""

    def __init__(self) -> None:
        self.wall0 = time.time()
        self.t0 = time.perf_counter()
        self.events: dict[str, float] = {}
        self._lock = threading.Lock()

    def stamp(self, name: str, at: float | None = None) -> None:
        ms = ((time.perf_counter() if at is None else at) - self.t0) * 1000
        with self._lock:
            self.events.setdefault(name, round(ms, 1))

    def wall(self, name: str, epoch_s: float | None) -> None:
        if epoch_s is not None:
            with self._lock:
                self.events.setdefault(name, round((epoch_s - self.wall0) * 1000, 1))


def _board(client: redis.Redis[Any], job_id: str, line: Timeline) -> None:
    key = f"quarry:job:{job_id}:"
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(key + "counters").exists(key + "once:commit")
    for name in SETS:
        pipe.scard(f"{key}set:{name}")
    counters, commit, *sizes = pipe.execute()
    at = time.perf_counter()
    got = {k.decode(): int(v) for k, v in counters.items()}
    if "files.todo" in got:
        line.stamp("planned", at)
    if got.get("chunks.embedded", 0) + got.get("chunks.cached", 0) > 0:
        line.stamp("embedded", at)
    for event, size in zip(SETS.values(), sizes, strict=True):
        if size:
            line.stamp(event, at)
    if commit:
        line.stamp("commit_enqueued", at)


def _row(conn: Any, job_id: str, line: Timeline) -> bool:
    status, stage, created, started, finished = conn.execute(JOB_ROW, (job_id,)).fetchone()
    line.stamp(f"stage:{stage}")
    for name, epoch_s in (("created", created), ("started", started), ("finished", finished)):
        line.wall(name, epoch_s)
    if status in TERMINAL:
        line.stamp(status)
    return status in TERMINAL


def _api(api: httpx.Client, job_id: str, line: Timeline) -> bool:
    status = api.get(f"/v1/jobs/{job_id}").json()
    if status["chunks"]["embedded"] + status["chunks"]["cached"] > 0:
        line.stamp("api_embedded")
    if status["status"] in TERMINAL:
        line.stamp(f"api_{status['status']}")
    return status["status"] in TERMINAL


def _cpu_ticks(data_dir: Path) -> tuple[int, int]:
    """(busy ticks of the machine, ticks of the stack's process trees and of this process
    alone: processes this one started, such as --busy-cores spinners, are not counted)."""
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(cpu) - cpu[3] - cpu[4]  # less idle and iowait
    roots = set()
    for pidfile in [*(data_dir / "run").glob("*.pid"), data_dir / "postgres" / "postmaster.pid"]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            roots.add(int(pidfile.read_text().split()[0]))
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            text = Path(entry.path, "stat").read_text()
            rest = text[text.rindex(")") + 2 :].split()
            parents[int(entry.name)] = int(rest[1])
            # utime, stime, and for the stack's processes the reaped children's too
            own = int(entry.name) == os.getpid()
            ticks[int(entry.name)] = sum(int(v) for v in rest[11 : 13 if own else 15])
    mine = ticks.get(os.getpid(), 0)
    for pid, own_ticks in ticks.items():
        ancestor = pid
        while ancestor > 1 and ancestor not in roots:
            ancestor = parents.get(ancestor, 0)
        mine += own_ticks if ancestor in roots else 0
    return busy, mine


def _cpu_use(before: tuple[int, int], after: tuple[int, int]) -> dict[str, float]:
    hz = os.sysconf("SC_CLK_TCK")
    busy, mine = (after[0] - before[0]) / hz, (after[1] - before[1]) / hz
    return {
        "machine_core_s": round(busy, 2),
        "stack_core_s": round(mine, 2),
        "other_core_s": round(max(0.0, busy - mine), 2),
    }


def follow_job(watch: Watch, source: Path, repo: str, timeout_s: float) -> dict[str, Any]:
    """POST a job for the folder ``source`` and follow it to its end."""
    cpu_before = _cpu_ticks(watch.logs.parent)
    line = Timeline()
    response = watch.api.post("/v1/jobs", json={"source": str(source), "repo": repo})
    line.stamp("post_answered")
    response.raise_for_status()
    job_id: str = response.json()["job_id"]
    stop = threading.Event()

    def follow_api() -> None:
        while not stop.is_set() and not _api(watch.api, job_id, line):
            time.sleep(watch.api_poll_s)

    client = threading.Thread(target=follow_api, daemon=True)
    client.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            _board(watch.redis, job_id, line)
            if _row(watch.pg, job_id, line):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} of {repo} did not end in {timeout_s} s")
            time.sleep(watch.poll_s)
        client.join(timeout=10)
    finally:
        stop.set()
    cpu = _cpu_use(cpu_before, _cpu_ticks(watch.logs.parent))
    status = watch.api.get(f"/v1/jobs/{job_id}").json()
    time.sleep(0.3)  # a task logs "succeeded" after the job row says done
    tasks, flushes = worker_lines(watch.logs, line.wall0, time.time())
    return {
        "job_id": job_id,
        "status": status["status"],
        "events_ms": dict(sorted(line.events.items(), key=lambda kv: kv[1])),
        "tasks": tasks,
        "flushes": flushes,
        "files": status["files"],
        "chunks": status["chunks"],
        "cpu": cpu,
        "loadavg_1m": os.getloadavg()[0],
    }


def worker_lines(logs: Path, since: float, until: float) -> tuple[list[Any], list[Any]]:
    """Tasks (received, succeeded, runtime) and embed flushes that the workers logged
    between two times, in ms from ``since`` (log times have ms resolution)."""
    tasks: dict[str, dict[str, Any]] = {}
    flushes: list[dict[str, Any]] = []
    for name in ("worker-cpu.log", "worker-embed.log"):
        for text in (logs / name).read_text(errors="replace").splitlines():
            found = LOG_LINE.match(text)
            if not found:
                continue
            at = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if not since - 0.002 <= at <= until:
                continue
            ms = round((at - since) * 1000, 1)
            if task := TASK_LINE.search(found[2]):
                entry = tasks.setdefault(task[2], {"task": task[1]})
                if task[4] is None:
                    entry["received_ms"] = ms
                else:
                    entry["succeeded_ms"] = ms
                    entry["runtime_ms"] = round(float(task[4]) * 1000, 1)
            elif flush := FLUSH_LINE.search(found[2]):
                flushes.append(
                    {
                        "at_ms": ms,
                        "messages": int(flush[1]),
                        "embedded": int(flush[2]),
                        "cached": int(flush[4]),
                        "device_ms": round(float(flush[3]) * 1000, 1),
                    }
                )
    return sorted(tasks.values(), key=lambda t: t.get("received_ms", 0.0)), flushes


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(values), 1),
        "max_ms": round(max(values), 1),
        "values_ms": values,
    }


def breakdown(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median time of each event, and median runtime of each task, over ``runs``."""
    names = {e for r in runs for e in r["events_ms"]}
    events = {
        n: round(statistics.median([r["events_ms"][n] for r in runs if n in r["events_ms"]]), 1)
        for n in names
    }
    runtimes: dict[str, list[float]] = {}
    for task in (t for r in runs for t in r["tasks"] if "runtime_ms" in t):
        runtimes.setdefault(task["task"], []).append(task["runtime_ms"])
    device = [f["device_ms"] for r in runs for f in r["flushes"]]
    return {
        "events_median_ms": dict(sorted(events.items(), key=lambda kv: kv[1])),
        "task_runtime_median_ms": {k: statistics.median(v) for k, v in sorted(runtimes.items())},
        "flush_device_median_ms": statistics.median(device) if device else None,
    }
