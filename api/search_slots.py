"""Each tenant's share of this API process's searches: a few run at once, a bounded line
waits in order, and past that the search is refused at once (429 with Retry-After).

Why: every tenant's searches share one process's thread pool and a handful of
PostgreSQL connections. Without a share, one tenant's 64 clients made every tenant's
P95 7 s (bench/results/search.md, Load); with it, that tenant's extra searches wait in
its own line, on the event loop (holding no thread, no connection), and other tenants'
searches go ahead of them.

:class:`TenantSlots` holds, per tenant with searches in flight, how many run and the
line of those waiting (first come, first served: a slot that frees is handed to the
first of the line). A tenant with nothing in flight holds no entry, so hundreds of
tenants cost nothing. The limits are per process: N API processes let a tenant run N
times as many (``docker-compose.yml`` runs one).

Runs on the one event loop of the app (uvicorn's): its counts are read and changed
between awaits only, so no lock is needed.

:func:`until_gone` runs a search's wait and work for as long as its client is there:
uvicorn does not cancel a request whose client went away, so without it a search whose
client gave up (a timeout, a retry) kept its place in line and ran for nobody, and under
a sustained burst a tenant's whole share could go to searches nobody would read.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from pipeline.errors import QueueFullError

RETRY_AFTER_S = 1.0
UNBOUNDED = sys.maxsize
log = logging.getLogger("quarry.api")
# What a request whose client left is answered (nginx's "client closed request"): no one
# reads it, but the access and audit logs say what happened.
CLIENT_GONE_STATUS = 499
T = TypeVar("T")


class SearchBusyError(QueueFullError):
    """A tenant's searches in this process are at their bound: ``running`` run and
    ``waiting`` wait (or the wait ran out). Mapped to 429 with Retry-After."""

    def __init__(self, tenant: str, running: int, waiting: int, why: str) -> None:
        super().__init__(
            "search",
            running + waiting,
            running + waiting,
            RETRY_AFTER_S,
            f"tenant {tenant!r} has too many searches in flight in this API process: {why}"
            f" ({running} running, {waiting} waiting)",
        )
        self.tenant = tenant


class ClientGoneError(Exception):
    """The client of a search went away before its answer: its wait or work was
    cancelled (:func:`until_gone`)."""


async def until_gone(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, unless the request's client disconnects first (ASGI
    ``http.disconnect`` on ``receive``): then ``work`` is cancelled and ClientGoneError
    raised. A search waiting for a slot leaves its tenant's line at once (the slot it was
    being handed passes on); one already in the thread pool runs to its end there
    (:func:`in_thread` holds its slot until then), and its answer is dropped.

    For requests without a body (GET): ``receive`` then yields the empty body and, when
    the connection ends, the disconnect. A request that brings a body is not watched
    (:func:`_disconnected`); nor is one whose ``receive`` fails (logged)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and watcher.exception() is not None:
            log.warning("client of a search not watched: %s", watcher.exception())
            await task  # the work alone, as if nobody watched
    except asyncio.CancelledError:  # this request's own task (a shutdown)
        task.cancel()
        watcher.cancel()
        raise
    if task.done():  # done, even if the client left at the same moment: its answer
        watcher.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(Exception):  # the client is gone: nobody reads how it ended
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this request's own task is being cancelled too
    raise ClientGoneError


async def _disconnected(receive: Receive) -> None:
    """Returns when the client disconnects. A body (a GET that brings one) is not read
    on: uvicorn's flow control then holds the client back, and nothing is watched."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body") or message.get("more_body"):
            await asyncio.get_running_loop().create_future()  # until cancelled


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in the thread pool, its cancellation held until the thread
    returns: a thread cannot be stopped, so a slot held around it is held until the
    work really ends (asyncio's cancel of ``run_in_threadpool`` returns at once and
    leaves the thread running). Cancelled, it waits for the thread, then re-raises."""
    future = asyncio.ensure_future(run_in_threadpool(func, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(future)
        if not future.cancelled():
            future.exception()  # retrieved: the caller is gone, not the failure
        raise


@dataclass
class _Line:
    limit: int  # the tenant's concurrency as its latest search asked
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


@dataclass
class TenantSlots:
    """``concurrency`` searches of one tenant at once (0: no bound; still counted, so a
    bound set again later counts the searches already running),
    up to ``waiting`` more in line, each for at most ``wait_s``. A search may bring its
    tenant's own concurrency (an operator's quota, ``search_concurrency``): the line
    follows the latest one asked, starting waiters at once when it rose and letting
    running searches end before handing a slot on when it fell."""

    concurrency: int
    waiting: int
    wait_s: float
    _lines: dict[str, _Line] = field(default_factory=dict)

    def running(self, tenant: str) -> int:
        line = self._lines.get(tenant)
        return line.running if line else 0

    def queued(self, tenant: str) -> int:
        line = self._lines.get(tenant)
        return len(line.waiting) if line else 0

    @property
    def tenants(self) -> int:
        """Tenants with a search running or waiting."""
        return len(self._lines)

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str, concurrency: int | None = None) -> AsyncIterator[float]:
        """Hold one of the tenant's slots for the body; yields the seconds it waited.
        ``concurrency``: the tenant's own bound (None: ``self.concurrency``; 0: none).
        SearchBusyError when the line is full or the wait passes ``wait_s``."""
        limit = self.concurrency if concurrency is None else concurrency
        # No bound: never waits, and those waiting under an older bound go at once.
        waited_s = await self._acquire(tenant, limit if limit > 0 else UNBOUNDED)
        try:
            yield waited_s
        finally:
            self._release(tenant)

    async def _acquire(self, tenant: str, limit: int) -> float:
        line = self._lines.setdefault(tenant, _Line(limit))
        line.limit = limit
        self._hand_over(line)  # a limit that rose starts waiters at once
        if line.running < line.limit and not line.waiting:
            line.running += 1
            return 0.0
        if len(line.waiting) >= self.waiting:
            raise SearchBusyError(
                tenant,
                line.running,
                len(line.waiting),
                f"its line is full (search_concurrency {line.limit},"
                f" search_tenant_waiting {self.waiting})",
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.waiting.append(turn)
        begun = time.monotonic()
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancellation
            # that comes as the slot is handed over, and runs the search anyway.
            async with asyncio.timeout(self.wait_s):
                await turn
        except BaseException as exc:
            # Timed out, or the task was cancelled (its client went away: until_gone; or
            # a shutdown). If the slot was handed over in the meantime, pass it on; else
            # leave the line.
            if turn.done() and not turn.cancelled():
                self._release(tenant)
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    line.waiting.remove(turn)
                self._forget_if_idle(tenant)
            if isinstance(exc, TimeoutError):
                raise SearchBusyError(
                    tenant,
                    line.running,
                    len(line.waiting),
                    f"no slot freed within search_tenant_wait_s ({self.wait_s:g} s)",
                ) from None
            raise
        return time.monotonic() - begun

    def _release(self, tenant: str) -> None:
        line = self._lines[tenant]
        line.running -= 1
        self._hand_over(line)
        self._forget_if_idle(tenant)

    @staticmethod
    def _hand_over(line: _Line) -> None:
        """Free slots go to the first in line (a waiter already gone is skipped)."""
        while line.waiting and line.running < line.limit:
            turn = line.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                line.running += 1

    def _forget_if_idle(self, tenant: str) -> None:
        line = self._lines.get(tenant)
        if line is not None and line.running <= 0 and not line.waiting:
            del self._lines[tenant]
