"""Workers killed with SIGKILL in the middle of a job: the job still completes, and
nothing is stored or counted twice (issue 6; issue 9, scenario 1, at a small scale).

On the session stack, whose supervisor restarts a dead worker as a restart policy would:

* the main processes of the `embed` worker, holding a flush of the job's chunks, and of
  the `cpu` worker, one of whose pool children runs a chunk batch of the job. No warm
  shutdown: their unacknowledged messages go back to their queues once the processes'
  leases lapse and a sweep runs (at the latest at the broker's visibility timeout, 30 s
  on the test stack, tests/stackutil.py);
* then a pool child of the restarted `cpu` worker running a task of the job: Celery sees
  the worker lost and gives the task back at once (acks_late + reject_on_worker_lost).

A main process is stopped only while no message is on its way to it: kombu's Redis
transport pops a message (BRPOP) and only then records it as unacknowledged, so a main
process killed in that instant loses the message. The job sweeper (pipeline.stages.recovery,
tests/workers/test_job_sweeper.py) ends such a job, but its recovery would show in the
job's errors, which this test keeps exact.

"Mid-task" is made certain: a process is stopped (SIGSTOP) while Celery lists it running
a task of the job, or while Redis holds the job's messages for it; the listing is read
again; only then is the process killed. A chunk batch of 30 small files runs for a few
milliseconds, too short to be caught by polling; so the embed queue is first filled to
its bound (the embed worker does not consume it meanwhile): the job's chunk batches then
wait for room on it (the stage's back-pressure, up to QUARRY_QUEUE_WAIT_S) and are caught
running for certain. The filler is removed before the embed worker consumes again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from config.endpoints import Endpoints
from config.queues import (
    CHUNK,
    CHUNK_FILES_TASK,
    COMMIT_JOB_TASK,
    EMBED,
    EMBED_CHUNKS_TASK,
    LEASE_TTL_S,
    WRITE,
    WRITE_CHUNKS_TASK,
)
from devstack.stack import Stack
from devstack.supervisor import read_state
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.postgres.connect import connect
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.adapters.redis.dead_letters import RedisDeadLetters
from pipeline.models import RepoRef
from pipeline.statements import cypher
from tasks.envelopes import TaskEnvelopes
from tests.workers.jobs_api import corpus, enqueue, searchable_chunks, until, wait
from workers.main import node_name

WORKERS = ("worker-cpu", "worker-embed")
SMALL_FILE_BYTES = 3000  # pathspec has 20 files below this, with 44 chunks
COPIES = ("a", "b", "c")  # 60 files: two chunk batches of about 30 files
JOB_TASKS = (CHUNK_FILES_TASK, WRITE_CHUNKS_TASK, COMMIT_JOB_TASK)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Copies of pathspec's smaller files, under new folder names, so that no chunk
    text is in the embedding cache yet: two chunk batches long enough to be caught
    running, few chunks to embed on the CPU."""
    root, tag = tmp_path / "src", uuid.uuid4().hex[:8]
    for path in sorted(corpus().rglob("*.*")):
        if "__pycache__" not in path.parts and path.stat().st_size < SMALL_FILE_BYTES:
            for copy in COPIES:
                target = root / f"{copy}{tag}" / path.relative_to(corpus())
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return root


def _active(app: Celery, job_id: str, names: tuple[str, ...]) -> dict[int, str]:
    """Tasks of the job that the cpu worker's pool children run now: pid -> task id."""
    replies = app.control.inspect(destination=[node_name("cpu")], timeout=1.0).active() or {}
    return {
        int(task["worker_pid"]): str(task["id"])
        for tasks in replies.values()
        for task in tasks
        if task["name"] in names and task.get("worker_pid") and job_id in json.dumps(task)
    }


def _stop_mid_task(app: Celery, job_id: str, names: tuple[str, ...]) -> tuple[int, str] | None:
    """Stop a pool child mid-way through a task ``names`` of the job: (pid, task id)."""
    for pid, task_id in _active(app, job_id, names).items():
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.1)  # a task that ended just before the stop is no longer listed
        if _active(app, job_id, names).get(pid) == task_id:
            return pid, task_id
        os.kill(pid, signal.SIGCONT)
    return None


FILLER_TASK = "quarry.test.filler"
BRPOP_TIMEOUT_S = 1.0  # kombu's Redis transport: a BRPOP already sent waits this long


def _filler(app: Celery) -> bytes:
    """A well-formed message of a task no worker knows: one read by mistake is logged and
    discarded (a malformed one would stop the worker: kombu cannot decode it)."""
    message = json.loads(TaskEnvelopes(app).build(EMBED_CHUNKS_TASK, {}).message)
    message["headers"]["task"] = FILLER_TASK
    return json.dumps(message).encode()


@contextlib.contextmanager
def _embed_queue_full(app: Celery, client: redis.Redis[Any], bound: int) -> Iterator[None]:
    """The embed worker stops consuming the embed queue, which is filled to ``bound``
    with filler; on exit the filler is removed (the real messages pushed meanwhile stay)
    and the embed worker consumes again."""
    embed = [node_name("embed")]
    replies = app.control.cancel_consumer(EMBED, destination=embed, reply=True, timeout=5)
    assert replies, "the embed worker did not answer cancel_consumer"
    queues = app.control.inspect(destination=embed, timeout=5).active_queues() or {}
    assert queues and all(q["name"] != EMBED for qs in queues.values() for q in qs), queues
    time.sleep(2 * BRPOP_TIMEOUT_S)  # the worker's last BRPOP on the queue has returned
    assert client.llen(EMBED) == 0, "the embed queue holds messages of another test"
    filler = _filler(app)
    try:
        client.lpush(EMBED, *[filler] * bound)
        yield
    finally:
        client.lrem(EMBED, 0, filler)
        app.control.add_consumer(EMBED, destination=embed, reply=True, timeout=5)


def _pool_children(pid: int) -> set[int]:
    threads = Path(f"/proc/{pid}/task").iterdir()
    return {int(child) for t in threads for child in (t / "children").read_text().split()}


def _seen_lost(stack: Stack, child: int) -> bool:
    """Whether the cpu worker logged its pool child ``child`` lost with a task."""
    log = stack.layout.logfile("worker-cpu").read_text(encoding="utf-8")
    _, found, after = log.partition(f"pid:{child} exited with 'signal 9 (SIGKILL)'")
    return bool(found) and "WorkerLostError" in after


def _unacked(client: redis.Redis[Any], job_id: str) -> dict[str, tuple[str, float]]:
    """The job's messages that a worker took and has not acknowledged yet, as kombu keeps
    them in Redis: delivery tag -> (queue, when it was delivered)."""
    held = {}
    for tag, raw in client.hgetall("unacked").items():
        message, _exchange, queue = json.loads(raw)
        if job_id in base64.b64decode(message["body"]).decode():
            score = client.zscore("unacked_index", tag)
            held[tag.decode()] = (str(queue), float(score or 0))
    return held


def _sweep_unacked(app: Celery) -> None:
    """Kombu's sweep: what was unacknowledged for longer than the visibility timeout goes
    back to its queue. A consuming worker runs it when it connects, then every
    ``unacked_restore_interval`` x ``unacked_restore_throttle`` s (10 x 10 unless set;
    tasks/app.py sets neither): up to 100 s after the timeout. The test runs it itself."""
    with app.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=None, interval=1)


def _pg_chunk_rows(endpoints: Endpoints, repo: str) -> tuple[int, int]:
    """(rows, distinct (path, span)) of the repository's chunks, every version."""
    with connect(endpoints.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (c.path, c.start_byte, c.end_byte)) FROM chunks c"
            " JOIN repositories r ON r.id = c.repository_id"
            " WHERE r.tenant_id = 'default' AND r.name = %s",
            (repo,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _graph_nodes(endpoints: Endpoints, ref: RepoRef) -> tuple[list[Any], list[Any]]:
    """The repository's File nodes (path, sha256) and Chunk nodes (id), sorted, repeats kept."""
    key = cypher.repo_id(ref)
    with (
        make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password) as driver,
        driver.session(database=endpoints.neo4j_database) as session,
    ):
        files = session.run("MATCH (f:File {repo: $r}) RETURN f.path, f.sha256", r=key).values()
        chunks = session.run("MATCH (c:Chunk {repo: $r}) RETURN c.chunk_id", r=key).value()
    return sorted(tuple(row) for row in files), sorted(chunks)


def _restarted(stack: Stack, before: dict[str, dict[str, object]]) -> dict[str, dict[str, Any]]:
    """The supervisor's state once it runs both workers again, under new pids."""

    def check() -> dict[str, dict[str, Any]] | None:
        state = read_state(stack.layout)
        new = all(state.get(w, {}).get("pid") not in (None, before[w]["pid"]) for w in WORKERS)
        return state if new else None

    return until(check, 60, "both workers restarted", every_s=0.2)


@pytest.mark.timeout(300)
def test_workers_killed_mid_job_the_job_completes_with_nothing_twice(
    stack: Stack,
    app: Celery,
    api: httpx.Client,
    broker: redis.Redis[Any],
    endpoints: Endpoints,
    tree: Path,
) -> None:
    before = read_state(stack.layout)
    cpu_main, embed_main = (int(before[w]["pid"]) for w in WORKERS)
    repo = f"kill-{uuid.uuid4().hex[:8]}"

    # 1. A chunk batch held mid-run by a pool child of the cpu worker (while the embed
    # queue is full, it waits for room); the other batch's chunks reach the embed
    # worker, which is stopped while it holds them, unacked.
    held_child = 0
    try:
        with _embed_queue_full(app, broker, stack.settings.queue_bound_embed):
            job_id = enqueue(api, source=str(tree), repo=repo)
            held_child, _ = until(
                lambda: _stop_mid_task(app, job_id, (CHUNK_FILES_TASK,)),
                30,
                f"a chunk batch of job {job_id} to run",
            )
        assert held_child in _pool_children(cpu_main)
        until(
            lambda: EMBED in {q for q, _ in _unacked(broker, job_id).values()},
            60,
            "the embed worker to take the job's chunks",
        )
        # Stopped only once nothing is on its way to them: kombu's Redis transport takes
        # a message with BRPOP and only then records it as unacknowledged, so a process
        # stopped in between loses it (see the module docstring). The other batch is
        # done sending and the embed queue is empty, so no BRPOP can be delivering.
        until(
            lambda: (
                broker.llen(EMBED) == 0
                and not set(_active(app, job_id, (CHUNK_FILES_TASK,))) - {held_child}
            ),
            60,
            "the other chunk batch to finish and the embed queue to empty",
        )
        os.kill(embed_main, signal.SIGSTOP)  # from now on it acknowledges nothing
        until(
            lambda: broker.llen(WRITE) == 0 and broker.llen(CHUNK) == 0,
            60,
            "the write and chunk queues to empty",
        )
        os.kill(cpu_main, signal.SIGSTOP)
        held = _unacked(broker, job_id)
        queues = {q for q, _ in held.values()}
        # The embed worker usually still holds chunks mid-flush (acks_late); on a slow
        # machine it may have finished them, which leaves the chunk batch's message.
        assert CHUNK in queues and queues <= {CHUNK, EMBED, WRITE}, held
        # 2. Both main processes killed outright: no warm shutdown, nothing acknowledged.
        # (The stopped pool child dies with its group when the supervisor reaps the main.)
        os.kill(embed_main, signal.SIGKILL)
        os.kill(cpu_main, signal.SIGKILL)
    except BaseException:
        for pid in (held_child, embed_main, cpu_main):
            if pid > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        raise
    restarted = _restarted(stack, before)

    # 3. Their messages go back to their queues: as soon as the killed processes' leases
    #    lapse and a sweep runs (tasks/transport.py, workers/lease.py), at the latest at
    #    the broker's visibility timeout (kombu's own sweep, run here too).
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    timeout_s = stack.settings.broker_visibility_timeout_s

    def swept() -> bool:
        # A message put back keeps its delivery tag; taken again, it is held anew.
        _sweep_unacked(app)
        now = _unacked(broker, job_id)
        return all(now.get(tag, ("", at + 1))[1] > at for tag, (_q, at) in held.items())

    until(
        swept, LEASE_TTL_S + timeout_s + 10, "the held messages back in their queues", every_s=0.5
    )

    # 4. A pool child of the restarted cpu worker killed mid-task: given back at once.
    def stop_one() -> tuple[int, str] | None:
        stopped = _stop_mid_task(app, job_id, JOB_TASKS)
        if stopped is None:
            assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        return stopped

    lost_child, _task = until(stop_one, 120, "a task of the job to run again")
    if lost_child not in _pool_children(int(restarted["worker-cpu"]["pid"])):
        os.kill(lost_child, signal.SIGCONT)
        raise AssertionError(f"{lost_child} is not a pool child of the cpu worker")
    os.kill(lost_child, signal.SIGKILL)
    until(lambda: _seen_lost(stack, lost_child), 30, f"the cpu worker to lose {lost_child}")

    status = wait(api, job_id, timeout_s=150)
    assert status["status"] == "done", status
    files, chunks = status["files"], status["chunks"]
    in_tree = sum(1 for path in tree.rglob("*") if path.is_file())
    assert files["todo"] == files["total"] == files["written"] == files["chunked"] == in_tree
    assert files["failed"] == 0, status["errors"]
    assert chunks["embedded"] + chunks["cached"] == chunks["total"] > 0

    # The same tree indexed again, undisturbed, under another name: what it should be.
    control = f"control-{uuid.uuid4().hex[:8]}"
    expected = wait(api, enqueue(api, source=str(tree), repo=control))
    assert expected["status"] == "done", expected
    assert expected["chunks"]["cached"] == expected["chunks"]["total"] == chunks["total"]
    assert expected["files"] == files

    with PgVectorStore(endpoints.postgres_dsn, dimension=384) as vectors:
        keys = vectors.chunk_keys(RepoRef("default", repo))
        assert keys == vectors.chunk_keys(RepoRef("default", control))
    assert len(keys) == chunks["total"]
    assert _pg_chunk_rows(endpoints, repo) == (len(keys), len(keys))
    assert sorted(searchable_chunks(endpoints, repo)) == sorted((p, s) for p, s, _ in keys)

    file_nodes, chunk_nodes = _graph_nodes(endpoints, RepoRef("default", repo))
    assert (file_nodes, chunk_nodes) == _graph_nodes(endpoints, RepoRef("default", control))
    assert chunk_nodes == sorted({c for _, _, c in keys})
    assert len(set(file_nodes)) == len(file_nodes) >= in_tree

    assert not [x for x in RedisDeadLetters(broker).list(1000) if repo in json.dumps(x.payload)]
    after = read_state(stack.layout)
    for worker in WORKERS:
        assert after[worker]["restarts"] == int(str(before[worker]["restarts"])) + 1
        assert after[worker]["pid"] == restarted[worker]["pid"]
