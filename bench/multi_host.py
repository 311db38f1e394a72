"""``quarry bench multi-host``: worker hosts on one machine, one job after another, a
host SIGKILLed mid-job in each job after the first (issue 19, item 5, the bigger run).

One private stack (Redis, PostgreSQL + pgvector, the graph server, the API) with the
production recovery defaults and no worker of its own; ``--hosts`` hosts, each a mount
and UTS namespace with its own tmpfs (devstack/hosts.py), each running a ``cpu`` and an
``embed`` worker. The corpus is the installed modules of packages nobody here wrote
(the Celery stack by default), committed into a git repository served over ``file://``.

Every job indexes the same commit into a repository of its own, with the embedding
cache emptied before it, so each does the whole work again (chunk, embed, write, graph)
and their times compare. Job 1 runs with every host up; job k > 1 SIGKILLs the whole
worker set of host k-1 once ``--kill-at`` of the files are written, and (with
``--restart``) that host is started again before the next job. Per job: the hosts alive,
files, chunks, the tasks each host ran (its log lines), POST -> done, kill -> done, and
both stores against the oracle (devstack/oracle.py: missing, duplicated, ghosts).

Needs root (``unshare``). Must not import: api/, tests/.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from bench.e2e_stack import LOG_LINE, private_stack
from bench.machine import cpu_model
from config import queues
from config.endpoints import Endpoints, resolve_endpoints
from config.settings import QuarrySettings
from devstack.hosts import Host, handled, start_host
from devstack.oracle import check_stores
from pipeline.adapters.postgres.connect import connect
from pipeline.models import RepoRef

TASKS = {  # embed counts flushes (a device batch of several messages), the others tasks
    "ingest": queues.INGEST_JOB_TASK,
    "chunk": queues.CHUNK_FILES_TASK,
    "embed": queues.EMBED_CHUNKS_TASK,
    "write": queues.WRITE_CHUNKS_TASK,
}
GIT = ["git", "-c", "user.name=Quarry Bench", "-c", "user.email=bench@example.com"]
TERMINAL = ("done", "failed", "cancelled")
GIVEN_BACK = re.compile(r"gave back (\d+) messages held by dead workers")


def corpus_repo(root: Path, packages: list[str], limit: int | None) -> tuple[Path, str]:
    """The packages' installed ``.py`` modules in a git work tree and a bare clone of it
    (the "git server"); the work tree (the oracle reads it) and the clone's URL."""
    work = root / "work"
    files: list[tuple[Path, Path]] = []
    for name in packages:
        module = importlib.import_module(name)
        source = Path(str(module.__file__)).parent
        found = sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
        files += [(p, Path(name) / p.relative_to(source)) for p in found]
    for path, rel in files[:limit]:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, work / rel)
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*GIT, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", "corpus"], check=True)
    bare = root / "server" / "corpus.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return work, f"file://{bare}"


def _empty_embedding_cache(endpoints: Endpoints) -> None:
    with connect(endpoints.postgres_dsn) as conn:
        conn.execute("TRUNCATE embedding_cache")


def _tasks(hosts: dict[str, Host]) -> dict[str, dict[str, int]]:
    return {name: {k: handled(h, t) for k, t in TASKS.items()} for name, h in hosts.items()}


def _delta(
    after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    return {
        name: {k: n - before.get(name, {}).get(k, 0) for k, n in counts.items()}
        for name, counts in after.items()
    }


def given_back(hosts: dict[str, Host], since: float) -> dict[str, Any]:
    """The sweeps that gave back dead workers' messages after ``since`` (epoch seconds),
    from every host's log: the first one's delay and the messages given back."""
    first: float | None = None
    messages = 0
    for host in hosts.values():
        for line in host.text().splitlines():
            found = LOG_LINE.match(line)
            back = GIVEN_BACK.search(line)
            if not (found and back):
                continue
            at = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= since:
                first = at if first is None else min(first, at)
                messages += int(back[1])
    return {
        "first_after_kill_s": None if first is None else round(first - since, 1),
        "messages": messages,
    }


def run_job(
    api: httpx.Client,
    url: str,
    repo: str,
    hosts: dict[str, Host],
    *,
    victim: str | None,
    kill_at: float,
    timeout_s: float,
) -> dict[str, Any]:
    """POST one job; SIGKILL ``victim`` once ``kill_at`` of the files are written."""
    before = _tasks(hosts)
    alive = sorted(n for n, h in hosts.items() if h.alive)
    started = time.monotonic()
    response = api.post("/v1/jobs", json={"source": url, "repo": repo, "ref": "main"})
    response.raise_for_status()
    job_id = response.json()["job_id"]
    killed_at: float | None = None
    killed_wall = 0.0
    at_kill: dict[str, int] = {}
    deadline = started + timeout_s
    while True:
        response = api.get(f"/v1/jobs/{job_id}")
        # 503 while a store is briefly away: ask again
        status: dict[str, Any] = response.json() if response.status_code == 200 else {}
        status.setdefault("status", "?")
        if status["status"] in TERMINAL:
            break
        files = status.get("files", {})
        todo = files.get("todo", 0)
        if victim and killed_at is None and todo and files["written"] >= kill_at * todo:
            hosts[victim].kill()
            killed_at, killed_wall = time.monotonic(), time.time()
            at_kill = {k: files[k] for k in ("todo", "chunked", "embedded", "written")}
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    done = time.monotonic()
    time.sleep(0.5)  # a task logs "succeeded" just after the job row says done
    return {
        "job_id": job_id,
        "repo": repo,
        "status": status["status"],
        "hosts_at_start": alive,
        "killed": victim if killed_at is not None else None,
        "killed_after_s": None if killed_at is None else round(killed_at - started, 1),
        "files_at_kill": at_kill,
        "done_s": round(done - started, 1),
        "done_after_kill_s": None if killed_at is None else round(done - killed_at, 1),
        "files": status.get("files", {}).get("total"),
        "chunks": status.get("chunks", {}).get("total"),
        "recoveries": status.get("recoveries"),
        "given_back": given_back(hosts, killed_wall) if killed_at is not None else None,
        "errors": status.get("errors", [])[:5],
        "tasks": _delta(_tasks(hosts), before),
        "hosts_alive_at_end": sorted(n for n, h in hosts.items() if h.alive),
    }


def _oracle(
    work: Path, repo: str, settings: QuarrySettings, endpoints: Endpoints
) -> dict[str, int]:
    check = check_stores(work, RepoRef("default", repo), settings, endpoints)
    return {
        "expected": check.expected,
        "missing": check.missing,
        "duplicated": check.duplicated,
        "ghosts": check.ghosts,
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown table of bench/results/multi_host.md."""
    lines = [
        "| job | hosts at start | killed (after, files written) | files | chunks "
        "| chunk / embed flushes / write per host | POST → done | kill → given back (msgs) "
        "| kill → done | stall re-sends | missing / dup / ghosts |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for n, job in enumerate(result["jobs"], 1):
        killed = "—"
        if job["killed"]:
            at = job["files_at_kill"]
            killed = f"{job['killed']} ({job['killed_after_s']} s, {at['written']}/{at['todo']})"
        tasks = "; ".join(
            f"{h[-1]}: {c['chunk']}/{c['embed']}/{c['write']}" for h, c in job["tasks"].items()
        )
        oracle = job["oracle"]
        after = "—" if job["done_after_kill_s"] is None else f"{job['done_after_kill_s']} s"
        back = job["given_back"] or {}
        gave = "—" if not back else f"{back['first_after_kill_s']} s ({back['messages']})"
        lines.append(
            f"| {n} ({job['status']}) | {', '.join(job['hosts_at_start'])} | {killed} "
            f"| {job['files']} | {job['chunks']} | {tasks} | {job['done_s']} s | {gave} | {after} "
            f"| {job['recoveries']} "
            f"| {oracle['missing']} / {oracle['duplicated']} / {oracle['ghosts']} |"
        )
    return "\n".join(lines)


def bench_multi_host(
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here.")] = None,
    hosts: Annotated[int, typer.Option(help="Worker hosts (namespaces).", min=2)] = 3,
    kills: Annotated[int, typer.Option(help="Jobs with a host killed (after job 1).")] = 2,
    packages: Annotated[
        str, typer.Option(help="Installed packages whose modules make the corpus.")
    ] = "celery,kombu,billiard,amqp,vine",
    limit_files: Annotated[int | None, typer.Option(help="Only the first N modules.")] = None,
    backend: Annotated[str, typer.Option(help="Embed backend: torch or onnx-int8.")] = (
        "onnx-int8"
    ),
    batch_files: Annotated[int, typer.Option(help="Files per chunk task.")] = 4,
    flush_messages: Annotated[int, typer.Option(help="Embed messages per flush.")] = 4,
    kill_at: Annotated[float, typer.Option(help="Kill once this share is written.")] = 0.25,
    restart: Annotated[
        bool, typer.Option(help="Start a killed host again before the next job.")
    ] = True,
    job_timeout_s: Annotated[float, typer.Option(help="Give up on a job after this.")] = 900,
    graph_task_files: Annotated[
        int | None, typer.Option(help="Files per graph-stage task (default: the setting's).")
    ] = None,
) -> None:
    """Hosts in their own namespaces share one job; one is SIGKILLed mid-job, repeatedly."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise typer.BadParameter("run as root with util-linux's unshare: hosts are namespaces")
    if kills >= hosts:
        raise typer.BadParameter("--kills must leave a host: fewer kills than hosts")
    names = [f"host-{chr(ord('a') + i)}" for i in range(hosts)]
    root = Path(tempfile.mkdtemp(prefix="quarry-bench-multi-host-", dir="/tmp"))
    root.chmod(0o755)
    result: dict[str, Any] = {
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model()},
        "load_1m_start": os.getloadavg()[0],
        "hosts": names,
        "packages": packages.split(","),
        "backend": backend,
        "settings": {
            "batch_files": batch_files,
            "flush_messages": flush_messages,
            "graph_task_files": graph_task_files,
        },
        "kill_at": kill_at,
        "restart": restart,
        "jobs": [],
    }
    started: dict[str, Host] = {}
    try:
        work, url = corpus_repo(root, packages.split(","), limit_files)
        result["modules"] = sum(1 for p in work.rglob("*.py") if ".git" not in p.parts)
        graph = {} if graph_task_files is None else {"graph_task_files": graph_task_files}
        with private_stack(
            **graph,
            stack_workers=(),
            source_allow_file_urls=True,
            job_batch_files=batch_files,
            embed_flush_messages=flush_messages,
            worker_cpu_concurrency=1,
            worker_embed_concurrency=1,
            embed_torch_threads=1,
            embed_backend=backend,
        ) as stack:
            settings, endpoints = stack.settings, resolve_endpoints(stack.settings)
            t0 = time.monotonic()
            for name in names:
                started[name] = start_host(name, settings, endpoints, root / "hosts")
            result["hosts_ready_s"] = round(time.monotonic() - t0, 1)
            for n in range(kills + 1):
                victim = names[n - 1] if n else None
                for name, host in started.items():
                    if restart and not host.alive:
                        started[name] = start_host(name, settings, endpoints, root / "hosts")
                _empty_embedding_cache(endpoints)
                job = run_job(
                    stack.api,
                    url,
                    f"corpus-{n + 1}",
                    started,
                    victim=victim,
                    kill_at=kill_at,
                    timeout_s=job_timeout_s,
                )
                job["oracle"] = _oracle(work, job["repo"], settings, endpoints)
                result["jobs"].append(job)
                typer.echo(json.dumps(job), err=True)
    finally:
        for host in started.values():
            host.kill()
        result["load_1m_end"] = os.getloadavg()[0]
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(root, ignore_errors=True)
    typer.echo(table(result))
