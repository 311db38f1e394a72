"""Parse text into a tree-sitter tree under a time limit.

Owns the one place that drives the tree-sitter parser. A parse that runs past its
time limit, or a grammar that is missing, yields None; callers fall back to line windows.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import time

from tree_sitter import Parser, Point, Tree

from pipeline.analysis.languages import grammar

# The parser reads through a callback so that it can report progress (only that form of
# Parser.parse takes a progress callback in tree-sitter 0.26); 1 MiB slices keep the
# number of callbacks small.
_READ_SLICE_BYTES = 1 << 20


def parse(data: bytes, language: str, timeout_s: float) -> Tree | None:
    """Tree for ``data`` (UTF-8) or None on timeout or when ``language`` has no grammar."""
    lang = grammar(language)
    if lang is None:
        return None
    parser = Parser(lang)
    view = memoryview(data)
    deadline = time.monotonic() + timeout_s

    def read(offset: int, _point: Point) -> bytes:
        return bytes(view[offset : offset + _READ_SLICE_BYTES])

    def past_deadline(_offset: int, _has_error: bool) -> bool:
        return time.monotonic() > deadline

    try:
        return parser.parse(read, progress_callback=past_deadline)
    except ValueError:
        # tree-sitter raises ValueError("Parsing failed") when the callback cancels.
        return None
