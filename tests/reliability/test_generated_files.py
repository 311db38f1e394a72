"""Generated hostile files through the chunk worker's file path: never a crash or a hang.

One file at a time: the content checks, decoding, the parse and the chunks of
:func:`pipeline.analysis.analyze.analyze_file` as the chunk stage calls it (and, for a file the
checks skip, once more without them, so that the parser meets what they would hide).
Whole trees: :func:`pipeline.analysis.inventory.take_inventory` (selection) on hostile names,
links, fifos and ignore files, then :func:`pipeline.stages.chunk.chunk_files` on fakes.

Each example ends in a clean result (chunks whose text every store can hold) or a skip
with its reason; any exception fails the test with the input, shrunk.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.inventory import take_inventory
from pipeline.models import SkippedFile, SkipReason
from pipeline.sources.blobs import local_reader
from pipeline.stages.chunk import chunk_files
from tests.reliability.chunk_worker import COUNTER, OPTIONS, REPO, fake_context, storable
from tests.reliability.profiles import budget, counted
from tests.reliability.strategies import file_bytes, file_names, ignore_lines, named_file

pytestmark = pytest.mark.timeout(600, method="thread")

RECHECK_MAX_BYTES = 256 * 1024


def check_analysis(path: str, data: bytes, result: FileAnalysis | SkippedFile) -> None:
    if isinstance(result, SkippedFile):
        assert result.path == path
        assert isinstance(result.reason, SkipReason) and result.detail
        return
    size = len(result.source.text.encode("utf-8"))
    for chunk in result.chunks:
        storable(chunk.text, f"chunk of {path!r}")
        storable(chunk.symbol, f"symbol of {path!r}")
        assert 0 <= chunk.span.start_byte < chunk.span.end_byte <= size
        assert chunk.tokens <= OPTIONS.max_tokens
    for symbol in result.extraction.symbols:
        storable(symbol.qualified_name, f"symbol of {path!r}")
    assert not (result.parse_timed_out and result.unparsed_reason)


@given(named_file())
@budget(700, deadline_s=10.0)
@counted
def test_a_hostile_file_is_chunked_or_skipped_with_a_reason(
    generated: tuple[str, str, bytes],
) -> None:
    _language, path, data = generated
    result = analyze_file(path, data, options=OPTIONS, counter=COUNTER)
    check_analysis(path, data, result)
    if isinstance(result, SkippedFile) and len(data) <= RECHECK_MAX_BYTES:
        # What the content checks hide (one 10,000-byte line of brackets) still parses.
        unchecked = analyze_file(path, data, options=OPTIONS, counter=COUNTER, check_content=False)
        assert isinstance(unchecked, FileAnalysis)
        check_analysis(path, data, unchecked)


# --- whole trees ---------------------------------------------------------------------


Entry = tuple[bytes, str, bytes]  # name, kind, content or link target

_LINK_TARGETS = [b"/etc/passwd", b"/", b"../..", b"../outside.py", b"missing", b"a.py", b"."]


@st.composite
def trees(draw: st.DrawFn) -> list[Entry]:
    entries: list[Entry] = []
    for name in draw(st.lists(file_names, max_size=6, unique=True)):
        kind = draw(st.sampled_from(["file", "file", "file", "link", "fifo", "dir", "loop"]))
        if kind == "link":
            target = draw(st.one_of(st.sampled_from(_LINK_TARGETS), file_names))
            entries.append((name, kind, target))
        elif kind == "file":
            entries.append((name, kind, draw(file_bytes(draw(st.sampled_from(["python", "c"]))))))
        else:
            entries.append((name, kind, b""))
    if draw(st.booleans()):
        lines = "\n".join(draw(ignore_lines))
        entries.append((b".gitignore", "file", lines.encode("utf-8", "surrogateescape")))
    return entries


def build_tree(root: bytes, entries: Sequence[Entry]) -> set[bytes]:
    """The names made under ``root`` (one may fail: a too long name, a clash)."""
    made: set[bytes] = set()
    for name, kind, payload in entries:
        path = os.path.join(root, name)
        try:
            if kind == "file":
                # Never through a link or into a fifo made a moment ago under that name.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
            elif kind == "link":
                os.symlink(payload, path)
            elif kind == "loop":
                os.symlink(name, path)
            elif kind == "fifo":
                os.mkfifo(path)
            else:
                os.mkdir(path)
                with open(os.path.join(path, b"inner.py"), "wb") as handle:
                    handle.write(b"def inner():\n    return 1\n")
        except OSError:
            continue
        made.add(name)
    return made


@given(trees())
@budget(200, deadline_s=10.0)
@counted
def test_a_hostile_tree_is_listed_and_chunked_with_every_entry_accounted_for(
    entries: list[Entry],
) -> None:
    with tempfile.TemporaryDirectory() as base:
        root = os.path.join(os.fsencode(base), b"repo")
        os.mkdir(root)
        with open(os.path.join(os.fsencode(base), b"outside.py"), "wb") as handle:
            handle.write(b"SECRET = 1\n")
        made = build_tree(root, entries)
        inventory = take_inventory(Path(os.fsdecode(root)))

        listed = {f.path for f in inventory.files} | {s.path.rstrip("/") for s in inventory.skipped}
        for name in made:
            shown = name.decode("utf-8", "backslashreplace")
            assert shown in listed or any(p.startswith(shown + "/") for p in listed), shown
        for file in inventory.files:
            storable(file.path, "listed path")
        for skipped in inventory.skipped:
            storable(skipped.path, "skipped path")
            assert skipped.detail or skipped.reason is SkipReason.IGNORED
        real_root = os.path.realpath(root)
        for file in inventory.files:  # nothing listed lies outside the tree
            real = os.path.realpath(os.path.join(root, os.fsencode(file.path)))
            assert real.startswith(real_root + b"/"), file.path

        sent: list[tuple[str, list[dict[str, Any]]]] = []
        ctx, job_id = fake_context(sent)
        ctx.board.set_counters(job_id, {"files.todo": len(inventory.files)})
        chunk_files(
            ctx,
            job_id,
            REPO,
            inventory.files,
            read=local_reader(Path(os.fsdecode(root))),
            options=OPTIONS,
            counter=COUNTER,
            repo_paths=lambda: None,
        )
        counters = ctx.board.counters(job_id)
        chunked, content_skips = (
            counters.get("files.chunked", 0),
            counters.get("files.skipped_content", 0),
        )
        assert chunked + content_skips + counters.get("files.failed", 0) == len(inventory.files)
        job = ctx.jobs.get(job_id)
        assert counters.get("files.failed", 0) == 0, job and job.errors
