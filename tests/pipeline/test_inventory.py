"""The inventory of a tree: file versions with real hashes, skips with reasons, the digest
that names a plain folder, and the dry-run estimate."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pipeline.analysis.inventory import (
    DEFAULT_BYTES_PER_CHUNK,
    Inventory,
    VersionCache,
    estimate,
    take_inventory,
    tree_digest,
)
from pipeline.analysis.selection import select_files
from pipeline.models import FileVersion, SkippedFile, SkipReason

FILES: dict[str, bytes] = {
    "main.py": b"print('hello')\n",
    "src/app.ts": b"export const x = 1;\n",
    "src/tool": b"#!/usr/bin/env python3\nprint(1)\n",
    "src/bom_tool": b"\xef\xbb\xbf#!/bin/bash\necho hi\n",
    "docs/guide.md": b"# Guide\n",
    "notes.txt": b"plain words\n",
    "empty.py": b"",
    "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "app.min.js": b"var a=1;",
    "debug.log": b"log\n",
    ".gitignore": b"*.log\n",
    "node_modules/lib/index.js": b"module.exports = 1;\n",
    "big.py": b"x = 1\n" * 500,
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel, data in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


KEPT = {
    ".gitignore": "text",
    "docs/guide.md": "markdown",
    "empty.py": "python",
    "main.py": "python",
    "notes.txt": "text",
    "src/app.ts": "typescript",
    "src/bom_tool": "bash",
    "src/tool": "python",
}


@pytest.mark.parametrize("workers", [1, 4])
def test_versions_carry_the_sha256_language_and_size_of_each_kept_file(
    tree: Path, workers: int
) -> None:
    inventory = take_inventory(tree, max_file_bytes=2_000, workers=workers)
    assert [f.path for f in inventory.files] == sorted(KEPT)
    for version in inventory.files:
        data = FILES[version.path]
        assert version == FileVersion(
            version.path, hashlib.sha256(data).hexdigest(), KEPT[version.path], len(data)
        )
    assert inventory.bytes_total == sum(len(FILES[p]) for p in KEPT)


def test_every_left_out_file_is_reported_with_its_reason(tree: Path) -> None:
    inventory = take_inventory(tree, max_file_bytes=2_000)
    reasons = {s.path: s.reason for s in inventory.skipped}
    assert reasons == {
        "app.min.js": SkipReason.MINIFIED,
        "big.py": SkipReason.TOO_LARGE,
        "debug.log": SkipReason.IGNORED,
        "image.png": SkipReason.BINARY,
        "node_modules/": SkipReason.DEFAULT_EXCLUDED,
    }
    assert [s.path for s in inventory.skipped] == sorted(reasons)


def test_it_agrees_with_select_files_and_without_content_checks_keeps_binaries(
    tree: Path,
) -> None:
    selection = select_files(tree, max_file_bytes=2_000)
    inventory = take_inventory(tree, max_file_bytes=2_000)
    assert tuple(f.path for f in inventory.files) == selection.files
    assert set(inventory.skipped) == set(selection.skipped)
    unchecked = take_inventory(tree, max_file_bytes=2_000, check_content=False)
    assert {"image.png", "app.min.js"} <= {f.path for f in unchecked.files}


def test_a_file_that_vanishes_grows_or_turns_unreadable_after_listing_is_skipped(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.analysis.inventory as inventory_module

    real_select = inventory_module.select_files

    def select_then_change(root: Path, **kwargs: object) -> object:
        selection = real_select(root, **kwargs)  # type: ignore[arg-type]
        (root / "main.py").unlink()
        (root / "notes.txt").write_bytes(b"y" * 3_000)
        (root / "docs" / "guide.md").unlink()
        (root / "docs" / "guide.md").mkdir()  # open() fails, even for root
        return selection

    monkeypatch.setattr(inventory_module, "select_files", select_then_change)
    inventory = take_inventory(tree, max_file_bytes=2_000)
    skipped = {s.path: s for s in inventory.skipped}
    assert skipped["main.py"] == SkippedFile(
        "main.py", SkipReason.UNREADABLE, "vanished after listing"
    )
    assert skipped["notes.txt"].reason is SkipReason.TOO_LARGE
    assert skipped["docs/guide.md"] == SkippedFile(
        "docs/guide.md", SkipReason.UNREADABLE, "Is a directory"
    )
    kept = {f.path for f in inventory.files}
    assert not {"main.py", "notes.txt", "docs/guide.md"} & kept
    assert "src/app.ts" in kept


def test_a_symlink_out_of_the_tree_is_never_read(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("TOKEN = 'x'\n")
    (tree / "leak.py").symlink_to(secret)
    inventory = take_inventory(tree, max_file_bytes=2_000)
    assert "leak.py" not in {f.path for f in inventory.files}
    assert SkipReason.SYMLINK_OUTSIDE_ROOT in {s.reason for s in inventory.skipped}


def version(path: str, sha: str = "a" * 64) -> FileVersion:
    return FileVersion(path, sha, "python", 1)


def test_tree_digest_is_stable_order_free_and_sensitive_to_every_change() -> None:
    files = [version("a.py"), version("b/c.py", "b" * 64), version("d.py", "c" * 64)]
    digest = tree_digest(files)
    assert digest.startswith("tree-") and len(digest) == len("tree-") + 16
    lines = "".join(f"{f.path}\0{f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    assert digest == "tree-" + hashlib.sha256(lines.encode()).hexdigest()[:16]
    assert tree_digest(reversed(files)) == digest
    assert tree_digest(files[:2]) != digest  # removed
    assert tree_digest([*files, version("e.py")]) != digest  # added
    assert tree_digest([version("a2.py"), *files[1:]]) != digest  # renamed
    assert tree_digest([version("a.py", "f" * 64), *files[1:]]) != digest  # edited
    # The separators keep ("ab", sha) and ("a", "b" + sha) apart.
    assert tree_digest([version("ab", "1" * 64)]) != tree_digest([version("a", "b" + "1" * 63)])


def test_tree_digest_of_the_same_folder_twice_is_equal(tree: Path) -> None:
    first = tree_digest(take_inventory(tree, max_file_bytes=2_000).files)
    assert tree_digest(take_inventory(tree, max_file_bytes=2_000).files) == first
    (tree / "main.py").write_bytes(b"print('changed')\n")
    assert tree_digest(take_inventory(tree, max_file_bytes=2_000).files) != first


def test_estimate_counts_files_bytes_skips_chunks_and_seconds() -> None:
    inventory = Inventory(
        files=(FileVersion("a.py", "a" * 64, "python", 1_000),) * 3,
        skipped=(
            SkippedFile("x.png", SkipReason.BINARY),
            SkippedFile("y.png", SkipReason.BINARY),
            SkippedFile("z/", SkipReason.IGNORED),
        ),
        bytes_total=3_000,
    )
    assert estimate(inventory, bytes_per_chunk=1_000, chunks_per_s=2) == {
        "files": 3,
        "bytes": 3_000,
        "skipped": 3,
        "skipped_by_reason": {"binary": 2, "ignored": 1},
        "estimated_chunks": 3,
        "estimated_s": 1.5,
    }
    assert estimate(inventory, bytes_per_chunk=999)["estimated_chunks"] == 4
    assert estimate(inventory)["estimated_chunks"] == -(-3_000 // DEFAULT_BYTES_PER_CHUNK)
    assert estimate(Inventory())["estimated_s"] == 0.0
    with pytest.raises(ValueError, match="positive"):
        estimate(inventory, chunks_per_s=0)


# --- VersionCache: a folder indexed again hashes only the files that changed ----------


def _write(root: Path, names: dict[str, str]) -> None:
    for name, text in names.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_version_cache_reads_each_unchanged_file_once(tmp_path: Path) -> None:
    _write(tmp_path, {"a.py": "x = 1\n", "pkg/b.py": "y = 2\n", "c.py": "z = 3\n"})
    cache = VersionCache(racy_s=0)
    first = take_inventory(tmp_path, cache=cache)
    assert cache.reads == 3 and cache.hits == 0
    again = take_inventory(tmp_path, cache=cache)
    assert again == first
    assert cache.reads == 3 and cache.hits == 3  # nothing read or hashed again
    (tmp_path / "a.py").write_text("x = 10\n")  # a write sets mtime and ctime
    third = take_inventory(tmp_path, cache=cache)
    assert cache.reads == 4 and cache.hits == 5  # only the changed file
    assert third == take_inventory(tmp_path)  # the same answer as without a cache
    assert {f.path: f.sha256 for f in third.files}["a.py"] != (
        {f.path: f.sha256 for f in first.files}["a.py"]
    )


def test_version_cache_sees_a_same_size_edit_with_its_mtime_set_back(tmp_path: Path) -> None:
    """A hostile (or careless) writer that restores the mtime after an edit of the same
    size still changes the ctime, which is part of the key."""
    _write(tmp_path, {"a.py": "x = 1\n"})
    cache = VersionCache(racy_s=0)
    before = take_inventory(tmp_path, cache=cache).files[0]
    st = (tmp_path / "a.py").stat()
    time.sleep(0.01)
    (tmp_path / "a.py").write_text("x = 2\n")
    os.utime(tmp_path / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (tmp_path / "a.py").stat().st_mtime_ns == st.st_mtime_ns
    after = take_inventory(tmp_path, cache=cache).files[0]
    assert after.sha256 != before.sha256 and cache.reads == 2


def test_version_cache_does_not_keep_racily_fresh_files(tmp_path: Path) -> None:
    """A file written within ``racy_s`` of its read is read again next time (a write in
    the same clock tick would not change its stat)."""
    _write(tmp_path, {"a.py": "x = 1\n"})
    cache = VersionCache(racy_s=3600)
    take_inventory(tmp_path, cache=cache)
    take_inventory(tmp_path, cache=cache)
    assert cache.reads == 2 and cache.hits == 0 and len(cache) == 0


def test_version_cache_is_bounded(tmp_path: Path) -> None:
    _write(tmp_path, {f"f{i}.py": f"v = {i}\n" for i in range(5)})
    cache = VersionCache(racy_s=0, max_entries=3)
    take_inventory(tmp_path, cache=cache)
    assert len(cache) == 3


def test_a_cached_inventory_stats_each_file_once_in_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version cache is keyed by the stat the listing already read: a folder indexed
    again costs one stat per file, not two (issue 22: a one-file change's tree walk)."""
    names = {"a.py": "x = 1\n", "pkg/b.py": "y = 2\n", "pkg/.gitignore": "skip.py\n"}
    _write(tmp_path, {**names, "pkg/skip.py": "s = 1\n"})
    cache = VersionCache(racy_s=0)
    first = take_inventory(tmp_path, cache=cache)
    stat_calls: list[str] = []
    real_stat = os.stat

    def counting(path: object, *args: object, **kwargs: object) -> os.stat_result:
        stat_calls.append(os.fspath(path))  # type: ignore[arg-type]
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counting)
    again = take_inventory(tmp_path, cache=cache)
    paths = [f.path for f in again.files]
    assert again == first and "pkg/skip.py" not in paths and "pkg/b.py" in paths
    assert cache.hits == len(paths)
    root = str(tmp_path.resolve())
    assert not [p for p in stat_calls if p in (f"{root}/a.py", f"{root}/pkg/b.py")]
