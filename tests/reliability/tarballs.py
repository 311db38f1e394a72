"""Hostile ``.tar.gz`` archives written byte by byte, so that headers may lie.

A member is a :class:`tarfile.TarInfo` header plus the bytes that really follow it:
the declared size and the data need not agree, names may be absolute, climb with
``..`` or hold any bytes, links may point anywhere, and the gzip stream may be cut or
flipped. Used by the generated and the hand-written archive tests.

Must not import: anything of the product; this is test data.
"""

from __future__ import annotations

import gzip
import tarfile
from dataclasses import dataclass, field
from typing import Literal, cast

BLOCK = 512
Format = Literal[0, 1, 2]  # tarfile's USTAR, GNU and PAX formats


@dataclass(frozen=True)
class Member:
    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    declared_size: int | None = None  # None: len(data)
    linkname: str = ""
    pax: dict[str, str] = field(default_factory=dict)


def header(member: Member, fmt: int) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.type = member.kind
    info.size = len(member.data) if member.declared_size is None else member.declared_size
    info.linkname = member.linkname
    info.mode = 0o644
    if member.kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    if member.pax:
        info.pax_headers = dict(member.pax)
    try:
        return info.tobuf(cast(Format, fmt), "utf-8", "surrogateescape")
    except ValueError:  # a name or size this format cannot hold: GNU can
        return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def tar_bytes(members: list[Member], *, fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    out = bytearray()
    for member in members:
        out += header(member, fmt)
        out += member.data
        out += b"\0" * (-len(member.data) % BLOCK)
    if end:
        out += b"\0" * (2 * BLOCK)
    return bytes(out)


def tar_gz(members: list[Member], *, fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    return gzip.compress(tar_bytes(members, fmt=fmt, end=end), compresslevel=6, mtime=0)
