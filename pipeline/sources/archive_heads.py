"""Whether the first bytes of a file can start a ``.tar.gz``: checked when a job is
submitted (an upload's first part, a local archive's head), so a zip, a bare tar or a
text file is a 4xx naming the input instead of a job that fails in the worker.

Only the head is judged: a stream that is corrupt or cut further on still fails at
ingest, with the archive named as the user gave it. Pure: bytes in, a reason out.

Must not import: drivers, celery, the API.
"""

from __future__ import annotations

import zlib
from typing import Final

HEAD_BYTES: Final = 64 * 1024
"""How much of an archive the check reads."""

_GZIP: Final = b"\x1f\x8b"
_TAR_BLOCK: Final = 512
# Other formats a user may send by mistake, by their first bytes: what to tell them.
_OTHER_FORMATS: Final = (
    (b"PK\x03\x04", "a zip file"),
    (b"PK\x05\x06", "an empty zip file"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"(\xb5/\xfd", "a zstd file"),
    (b"7z\xbc\xaf'\x1c", "a 7z file"),
    (b"Rar!", "a rar file"),
)


def archive_head_problem(head: bytes, *, whole: bool) -> str | None:
    """Why ``head`` (the first bytes of a file; ``whole`` when it is all of it) cannot
    start a gzip-compressed tar archive, as a phrase ("it is a zip file; ..."), or None
    when it can."""
    if not head:
        return "it is empty"
    if not head.startswith(_GZIP):
        return f"it is {_format_of(head)}, not a gzip-compressed tar (.tar.gz)"
    return _gzip_problem(head, whole=whole)


def _gzip_problem(head: bytes, *, whole: bool) -> str | None:
    inflater = zlib.decompressobj(wbits=31)
    try:
        block = inflater.decompress(head, _TAR_BLOCK)
    except zlib.error as exc:
        return f"its gzip data is corrupt ({exc})"
    if len(block) < _TAR_BLOCK:
        # Cut short, or the head ended mid-stream (nothing to judge yet).
        ended = whole or inflater.eof
        return "it is gzip-compressed but too short to hold a tar archive" if ended else None
    # An archive with no members starts with a zero block.
    if block != bytes(_TAR_BLOCK) and not _is_tar_header(block):
        return "it is gzip-compressed but holds no tar archive (a .gz of a single file?)"
    return None


def _format_of(head: bytes) -> str:
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            return name
    if len(head) >= _TAR_BLOCK and _is_tar_header(head[:_TAR_BLOCK]):
        return "an uncompressed tar (compress it: tar -czf)"
    return "not an archive"


def _is_tar_header(block: bytes) -> bool:
    """Whether ``block`` is a tar header: its checksum field (octal, at 148) equals the
    sum of its bytes with that field read as spaces (POSIX ustar; old tars summed signed
    bytes, accepted too)."""
    field = block[148:156].replace(b"\x00", b" ").strip()
    try:
        recorded = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 0x20
    return recorded in (unsigned, signed)
