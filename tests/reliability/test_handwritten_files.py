"""Hand-written hostile files: each is indexed cleanly or skipped with a reason.

A 50 MB single-line file (skipped quickly, never read whole), empty files, binary files,
invalid UTF-8 and other encodings, and names with spaces, non-ASCII and non-UTF-8 bytes.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.inventory import take_inventory
from pipeline.analysis.selection import select_files
from pipeline.models import FileVersion, SkippedFile, SkipReason
from pipeline.sources.blobs import local_reader
from pipeline.stages.chunk import chunk_files
from tests.reliability.chunk_worker import COUNTER, OPTIONS, REPO, chunk_all, fake_context, write

pytestmark = pytest.mark.timeout(120)

FIFTY_MB = 50 * 1024 * 1024


# --- a 50 MB single-line file --------------------------------------------------------


@pytest.fixture(scope="module")
def huge_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("huge") / "repo"
    write(root, "ok.py", b"def ok():\n    return 1\n")
    with (root / "huge.js").open("wb") as out:
        block = b"a" * (1024 * 1024)
        for _ in range(FIFTY_MB // len(block)):
            out.write(block)
    return root


def peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_50_mb_single_line_file_is_skipped_quickly_without_being_read(huge_tree: Path) -> None:
    started = time.monotonic()
    inventory = take_inventory(huge_tree)
    assert time.monotonic() - started < 5
    (skipped,) = [s for s in inventory.skipped if s.path == "huge.js"]
    assert skipped.reason is SkipReason.TOO_LARGE
    assert str(FIFTY_MB) in skipped.detail
    assert [f.path for f in inventory.files] == ["ok.py"]
    # Selection decides from the size on disk: its memory stays far below the file's.
    assert peak_bytes(lambda: take_inventory(huge_tree)) < 4 * 1024 * 1024
    assert peak_bytes(lambda: select_files(huge_tree)) < 4 * 1024 * 1024


def test_a_file_that_grew_to_50_mb_after_listing_is_read_no_further_than_listed(
    huge_tree: Path,
) -> None:
    listed = FileVersion("huge.js", "0" * 64, "javascript", 10)
    ctx, job_id = fake_context([])
    ctx.board.set_counters(job_id, {"files.todo": 1})

    def run() -> None:
        chunk_files(
            ctx,
            job_id,
            REPO,
            [listed],
            read=local_reader(huge_tree),
            options=OPTIONS,
            counter=COUNTER,
            repo_paths=lambda: None,
        )

    assert peak_bytes(run) < 4 * 1024 * 1024
    assert ctx.board.counters(job_id)["files.failed"] == 1
    job = ctx.jobs.get(job_id)
    assert job is not None
    (error,) = job.errors
    assert error.path == "huge.js" and "changed while the job was running" in error.message


def test_50_mb_of_bytes_handed_to_the_analysis_are_skipped_as_too_large() -> None:
    data = b"x" * FIFTY_MB
    started = time.monotonic()
    result = analyze_file("huge.py", data, options=OPTIONS, counter=COUNTER)
    assert time.monotonic() - started < 1
    assert isinstance(result, SkippedFile) and result.reason is SkipReason.TOO_LARGE


# --- empty, binary, badly encoded -----------------------------------------------------

CONTENT_CASES: dict[str, tuple[bytes, SkipReason | None]] = {
    "empty.py": (b"", None),
    "empty.md": (b"", None),
    "blank.json": (b"\n\n  \r\n", None),
    "image.png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), SkipReason.BINARY),
    "prog.c": (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64, SkipReason.BINARY),
    "nuls.py": (b"x = 1\n\x00\x00\x00\x00", SkipReason.BINARY),
    "controls.rs": (bytes(range(1, 32)) * 40, SkipReason.BINARY),
    "utf16_no_bom.js": ("let x = 'caf\u00e9';\n".encode("utf-16-le"), SkipReason.BINARY),
    "utf16_bom.py": ("x = 'caf\u00e9'\n".encode("utf-16"), None),
    "utf32_bom.go": ("package main\n".encode("utf-32"), None),
    "latin1.py": ("# caf\u00e9 na\u00efve\nx = '\u00e9'\n".encode("latin-1"), None),
    "broken_utf8.py": (b"x = '\xc3'\ny = '\xff\xfe'\nz = 1\n", None),
    "surrogates.js": (b"let s = '\xed\xa0\x80\xed\xbf\xbf';\n", None),
    "overlong.md": (b"# \xc0\xaf\xe0\x80\xaf title\n", None),
    "mixed_newlines.py": (b"a = 1\r\nb = 2\rc = 3\n\x0bd = 4\x0c\n", None),
    "bom_then_nul.py": (b"\xef\xbb\xbfx = 1\x00\n", None),
    "escapes.sh": (b"echo '\x1b[31mred\x1b[0m'\n", None),
}


@pytest.fixture
def content_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel, (data, _) in CONTENT_CASES.items():
        write(root, rel, data)
    return root


def test_empty_binary_and_badly_encoded_files_are_indexed_or_skipped_with_their_reason(
    content_tree: Path,
) -> None:
    inventory = take_inventory(content_tree)
    listed = {f.path for f in inventory.files}
    skipped = {s.path: s.reason for s in inventory.skipped}
    for rel, (data, reason) in CONTENT_CASES.items():
        if reason is None:
            assert rel in listed, rel
            result = analyze_file(rel, data, options=OPTIONS, counter=COUNTER)
            assert isinstance(result, FileAnalysis), rel
            for chunk in result.chunks:
                chunk.text.encode("utf-8")
                assert "\x00" not in chunk.text
        else:
            assert skipped.get(rel) is reason, rel
    counters = chunk_all(content_tree)
    assert counters.get("files.failed", 0) == 0
    assert counters["files.chunked"] + counters.get("files.skipped_content", 0) == len(listed)


def test_empty_files_get_no_chunks_and_settle_as_written(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for rel in ("a.py", "b.md", "c.json", "d.txt"):
        write(root, rel, b"")
    counters = chunk_all(root)
    assert counters["files.written"] == 4
    assert counters.get("chunks.total", 0) == 0


def test_invalid_utf8_is_repaired_and_counted_not_stored_as_is() -> None:
    result = analyze_file("a.py", b"x = '\xed\xa0\x80'\ny = '\xff'\n", options=OPTIONS)
    assert isinstance(result, FileAnalysis)
    assert result.source.replaced_count >= 2
    assert all("\ufffd" in c.text for c in result.chunks)


# --- names ----------------------------------------------------------------------------


def test_names_with_spaces_and_non_ascii_are_indexed_under_their_own_names(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    names = ["my dir/my file.py", "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb.py",
             "caf\u00e9 cr\u00e8me.md", " lead and trail .js", "tab\there.go",
             "new\nline.rs", "-rf.c", "$(id).sh"]  # fmt: skip
    for rel in names:
        write(root, rel, b"def f():\n    return 1\n")
    inventory = take_inventory(root)
    assert sorted(f.path for f in inventory.files) == sorted(names)
    counters = chunk_all(root)
    assert counters["files.chunked"] == len(names)


def test_names_that_are_not_utf8_are_skipped_with_a_readable_spelling(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    raw = os.fsencode(root)
    for name in (b"caf\xe9.py", b"\xff\xfe.js"):
        with open(os.path.join(raw, name), "wb") as handle:
            handle.write(b"x = 1\n")
    os.mkdir(os.path.join(raw, b"dir\x80"))
    with open(os.path.join(raw, b"dir\x80", b"inner.py"), "wb") as handle:
        handle.write(b"y = 2\n")
    write(root, "good.py", b"z = 3\n")
    inventory = take_inventory(root)
    assert [f.path for f in inventory.files] == ["good.py"]
    skipped = {s.path: s for s in inventory.skipped}
    for shown in ("caf\\xe9.py", "\\xff\\xfe.js", "dir\\x80"):
        assert skipped[shown].reason is SkipReason.UNREADABLE
        assert skipped[shown].detail == "name is not UTF-8"
    json.dumps([s.path for s in inventory.skipped]).encode("utf-8")
