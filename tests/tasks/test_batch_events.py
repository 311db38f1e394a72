"""The task events of a batch task's messages (tasks/batch_events.py), with a recording
dispatcher: one outcome per message, under its own id, never a failed flush."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tasks import batch_events
from tasks.embed import embed_chunks


@dataclass
class Request:
    id: str
    hostname: str | None = "embed@host"
    delivery_info: dict[str, Any] = field(default_factory=lambda: {"routing_key": "quarry.embed"})


@dataclass
class Dispatcher:
    sent: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    hostname: str = ""

    def send(self, kind: str, uuid: str, **fields: Any) -> None:
        self.sent.append((self.hostname, kind, uuid, fields))


class Conf:
    worker_send_task_events = True


class Events:
    def __init__(self, dispatcher: Dispatcher, fail: bool = False) -> None:
        self.dispatcher = dispatcher
        self.fail = fail

    @contextlib.contextmanager
    def default_dispatcher(self, hostname: str) -> Iterator[Dispatcher]:
        if self.fail:
            raise ConnectionError("broker down")
        self.dispatcher.hostname = hostname
        yield self.dispatcher


class App:
    def __init__(self, fail: bool = False) -> None:
        self.conf = Conf()
        self.dispatcher = Dispatcher()
        self.events = Events(self.dispatcher, fail)


def _kinds(app: App) -> list[tuple[str, str, str]]:
    return [(host, kind, uuid) for host, kind, uuid, _ in app.dispatcher.sent]


def test_each_message_of_a_flush_starts_and_ends_with_its_own_outcome() -> None:
    app = App()
    ok, bad, again = Request("ok"), Request("bad"), Request("again")
    direct, eager = Request("x", None), Request("y", delivery_info={"is_eager": True})
    with batch_events.reported(app, [ok, bad, again, direct, eager]) as events:  # type: ignore[arg-type]
        events.failed(bad, ValueError("malformed"))
        events.retried(again, TimeoutError("store down"))
    assert _kinds(app) == [
        ("embed@host", "task-started", "ok"),
        ("embed@host", "task-started", "bad"),
        ("embed@host", "task-started", "again"),
        ("embed@host", "task-succeeded", "ok"),
        ("embed@host", "task-failed", "bad"),
        ("embed@host", "task-retried", "again"),
    ]  # a request no worker delivered (called directly, or eagerly) sends nothing
    succeeded = app.dispatcher.sent[3][3]
    assert succeeded["runtime"] >= 0
    assert "malformed" in app.dispatcher.sent[4][3]["exception"]


def test_a_flush_that_raises_fails_its_messages_and_the_error_goes_on() -> None:
    app = App()
    with pytest.raises(RuntimeError), batch_events.reported(app, [Request("a")]):  # type: ignore[arg-type]
        raise RuntimeError("boom")
    assert _kinds(app)[-1] == ("embed@host", "task-failed", "a")


def test_events_that_cannot_be_sent_never_fail_the_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with batch_events.reported(App(fail=True), [Request("a")]):  # type: ignore[arg-type]
        pass
    assert "task events of 1 batched messages failed" in caplog.text


def test_no_events_where_the_app_sends_none() -> None:
    app = App()
    app.conf.worker_send_task_events = False
    with batch_events.reported(app, [Request("a")]):  # type: ignore[arg-type]
        pass
    assert app.dispatcher.sent == []


@dataclass
class Received:
    task: Any
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    name: str = "quarry.embed.chunks"
    argsrepr: str = "()"
    kwargsrepr: str = "{'message': {}}"
    root_id: str = "root"
    parent_id: str = "parent"
    request_dict: dict[str, Any] = field(default_factory=lambda: {"retries": 0})
    eta: Any = None
    expires: Any = None

    def send_event(self, kind: str, **fields: Any) -> None:
        self.sent.append((kind, fields))


def test_only_a_batch_message_is_announced_received_here() -> None:
    batched = Received(embed_chunks)
    batch_events.on_received(request=batched)
    assert [kind for kind, _ in batched.sent] == ["task-received"]
    assert batched.sent[0][1]["kwargs"] == "{'message': {}}"
    ordinary = Received(object())  # Celery's strategy already sent its task-received
    batch_events.on_received(request=ordinary)
    assert ordinary.sent == []
