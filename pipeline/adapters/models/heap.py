"""The process heap under a model: glibc's mmap threshold and trimming (Linux, glibc).

A forward pass on the CPU allocates and frees tensors of megabytes per batch, of sizes
that change with every batch. glibc serves a block above its mmap threshold with a
mapping of its own, returned to the system on free; but after each such free it raises
the threshold (up to 32 MiB), so later batches' tensors come from the heap, whose freed
holes are kept and fragment: the embed worker's peak RSS climbed to 1,426 MiB on the
requests sdist. A fixed threshold stops that climb (912 MiB on the same corpus,
bench/results/e2e.md, "Lean API").

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger("quarry.embed")

_M_MMAP_THRESHOLD = -3  # malloc.h
# Tensors of a batch are far above this; Python's own objects far below it.
TENSOR_MMAP_THRESHOLD_BYTES = 64 * 1024


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 (not glibc, e.g. musl: no mallopt, no malloc_trim)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def map_large_blocks(threshold_bytes: int = TENSOR_MMAP_THRESHOLD_BYTES) -> bool:
    """Serve every block of ``threshold_bytes`` or more with its own mapping, returned to
    the system when freed, for the rest of this process; whether glibc took it."""
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    if done:
        log.debug("malloc mmap threshold fixed at %d bytes", threshold_bytes)
    return done


def give_back_freed_memory() -> None:
    """Return glibc's free heap pages to the system (after a model is loaded or dropped:
    the buffers it freed would otherwise stay in the process's RSS)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
