"""Each tenant's share of an API process's searches (api/search_slots.py): at most
``concurrency`` run, the rest wait in the tenant's own line in arrival order, a full line
or a wait past ``wait_s`` is refused naming the tenant, another tenant never waits for
this one's line, and no slot leaks when a waiter times out or is cancelled; a search
whose client disconnects leaves the line (until_gone)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from api.audit import NOTES
from api.quotas import QuotaHeadersMiddleware
from api.routes_search import tenant_share
from api.search_slots import ClientGoneError, SearchBusyError, TenantSlots, in_thread, until_gone
from api.state import ApiState
from config.endpoints import resolve_endpoints
from config.settings import load_settings
from pipeline.errors import QueueFullError, StoreUnavailableError
from pipeline.quotas import QuotaLimits, QuotaStatus, QuotaUsage

Search = asyncio.Task[None]


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout=10))


async def hold(
    slots: TenantSlots, tenant: str, release: asyncio.Event, log: list[str], name: str = ""
) -> None:
    async with slots.slot(tenant):
        log.append(f"{tenant}{name} in")
        await release.wait()
    log.append(f"{tenant}{name} out")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def holding(slots: TenantSlots, name: str = "") -> tuple[asyncio.Event, list[str], Search]:
    """One search of tenant ``a`` holding a slot until ``gate`` is set; its log."""
    gate = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(hold(slots, "a", gate, log, name))
    await settle()
    return gate, log, holder


def test_a_tenant_runs_at_most_its_concurrency_and_the_rest_wait_in_order() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=2, waiting=10, wait_s=5)
        gates = [asyncio.Event() for _ in range(5)]
        log: list[str] = []
        tasks = []
        for n, gate in enumerate(gates):
            tasks.append(asyncio.create_task(hold(slots, "a", gate, log, str(n))))
            await settle()
        assert slots.running("a") == 2 and slots.queued("a") == 3
        assert log == ["a0 in", "a1 in"]
        gates[0].set()
        await settle()
        # The freed slot went to the first of the line (2), not to a later one.
        assert log == ["a0 in", "a1 in", "a0 out", "a2 in"]
        late = asyncio.Event()
        newcomer = asyncio.create_task(hold(slots, "a", late, log, "9"))
        await settle()
        assert slots.queued("a") == 3  # 3, 4 and the newcomer, in that order
        gates[1].set()
        await settle()
        assert log[-2:] == ["a1 out", "a3 in"]
        gates[2].set()
        await settle()
        assert log[-2:] == ["a2 out", "a4 in"]
        late.set()
        gates[3].set()
        await settle()
        assert log[-3:] == ["a3 out", "a9 in", "a9 out"]  # the newcomer ran last
        gates[4].set()
        await asyncio.gather(*tasks, newcomer)
        assert slots.tenants == 0  # nothing kept for an idle tenant

    run(body)


def test_another_tenant_never_waits_for_a_busy_tenants_line() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=5)
        gate = asyncio.Event()
        log: list[str] = []
        busy = [asyncio.create_task(hold(slots, "flood", gate, log)) for _ in range(4)]
        await settle()
        assert slots.running("flood") == 1 and slots.queued("flood") == 3
        other = asyncio.Event()
        other.set()
        await asyncio.wait_for(hold(slots, "quiet", other, log), timeout=1)
        assert "quiet out" in log
        gate.set()
        await asyncio.gather(*busy)

    run(body)


def test_a_full_line_is_refused_at_once_naming_the_tenant_and_the_bound() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=1, wait_s=5)
        gate = asyncio.Event()
        log: list[str] = []
        first = asyncio.create_task(hold(slots, "acme", gate, log))
        second = asyncio.create_task(hold(slots, "acme", gate, log))
        await settle()
        with pytest.raises(SearchBusyError) as refused:
            async with slots.slot("acme"):
                raise AssertionError("a third search of acme ran")
        message = str(refused.value)
        assert "'acme'" in message and "search_concurrency 1" in message
        assert "search_tenant_waiting 1" in message
        assert isinstance(refused.value, QueueFullError)  # the API's 429 with Retry-After
        assert refused.value.retry_after_s >= 1
        gate.set()
        await asyncio.gather(first, second)
        assert log.count("acme out") == 2
        assert slots.tenants == 0

    run(body)


def test_a_wait_past_wait_s_is_refused_and_leaves_no_slot_behind() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=0.05)
        gate, _log, holder = await holding(slots)
        with pytest.raises(SearchBusyError, match="search_tenant_wait_s"):
            async with slots.slot("a"):
                raise AssertionError("ran without a slot")
        assert slots.queued("a") == 0 and slots.running("a") == 1
        gate.set()
        await holder
        assert slots.tenants == 0
        async with slots.slot("a"):  # the slot is free again
            assert slots.running("a") == 1

    run(body)


Line = tuple[asyncio.Event, list[str], Search, Search, Search]


async def line_of_three(slots: TenantSlots) -> Line:
    """One search of tenant ``a`` holds its only slot until ``gate`` is set; behind it
    wait one that would hold its slot for ever, then one that leaves at once."""
    gate, log, holder = await holding(slots)
    second = asyncio.create_task(hold(slots, "a", asyncio.Event(), log))
    after = asyncio.Event()
    after.set()
    third = asyncio.create_task(hold(slots, "a", after, log))
    await settle()
    return gate, log, holder, second, third


def test_a_cancelled_waiter_leaves_the_line_and_the_next_one_runs() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=5)
        gate, log, holder, gone, next_one = await line_of_three(slots)
        assert slots.queued("a") == 2
        gone.cancel()
        await settle()
        assert slots.queued("a") == 1
        gate.set()
        await asyncio.gather(holder, next_one)
        assert gone.cancelled()
        assert log == ["a in", "a out", "a in", "a out"]
        assert slots.tenants == 0

    run(body)


def test_a_slot_handed_over_as_its_waiter_was_cancelled_passes_on() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=5)
        gate, log, holder, waiter, third = await line_of_three(slots)
        gate.set()
        await asyncio.sleep(0)  # the holder leaves and hands its slot to the waiter ...
        assert log == ["a in", "a out"] and slots.running("a") == 1
        waiter.cancel()  # ... which is cancelled before it runs: the slot goes to the third
        await asyncio.gather(holder, third)
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert log == ["a in", "a out", "a in", "a out"]
        assert slots.tenants == 0

    run(body)


def test_concurrency_zero_bounds_nothing_but_counts_what_runs() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=0, waiting=0, wait_s=1)
        gate = asyncio.Event()
        log: list[str] = []
        many = [asyncio.create_task(hold(slots, "a", gate, log)) for _ in range(50)]
        await settle()
        assert log.count("a in") == 50 and slots.running("a") == 50
        # A bound set again (the tenant's quota, 10) counts those already running.
        with pytest.raises(SearchBusyError, match="search_concurrency 10"):
            async with slots.slot("a", 10):  # 50 run, no place in line (waiting 0)
                pass
        gate.set()
        await asyncio.gather(*many)
        assert slots.tenants == 0

    run(body)


class Connection:
    """An ASGI ``receive`` of a GET: the empty body, then the disconnect once ``leave``
    is set."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()
        self.sent_body = False

    async def receive(self) -> dict[str, object]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}


def test_a_waiter_whose_client_disconnects_leaves_the_line_and_never_runs() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=5)
        gate, log, holder = await holding(slots, "0")
        client = Connection()
        waiter = asyncio.create_task(until_gone(client.receive, hold(slots, "a", gate, log, "1")))
        await settle()
        assert slots.queued("a") == 1
        client.leave.set()
        with pytest.raises(ClientGoneError):
            await waiter
        assert slots.queued("a") == 0  # left the line at once, the holder still running
        assert log == ["a0 in"]
        gate.set()
        await holder
        assert log == ["a0 in", "a0 out"]  # the gone search never took the slot
        assert slots.tenants == 0

    run(body)


def test_work_that_ends_first_answers_and_stops_watching_the_client() -> None:
    async def body() -> None:
        client = Connection()
        tasks_before = len(asyncio.all_tasks())

        async def work() -> str:
            await settle()
            return "answer"

        assert await until_gone(client.receive, work()) == "answer"
        await settle()
        assert len(asyncio.all_tasks()) == tasks_before  # nothing is left listening
        client.leave.set()

        async def refused() -> None:
            raise SearchBusyError("a", 1, 1, "its line is full")

        with pytest.raises(SearchBusyError):  # the work's own error, not a gone client
            await until_gone(Connection().receive, refused())

    run(body)


def test_a_search_running_in_a_thread_holds_its_slot_until_the_thread_ends() -> None:
    """A thread cannot be stopped: a search whose client leaves while it runs keeps its
    slot until its thread returns (else a tenant could hang up and send again for any
    number of searches at once), then the client's leaving is what the caller hears."""

    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=5)
        release = threading.Event()
        client = Connection()

        async def search() -> bool:
            async with slots.slot("a"):
                return await in_thread(release.wait, 10)

        going = asyncio.create_task(until_gone(client.receive, search()))
        while slots.running("a") != 1:
            await asyncio.sleep(0.01)
        client.leave.set()
        await asyncio.sleep(0.2)
        assert not going.done() and slots.running("a") == 1  # the thread still runs
        release.set()
        with pytest.raises(ClientGoneError):
            await going
        assert slots.tenants == 0

    run(body)


def test_a_bound_lifted_to_zero_starts_those_waiting_at_once() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=5, wait_s=5)
        gate, log, holder = await holding(slots, "0")
        waiter = asyncio.create_task(hold(slots, "a", gate, log, "1"))
        await settle()
        assert log == ["a0 in"] and slots.queued("a") == 1
        async with slots.slot("a", 0):  # the operator lifted the tenant's bound
            await settle()
            assert log == ["a0 in", "a1 in"] and slots.queued("a") == 0
        gate.set()
        await asyncio.gather(holder, waiter)
        assert slots.tenants == 0

    run(body)


def test_a_client_that_cannot_be_watched_leaves_the_work_alone() -> None:
    """``receive`` failing, or a request that brings a body (its body is not read on, so
    its client is held back by flow control): the work runs and answers."""

    async def body() -> None:
        async def work() -> str:
            await asyncio.sleep(0.05)
            return "answer"

        async def broken() -> dict[str, object]:
            raise RuntimeError("receive failed")

        assert await until_gone(broken, work()) == "answer"
        calls: list[str] = []
        client = Connection()

        async def with_body() -> dict[str, object]:
            calls.append("receive")
            if len(calls) == 1:
                return {"type": "http.request", "body": b"junk", "more_body": True}
            return await client.receive()

        client.sent_body = True
        client.leave.set()  # would say "gone" at once, were it asked
        assert await until_gone(with_body, work()) == "answer"
        assert calls == ["receive"]

    run(body)


class SlowQuotas:
    """A quota store whose status waits for ``go``, then answers a search concurrency of
    7 (or fails); it counts its reads."""

    def __init__(self, fails: bool) -> None:
        self.go = threading.Event()
        self.fails = fails
        self.reads = 0

    def status(self, tenant: str, defaults: QuotaLimits) -> QuotaStatus:
        self.reads += 1
        assert self.go.wait(10)
        if self.fails:
            raise StoreUnavailableError("postgres", "down")
        return QuotaStatus(tenant, replace(defaults, search_concurrency=7), QuotaUsage(0, 0, 0))


def share_state(quotas: SlowQuotas) -> ApiState:
    settings = load_settings(env={"QUARRY_SEARCH_TENANT_CONCURRENCY": "4"})
    state = ApiState(settings, resolve_endpoints(settings))
    state._built["quotas"] = quotas
    return state


def test_a_tenants_status_is_read_once_for_its_waiting_requests() -> None:
    """Its searches' shares and its answers' quota headers alike (quota_status_soon)."""

    async def body() -> None:
        quotas = SlowQuotas(fails=False)
        state = share_state(quotas)
        asking = [asyncio.create_task(tenant_share(state, "a")) for _ in range(5)]
        headers = asyncio.create_task(state.quota_status_soon("a"))
        await asyncio.sleep(0.05)
        quotas.go.set()
        assert await asyncio.gather(*asking) == [7] * 5
        assert (await headers).limits.search_concurrency == 7
        assert quotas.reads == 1
        assert await tenant_share(state, "a") == 7 and quotas.reads == 1  # kept now

    run(body)


def test_a_share_unread_is_the_last_one_read_else_the_default() -> None:
    """A tenant cut to 7 stays at 7 while the store cannot answer (flooding it with
    searches until reads time out must not bring its share to the default, 4)."""

    async def body() -> None:
        quotas = SlowQuotas(fails=False)
        state = share_state(quotas)
        quotas.go.set()
        assert await tenant_share(state, "a") == 7
        quotas.fails = True
        kept, _ = state._quotas_seen["a"]
        state._quotas_seen["a"] = (kept, time.monotonic() - 3600)  # expired ...
        assert state.kept_quota_status("a") is None
        assert await tenant_share(state, "a") == 7  # ... the last one read stands
        assert await tenant_share(state, "b") == 4  # none read: the setting's

    run(body)


def test_a_tenants_own_concurrency_bounds_its_line_and_a_change_applies_at_once() -> None:
    async def body() -> None:
        slots = TenantSlots(concurrency=1, waiting=10, wait_s=5)
        gates = [asyncio.Event() for _ in range(5)]
        log: list[str] = []

        async def search(n: int, concurrency: int | None) -> None:
            async with slots.slot("big", concurrency):
                log.append(f"{n} in")
                await gates[n].wait()

        tasks = [asyncio.create_task(search(n, 2)) for n in range(3)]
        await settle()
        assert (slots.running("big"), slots.queued("big")) == (2, 1)  # its own 2, not 1
        tasks.append(asyncio.create_task(search(3, 3)))  # the operator raised it to 3
        await settle()
        assert log == ["0 in", "1 in", "2 in"] and slots.queued("big") == 1
        tasks.append(asyncio.create_task(search(4, 1)))  # ... then lowered it to 1
        await settle()
        assert (slots.running("big"), slots.queued("big")) == (3, 2)
        gates[0].set()
        gates[1].set()
        await settle()
        assert (slots.running("big"), slots.queued("big")) == (1, 2)  # none handed on
        gates[2].set()
        await settle()
        assert log[-1] == "3 in" and slots.running("big") == 1  # one at a time now
        gates[3].set()
        gates[4].set()
        await asyncio.gather(*tasks)
        assert log == ["0 in", "1 in", "2 in", "3 in", "4 in"] and slots.tenants == 0
        async with slots.slot("free", 0):  # 0: no bound for this tenant, still counted
            assert slots.running("free") == 1
        assert slots.tenants == 0

    run(body)


def test_a_burst_of_answers_reads_the_tenants_quota_status_once() -> None:
    """The quota headers of five answers to one tenant, its status expired: one read,
    and every answer carries the headers."""

    async def body() -> None:
        quotas = SlowQuotas(fails=False)
        state = share_state(quotas)

        async def app(scope: dict[str, Any], _receive: Any, send: Any) -> None:
            scope[NOTES] = {"token_id": "tk_0123456789abcdef", "tenant": "a"}
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        middleware = QuotaHeadersMiddleware(app, state)
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        answers = [
            asyncio.create_task(middleware({"type": "http"}, receive, send)) for _ in range(5)
        ]
        await asyncio.sleep(0.05)
        quotas.go.set()
        await asyncio.gather(*answers)
        assert quotas.reads == 1
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 5
        assert all(
            any(k == b"x-quota-remaining-concurrent-jobs" for k, _ in m["headers"]) for m in starts
        )

    run(body)
