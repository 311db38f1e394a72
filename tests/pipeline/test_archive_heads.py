"""The head check of a .tar.gz: real archives pass whatever their size, every other
format a user may send by mistake is named."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile

import pytest

from pipeline.sources.archive_heads import HEAD_BYTES, archive_head_problem


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pkg/a.py", "x = 1\n")
    return buffer.getvalue()


SMALL = gzip.compress(_tar({"pkg/a.py": b"def f():\n    return 1\n"}))
# Random content: its compressed stream is longer than the head, so the check judges a
# head cut mid-stream, as it does for a real upload's first part.
LARGE = gzip.compress(_tar({"pkg/blob.bin": os.urandom(3 * HEAD_BYTES)}))


@pytest.mark.parametrize(
    "data",
    [
        SMALL,
        LARGE,
        gzip.compress(_tar({})),  # no members: zero blocks only
        gzip.compress(_tar({"a" * 150: b"long name: a GNU/PAX header first"})),
    ],
    ids=["small", "larger-than-the-head", "empty-archive", "pax-header"],
)
def test_a_real_tar_gz_passes(data: bytes) -> None:
    head = data[:HEAD_BYTES]
    assert archive_head_problem(head, whole=len(data) <= HEAD_BYTES) is None


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"", "it is empty"),
        (_zip(), "it is a zip file, not a gzip-compressed tar (.tar.gz)"),
        (bz2.compress(_tar({"a": b"x"})), "it is a bzip2 file"),
        (lzma.compress(_tar({"a": b"x"})), "it is an xz file"),
        (_tar({"a.py": b"x = 1\n"}), "it is an uncompressed tar (compress it: tar -czf)"),
        (b"def main():\n    pass\n" * 40, "it is not an archive"),
        (gzip.compress(b"just one file, gzip-compressed\n" * 40), "holds no tar archive"),
        (gzip.compress(b"short"), "too short to hold a tar archive"),
        (b"\x1f\x8b\x08\x00" + b"\xff" * 200, "its gzip data is corrupt"),
    ],
    ids=["empty", "zip", "bzip2", "xz", "plain-tar", "text", "gz-of-a-file", "short", "corrupt"],
)
def test_anything_else_is_named(data: bytes, named: str) -> None:
    problem = archive_head_problem(data[:HEAD_BYTES], whole=len(data) <= HEAD_BYTES)
    assert problem is not None and named in problem


def test_a_head_cut_mid_stream_is_not_judged_too_short() -> None:
    # The first 20 bytes of a real archive: the stream has not ended, nothing to say yet.
    assert archive_head_problem(LARGE[:20], whole=False) is None
    # The same bytes as a whole file: it is cut short.
    assert archive_head_problem(LARGE[:20], whole=True) is not None
