"""Free loopback ports for a private stack (benchmarks, tests): every port it listens on.

A private stack beside a running local stack must ask for none of the fixed defaults
(6390, 5433, 7687, 2480, 8080, 5555, 9101, 9102): each one is taken from the kernel's
free ports instead. A port taken between this choice and the stack's start still fails
the start with one line naming it (``quarry dev up`` checks every port first).

Must not import: api/, cli/, a driver.
"""

from __future__ import annotations

import socket

# Every settings field naming a port that the local stack (or one of its workers) binds.
STACK_PORT_FIELDS = (
    "stack_redis_port",
    "stack_postgres_port",
    "stack_bolt_port",
    "stack_graph_http_port",
    "stack_api_port",
    "stack_flower_port",
    "worker_metrics_port_cpu",
    "worker_metrics_port_embed",
)
_METRICS_FIELDS = ("worker_metrics_port_cpu", "worker_metrics_port_embed")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def private_stack_ports(*, worker_metrics: bool = True) -> dict[str, int]:
    """Settings overrides giving a private stack a free port for everything it binds;
    without ``worker_metrics`` the workers' metrics endpoints are off (port 0)."""
    fields = [f for f in STACK_PORT_FIELDS if worker_metrics or f not in _METRICS_FIELDS]
    ports = dict(zip(fields, free_ports(len(fields)), strict=True))
    if not worker_metrics:
        ports.update(dict.fromkeys(_METRICS_FIELDS, 0))
    return ports
