"""Free loopback ports for a private stack (benchmarks, tests): every port it listens on.

A private stack beside a running local stack must ask for none of the fixed defaults
(6390, 5433, 7687, 2480, 8080, 5555, 9101, 9102): each one is taken from the kernel's
free ports instead. A port taken between this choice and the stack's start still fails
the start with one line naming it (``quarry dev up`` checks every port first).

Must not import: api/, cli/, a driver.
"""

from __future__ import annotations

import socket

from config.settings.model import METRICS_PORT_FIELDS, SERVICE_PORT_FIELDS

# Every settings field naming a port that the local stack (or one of its workers) binds.
STACK_PORT_FIELDS = (*SERVICE_PORT_FIELDS, *METRICS_PORT_FIELDS)


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
    fields = [f for f in STACK_PORT_FIELDS if worker_metrics or f not in METRICS_PORT_FIELDS]
    ports = dict(zip(fields, free_ports(len(fields)), strict=True))
    if not worker_metrics:
        ports.update(dict.fromkeys(METRICS_PORT_FIELDS, 0))
    return ports
