"""What a fetched tree holds: each selected file's version (hash, language, size).

Owns the producer's listing of a tree: :func:`pipeline.analysis.selection.select_files` decides
which files count, then each file is read once to hash it (sha256 of its bytes), detect
its language and, with ``check_content`` (the default, as in ``select_files``), run the
selection's content checks (size, binary, minified, generated) on those same bytes
rather than reading every file's head twice. A file that vanishes or cannot be read
between the listing and the read becomes a SkippedFile (``unreadable``); one that grew
past ``max_file_bytes`` becomes ``too_large``. Also owns the digest that names a plain
folder's content (:func:`tree_digest`) and the dry-run estimate.

Reading files is this module's only I/O; a thread pool overlaps the reads and hashes
(``hashlib`` and file reads release the GIL). A :class:`VersionCache` (one per worker
process) remembers each file's version by its stat (device, inode, size, mtime and
ctime in ns): a folder indexed again reads and hashes only the files that changed.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.analysis.languages import detect_language
from pipeline.analysis.selection import (
    DEFAULT_MAX_FILE_BYTES,
    content_skip_reason,
    read_regular_file,
    select_files,
)
from pipeline.models import FileVersion, SkippedFile, SkipReason

# Measured with `quarry chunk --json` (256-token window, exact WordPiece counts, headers
# on): requests 2.32.3 sdist, 84 selected files, 476,710 bytes -> 930 chunks = 513 bytes
# per chunk; Django 5.2.19 sdist, 5,454 files, 34,273,429 bytes -> 64,787 chunks = 529.
DEFAULT_BYTES_PER_CHUNK = 513.0
# An embed-bound CPU rate: int8 ONNX embeds 94-120 chunks/s on 2 cores and the whole
# embed stage 85 chunks/s (bench/results/embed_onnx.md, embed.md); a guess until the
# end-to-end benchmark records one. Callers with a measured rate pass it.
DEFAULT_CHUNKS_PER_S = 130.0
_READ_WORKERS = 1
_PARALLEL_FROM_FILES = 64
_BOM = b"\xef\xbb\xbf"


StatKey = tuple[str, int, int, int, int, int, int, bool]


class VersionCache:
    """Each file's version (or content skip) by its stat, as git's index keeps them.

    The key is the absolute path with the file's device, inode, size, mtime and ctime
    (ns), the size limit and whether content was checked. Any write to a file, and any
    change of its times or mode (``touch -d``, ``utime``), sets its ctime to the current
    clock, which no unprivileged process can set back: a file whose key is unchanged
    has the bytes it had. A file whose ctime or mtime is within ``racy_s`` of the clock
    when it is read is not kept (a write in the same clock tick as the read would not
    change the key: git's "racily clean" entries). ``max_entries`` bounds it (least
    recently used out first). ``reads`` counts the files read and hashed, ``hits`` the
    files answered from the cache (tests and benchmarks read both)."""

    def __init__(self, *, max_entries: int = 50_000, racy_s: float = 2.0) -> None:
        self._entries: OrderedDict[StatKey, FileVersion | SkippedFile] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._racy_ns = int(racy_s * 1e9)
        self.reads = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def version(
        self,
        root: str,
        rel: str,
        max_file_bytes: int,
        *,
        check_content: bool,
        st: os.stat_result | None = None,
    ) -> FileVersion | SkippedFile:
        """The file's version; ``st``: its stat, if the caller just read it (the listing)."""
        path = os.path.join(root, rel)
        try:
            if st is None:
                st = os.stat(path)
        except OSError:
            key = None
        else:
            key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                   max_file_bytes, check_content)  # fmt: skip
            with self._lock:
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return found
        result = _file_version(root, rel, max_file_bytes, check_content=check_content)
        with self._lock:
            self.reads += 1
            if key is None or (isinstance(result, SkippedFile) and result.reason in _NOT_KEPT):
                return result
            settled_ns = time.time_ns() - self._racy_ns
            if max(key[4], key[5]) < settled_ns:
                self._entries[key] = result
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return result


_NOT_KEPT = frozenset({SkipReason.UNREADABLE})


@dataclass(frozen=True, slots=True)
class Inventory:
    """The files of a tree as versions (sorted by path), what was skipped, total bytes."""

    files: tuple[FileVersion, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    bytes_total: int = 0


def take_inventory(
    root: Path,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    check_content: bool = True,
    workers: int = _READ_WORKERS,
    cache: VersionCache | None = None,
) -> Inventory:
    """The versions of the files under ``root`` that selection keeps, and every skip;
    with ``cache``, a file whose stat it knows is not read again."""
    root = root.resolve()
    stats: dict[str, os.stat_result] | None = {} if cache is not None else None
    selection = select_files(root, max_file_bytes=max_file_bytes, check_content=False, stats=stats)

    def version(rel: str) -> FileVersion | SkippedFile:
        if cache is not None:
            st = None if stats is None else stats.get(rel)
            return cache.version(str(root), rel, max_file_bytes, check_content=check_content, st=st)
        return _file_version(str(root), rel, max_file_bytes, check_content=check_content)

    if workers > 1 and len(selection.files) >= _PARALLEL_FROM_FILES:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inventory") as pool:
            results = list(pool.map(version, selection.files))
    else:
        results = [version(rel) for rel in selection.files]
    files = tuple(r for r in results if isinstance(r, FileVersion))
    read_skips = [r for r in results if isinstance(r, SkippedFile)]
    skipped = tuple(sorted((*selection.skipped, *read_skips), key=lambda s: s.path))
    return Inventory(files, skipped, sum(f.size_bytes for f in files))


def _file_version(
    root: str, rel: str, max_file_bytes: int, *, check_content: bool
) -> FileVersion | SkippedFile:
    try:
        # One byte past the limit tells "too large" without reading a huge file.
        data = read_regular_file(os.path.join(root, rel), max_file_bytes + 1)
    except FileNotFoundError:
        return SkippedFile(rel, SkipReason.UNREADABLE, "vanished after listing")
    except OSError as exc:
        return SkippedFile(rel, SkipReason.UNREADABLE, exc.strerror or str(exc))
    if len(data) > max_file_bytes:
        return SkippedFile(rel, SkipReason.TOO_LARGE, f"more than {max_file_bytes} bytes")
    if check_content:
        skipped = content_skip_reason(rel, data, max_file_bytes=max_file_bytes)
        if skipped is not None:
            return skipped
    return FileVersion(rel, hashlib.sha256(data).hexdigest(), _language(rel, data), len(data))


def _language(rel: str, data: bytes) -> str:
    """As :func:`pipeline.analysis.encoding.source_file` would say, without decoding the file."""
    head = data[len(_BOM) :] if data.startswith(_BOM) else data
    return detect_language(rel, head[:256].decode("utf-8", "replace"))


def tree_digest(files: Iterable[FileVersion]) -> str:
    """The commit id of a plain folder: ``tree-`` + 16 hex of sha256 over its versions.

    Over the sorted lines ``path NUL sha256 LF``, so it does not depend on order and
    changes when any file is added, removed, renamed or edited.
    """
    digest = hashlib.sha256()
    for path, sha in sorted((f.path, f.sha256) for f in files):
        digest.update(f"{path}\0{sha}\n".encode("utf-8", "surrogateescape"))
    return "tree-" + digest.hexdigest()[:16]


def estimate(
    inventory: Inventory,
    *,
    bytes_per_chunk: float = DEFAULT_BYTES_PER_CHUNK,
    chunks_per_s: float = DEFAULT_CHUNKS_PER_S,
) -> dict[str, Any]:
    """The dry run's answer: files, bytes, skips and the chunks and seconds to expect.

    ``bytes_per_chunk`` and ``chunks_per_s`` default to the figures measured above;
    an estimate for a full index (an incremental run embeds only changed files).
    """
    if bytes_per_chunk <= 0 or chunks_per_s <= 0:
        raise ValueError("bytes_per_chunk and chunks_per_s must be positive")
    chunks = math.ceil(inventory.bytes_total / bytes_per_chunk)
    by_reason: dict[str, int] = {}
    for item in inventory.skipped:
        by_reason[item.reason.value] = by_reason.get(item.reason.value, 0) + 1
    return {
        "files": len(inventory.files),
        "bytes": inventory.bytes_total,
        "skipped": len(inventory.skipped),
        "skipped_by_reason": dict(sorted(by_reason.items())),
        "estimated_chunks": chunks,
        "estimated_s": round(chunks / chunks_per_s, 1),
    }
