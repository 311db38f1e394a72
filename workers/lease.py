"""The worker's lease on the messages it holds: while its main process lives, the key
``quarry:broker:lease:<holder>`` exists (renewed every LEASE_RENEW_S, expiring after
LEASE_TTL_S). tasks/transport.py records which messages the holder was delivered; once
the lease has run out (the process was killed, or its host died) the sweeper gives them
back to their queues (pipeline/adapters/redis/in_flight.py), so a dead worker costs
seconds instead of the broker's visibility timeout.

A thread of the main process: pool children come and go, the main process receives
every message. A renewal that fails (Redis down) is logged and tried again.

Must not import: api/, cli/, drivers (the Redis client is built by wiring/).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from config.queues import LEASE_KEY_PREFIX, LEASE_RENEW_S, LEASE_TTL_S

log = logging.getLogger("quarry.worker")


def new_holder(node: str) -> str:
    """A holder id unique to this process's life: node, pid and a random part."""
    return f"{node}:{os.getpid()}:{uuid.uuid4().hex[:8]}@{socket.gethostname()}"


def start_lease(client: Any, holder: str) -> threading.Event:
    """Hold the lease now and renew it from a thread; set the event to stop renewing
    (the lease then runs out on its own)."""
    stop = threading.Event()
    key = LEASE_KEY_PREFIX + holder

    def renew() -> None:
        try:
            client.set(key, "1", ex=LEASE_TTL_S)
        except Exception as exc:  # noqa: BLE001 (Redis may be down: next renewal)
            log.warning("could not renew the worker's lease %s: %s", holder, exc)

    def loop() -> None:
        while not stop.wait(LEASE_RENEW_S):
            renew()

    renew()
    threading.Thread(target=loop, name="quarry-lease", daemon=True).start()
    return stop
