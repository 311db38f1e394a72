"""The load benchmark's clients: N concurrent searchers, a health prober, a metrics scrape.

Owns: closed-loop clients (each sends its next ``/v1/search`` as soon as the last one
answered) on one asyncio loop with ``httpx.AsyncClient``, for a bounded time, each
walking the mix from its own offset with its tenant's token; a thread that GETs
``/healthz`` and ``/readyz`` every ``interval_s`` on its own connection (a thread, so
that the clients' event loop cannot delay a probe); and reading the API's
``quarry_search_seconds`` sums per step from ``/metrics``, to say where server time
went.

Must not import: api/, pipeline/ (it speaks HTTP only).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from bench.load_mix import LoadQuery

_STEP = re.compile(r'^quarry_search_seconds_(sum|count)\{step="(\w+)"\} ([0-9.e+-]+)$', re.M)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: its kind and tenant, when it started (s into the phase), how long it
    took, and ``ok`` or the error (``http_<status>``, ``timeout``, ``connect``...)."""

    kind: str
    tenant: str
    at_s: float
    latency_s: float
    outcome: str


def outcome_of(response: httpx.Response) -> str:
    return "ok" if response.status_code == 200 else f"http_{response.status_code}"


def error_name(exc: Exception) -> str:
    """A short, stable name for a failed request."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    return type(exc).__name__


async def _client(
    http: httpx.AsyncClient,
    tokens: Mapping[str, str],
    mix: Sequence[LoadQuery],
    offset: int,
    started: float,
    deadline: float,
    out: list[Sample],
) -> None:
    position = offset
    while time.perf_counter() < deadline:
        query = mix[position % len(mix)]
        position += 1
        headers = {"Authorization": f"Bearer {tokens[query.tenant]}"}
        begun = time.perf_counter()
        try:
            response = await http.get("/v1/search", params=query.params, headers=headers)
            outcome = outcome_of(response)
        except httpx.HTTPError as exc:
            outcome = error_name(exc)
        ended = time.perf_counter()
        out.append(Sample(query.kind, query.tenant, begun - started, ended - begun, outcome))


async def _run(
    api_url: str,
    tokens: Mapping[str, str],
    groups: Sequence[tuple[Sequence[LoadQuery], int]],
    duration_s: float,
    timeout_s: float,
) -> tuple[list[Sample], float]:
    clients = sum(n for _, n in groups)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    out: list[Sample] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=timeout_s, limits=limits) as http:
        started = time.perf_counter()
        deadline = started + duration_s
        runs = []
        for mix, count in groups:
            step = max(1, len(mix) // count)
            runs += [
                _client(http, tokens, mix, n * step, started, deadline, out) for n in range(count)
            ]
        await asyncio.gather(*runs)
        return out, time.perf_counter() - started


def run_groups(
    api_url: str,
    tokens: Mapping[str, str],
    groups: Sequence[tuple[Sequence[LoadQuery], int]],
    *,
    duration_s: float,
    timeout_s: float,
) -> tuple[list[Sample], float]:
    """Closed-loop searchers for ``duration_s`` (a request begun before the end is
    waited for), in groups of ``(mix, clients)`` at once (one tenant's flood beside the
    others' steady clients): every request, and the seconds from the first to the last
    answer."""
    for mix, clients in groups:
        if clients < 1 or not mix:
            raise ValueError(f"clients: at least 1 and a non-empty mix, got {clients}, {len(mix)}")
    return asyncio.run(_run(api_url, tokens, groups, duration_s, timeout_s))


@dataclass
class HealthProber:
    """GETs each path every ``interval_s`` in a thread until :meth:`stop`; each answer's
    latency and outcome (``ok`` for a 200) per path."""

    api_url: str
    interval_s: float = 0.25
    timeout_s: float = 10.0
    paths: tuple[str, ...] = ("/healthz", "/readyz")
    samples: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HealthProber:
        self.samples = {path: [] for path in self.paths}
        self._thread = threading.Thread(target=self._loop, name="health-prober", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, list[tuple[float, str]]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def _loop(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=self.timeout_s) as http:
            while not self._stop.is_set():
                tick = time.perf_counter()
                for path in self.paths:
                    begun = time.perf_counter()
                    try:
                        outcome = outcome_of(http.get(path))
                    except httpx.HTTPError as exc:
                        outcome = error_name(exc)
                    self.samples[path].append((time.perf_counter() - begun, outcome))
                self._stop.wait(max(0.0, self.interval_s - (time.perf_counter() - tick)))


def search_step_seconds(api_url: str, token: str) -> dict[str, tuple[float, float]]:
    """The API's ``quarry_search_seconds`` (sum, count) per step, read from /metrics now
    (one API process: with several, this is whichever answered)."""
    response = httpx.get(
        f"{api_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    response.raise_for_status()
    return parse_step_seconds(response.text)


def parse_step_seconds(text: str) -> dict[str, tuple[float, float]]:
    """(sum, count) per step of ``quarry_search_seconds`` in a Prometheus text page."""
    found: dict[str, list[float]] = {}
    for which, step, value in _STEP.findall(text):
        found.setdefault(step, [0.0, 0.0])[0 if which == "sum" else 1] = float(value)
    return {step: (pair[0], pair[1]) for step, pair in found.items()}


def step_means_ms(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """Per search step between two scrapes: how many, and their mean in ms."""
    out = {}
    for step, (total, count) in sorted(after.items()):
        was_total, was_count = before.get(step, (0.0, 0.0))
        n = count - was_count
        if n > 0:
            out[step] = {"count": n, "mean_ms": round((total - was_total) / n * 1000, 2)}
    return out
