"""One contract for every JobBoard (the fake and real Redis): the live state of jobs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from config.endpoints import Endpoints
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.redis.job_board import RedisJobBoard
from pipeline.jobs import JobError, StoreWait
from pipeline.ports import JobBoard


@pytest.fixture(params=["memory", "redis"])
def board(request: pytest.FixtureRequest) -> Iterator[JobBoard]:
    if request.param == "memory":
        yield InMemoryJobBoard()
        return
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
    try:
        yield RedisJobBoard(client, ttl_s=600)
    finally:
        client.close()


@pytest.fixture
def job_id() -> str:
    return str(uuid.uuid4())


def test_unknown_job_has_no_counters(board: JobBoard, job_id: str) -> None:
    assert board.counters(job_id) == {}


def test_concurrent_marks_lose_no_update(board: JobBoard, job_id: str) -> None:
    def work(worker: int) -> None:
        for i in range(200):
            path = f"{worker}/{i}.py"
            board.mark(job_id, "files.written", [path], {path: {"chunks.total": 3}})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert board.counters(job_id) == {"files.written": 1200, "chunks.total": 3600}


def test_errors_are_taken_once_in_order(board: JobBoard, job_id: str) -> None:
    board.push_error(job_id, JobError("a.py", "boom", 1.0))
    board.push_error(job_id, JobError("", "job-wide", 2.0))
    assert board.take_errors(job_id) == [
        JobError("a.py", "boom", 1.0),
        JobError("", "job-wide", 2.0),
    ]
    assert board.take_errors(job_id) == []


def test_throttle_allows_once_per_interval(board: JobBoard, job_id: str) -> None:
    assert board.throttle(job_id, "flush", 30.0) is True
    assert board.throttle(job_id, "flush", 30.0) is False
    assert board.throttle(job_id, "other", 30.0) is True


def test_a_lease_is_its_holders_until_released_or_expired(board: JobBoard, job_id: str) -> None:
    assert board.lease(job_id, "index", "a", 30.0) is True
    assert board.lease(job_id, "index", "b", 30.0) is False, "another holder waits"
    assert board.lease(job_id, "index", "a", 30.0) is True, "the holder renews"
    assert board.lease(job_id, "other", "b", 30.0) is True, "markers are apart"
    board.release_lease(job_id, "index", "b")  # not b's: stays a's
    assert board.lease(job_id, "index", "b", 30.0) is False
    board.release_lease(job_id, "index", "a")
    assert board.lease(job_id, "index", "b", 0.05) is True
    time.sleep(0.1)
    assert board.lease(job_id, "index", "a", 30.0) is True, "an expired lease is free"


def test_cancel_flag(board: JobBoard, job_id: str) -> None:
    assert board.cancelled(job_id) is False
    board.cancel(job_id)
    assert board.cancelled(job_id) is True


def test_set_counters_is_absolute_and_replay_safe(board: JobBoard, job_id: str) -> None:
    board.set_counters(job_id, {"files.total": 5, "files.todo": 3})
    board.set_counters(job_id, {"files.total": 5, "files.todo": 3})
    board.mark(job_id, "files.chunked", ["a.py"], {"a.py": {"chunks.total": 2}})
    assert board.counters(job_id) == {
        "files.total": 5,
        "files.todo": 3,
        "files.chunked": 1,
        "chunks.total": 2,
    }


def test_marks_count_each_member_once(board: JobBoard, job_id: str) -> None:
    assert board.mark(job_id, "files.written", ["a.py", "b.py"]) == ["a.py", "b.py"]
    assert board.mark(job_id, "files.written", ["b.py", "c ü.py"]) == ["c ü.py"]
    assert board.mark(job_id, "files.failed", []) == []
    board.mark(job_id, "files.settled", ["a.py"])
    assert board.counters(job_id) == {"files.written": 3, "files.settled": 1}


def test_members_are_the_marked_paths_of_one_set(board: JobBoard, job_id: str) -> None:
    assert board.members(job_id, "files.settled") == set()
    board.mark(job_id, "files.settled", ["a.py", "dir/b ü.py"])
    board.mark(job_id, "files.settled", ["a.py"])
    board.mark(job_id, "files.written", ["c.py"])
    assert board.members(job_id, "files.settled") == {"a.py", "dir/b ü.py"}
    assert board.members(job_id, "files.written") == {"c.py"}


def test_concurrent_marks_of_one_member_admit_one(board: JobBoard, job_id: str) -> None:
    wins: list[list[str]] = []
    lock = threading.Lock()

    def work() -> None:
        got = board.mark(job_id, "files.settled", ["x.py"])
        with lock:
            wins.append(got)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(w) for w in wins) == [0] * 7 + [1]


def test_waits_keep_the_latest_per_store_until_cleared(board: JobBoard, job_id: str) -> None:
    assert board.waits(job_id) == []
    board.wait_on(job_id, StoreWait("postgres", 100.5, "breaker open"))
    board.wait_on(job_id, StoreWait("graph", 90.0, "breaker open: connection refused"))
    board.wait_on(job_id, StoreWait("postgres", 130.25, "breaker half-open"))
    assert board.waits(job_id) == [
        StoreWait("graph", 90.0, "breaker open: connection refused"),
        StoreWait("postgres", 130.25, "breaker half-open"),
    ]
    assert board.waits(str(uuid.uuid4())) == []
    board.clear(job_id)
    assert board.waits(job_id) == []


def test_a_mark_adds_the_deltas_of_new_members_only_in_the_same_step(
    board: JobBoard, job_id: str
) -> None:
    deltas = {"a.py": {"chunks.total": 3, "bytes.processed": 100}, "b ü.py": {"chunks.total": 2}}
    assert board.mark(job_id, "files.chunked", ["a.py", "b ü.py"], deltas) == ["a.py", "b ü.py"]
    # A redelivered task marks the same files again: nothing is counted twice.
    assert board.mark(job_id, "files.chunked", ["b ü.py", "c.py"], deltas | {"c.py": {}}) == [
        "c.py"
    ]
    assert board.counters(job_id) == {
        "files.chunked": 3,
        "chunks.total": 5,
        "bytes.processed": 100,
    }


def test_clear_drops_the_errors_not_yet_taken(board: JobBoard, job_id: str) -> None:
    board.push_error(job_id, JobError("a.py", "x", 1.0))
    board.clear(job_id)
    assert board.take_errors(job_id) == []


def test_among_answers_which_candidates_are_members(board: JobBoard, job_id: str) -> None:
    board.mark(job_id, "files.settled", ["a.py", "dir/ü.py", "c.py"])
    assert board.among(job_id, "files.settled", ["a.py", "b.py", "dir/ü.py"]) == {
        "a.py",
        "dir/ü.py",
    }
    assert board.among(job_id, "files.settled", []) == set()
    assert board.among(job_id, "files.failed", ["a.py"]) == set()
