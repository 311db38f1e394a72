"""The model's heap policy: glibc takes the fixed mmap threshold; trimming is harmless."""

from __future__ import annotations

import platform

import pytest

from pipeline.adapters.models.heap import (
    TENSOR_MMAP_THRESHOLD_BYTES,
    give_back_freed_memory,
    map_large_blocks,
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_fixed_mmap_threshold() -> None:
    assert map_large_blocks(TENSOR_MMAP_THRESHOLD_BYTES) is True
    block = bytearray(4 * TENSOR_MMAP_THRESHOLD_BYTES)
    del block
    give_back_freed_memory()
