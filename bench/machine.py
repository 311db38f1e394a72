"""The machine a benchmark ran on, for recorded results (CLI benchmarks and bench/ scripts).

Must not import: anything of Quarry.
"""

from __future__ import annotations

import platform
import socket
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback right now, for a private stack."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
