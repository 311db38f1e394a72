"""The log context: every line written while a task runs carries its job, repository and
task id, in JSON and in text, from any logger and any thread of its own."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from config.logging import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    log_context,
    reset_log_context,
    set_log_context,
)


@pytest.fixture(autouse=True)
def _no_context_left() -> Iterator[None]:
    reset_log_context()
    yield
    reset_log_context()


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    """configure_logging's handler, writing into a buffer; the root logger restored."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _configure(stream: io.StringIO, *, json_lines: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", json_lines)


def test_json_lines_carry_the_task_context_from_any_logger(
    root_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(root_stream, json_lines=True, monkeypatch=monkeypatch)
    token = set_log_context(job_id="job-1", repo="default/pathspec", task_id="t-9")
    logging.getLogger("quarry.embed").info("flushed %d messages", 3)
    logging.getLogger("celery.app.trace").warning("from a library logger")
    reset_log_context(token)
    logging.getLogger("quarry.embed").info("after the task")
    lines = [json.loads(line) for line in root_stream.getvalue().splitlines()]
    assert len(lines) == 3
    for entry in lines[:2]:
        assert entry["job_id"] == "job-1"
        assert entry["repo"] == "default/pathspec"
        assert entry["task_id"] == "t-9"
    assert lines[0]["message"] == "flushed 3 messages"
    assert not {"job_id", "repo", "task_id"} & set(lines[2])


def test_text_lines_end_with_the_context_only_when_there_is_one(
    root_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(root_stream, json_lines=False, monkeypatch=monkeypatch)
    logging.getLogger("quarry.tasks").info("no task")
    token = set_log_context(job_id="job-2", task_id="t-1")
    logging.getLogger("quarry.tasks").info("in a task")
    reset_log_context(token)
    first, second = root_stream.getvalue().splitlines()
    assert first.endswith("quarry.tasks: no task")
    assert second.endswith("quarry.tasks: in a task [job=job-2 task=t-1]")


def test_the_text_suffix_stays_on_the_message_line_above_a_traceback() -> None:
    formatter = TextFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    record.job_id, record.repo, record.task_id = "j", "t/r", "k"
    head, *rest = formatter.format(record).splitlines()
    assert head.endswith("x: failed [job=j repo=t/r task=k]")
    assert rest[-1] == "ValueError: boom"


def test_a_field_passed_in_extra_wins_over_the_context() -> None:
    token = set_log_context(job_id="from-context", repo="a/b")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.job_id = "from-extra"
    assert ContextFilter().filter(record) is True
    reset_log_context(token)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["job_id"] == "from-extra"
    assert entry["repo"] == "a/b"


def test_empty_fields_are_left_out_and_reset_puts_back_the_outer_context() -> None:
    outer = set_log_context(job_id="outer")
    inner = set_log_context(job_id="inner", repo="", task_id="t")
    assert log_context() == {"job_id": "inner", "task_id": "t"}
    reset_log_context(inner)
    assert log_context() == {"job_id": "outer"}
    reset_log_context(outer)
    assert log_context() == {}


def test_each_thread_keeps_its_own_context() -> None:
    seen: dict[str, dict[str, str]] = {}
    ready = threading.Barrier(2)

    def task(name: str) -> None:
        token = set_log_context(job_id=name, task_id=f"task-{name}")
        ready.wait(timeout=5)  # both set before either reads
        seen[name] = dict(log_context())
        reset_log_context(token)

    threads = [threading.Thread(target=task, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert seen == {
        "a": {"job_id": "a", "task_id": "task-a"},
        "b": {"job_id": "b", "task_id": "task-b"},
    }
    assert log_context() == {}
