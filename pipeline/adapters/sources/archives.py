"""Safe extraction of a ``.tar.gz`` archive into an empty folder, under limits.

Members are written by this module, never by ``TarFile.extract``: each one is first
checked by its own rules (and links and special files also by ``tarfile.data_filter``,
Python 3.11.4+; for files and folders the own rules are stricter, as no link is ever
created, and skipping its two ``realpath`` calls per member saves a third of the time),
then written with the bytes counted. Refused, with an InvalidInputError naming the
member: absolute names, ``..`` components, NUL bytes in a name or link target (pax
headers can hold them), links whose target is absolute or leaves the tree, device files
and fifos. Links that stay inside the tree are skipped, not created:
their target is indexed under its own name, and with no link on disk no later member
can be written through one. Limits, each an InvalidInputError naming the archive:
the compressed size (``max_archive_bytes``, from the file's size), the number of
members (``max_members``, directories included) and the bytes written
(``max_extracted_bytes``: a member's declared size is checked before it is read, the
bytes actually read are counted while it is written, so a lying or sparse header does
not get past). The decompressed stream itself is metered too: tar headers (pax, GNU long
names) may not take more than 1 MiB plus 64 KiB per member, so a header bomb cannot
fill memory, and a stream that has ended is not read on (tarfile would skip the
declared data of a member block by block past the end: hours for a header declaring
terabytes). A bad gzip or tar stream is "archive X is corrupt: ...".

File modes, owners and times in the archive are ignored (files 0644, folders 0755).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import InvalidInputError

log = logging.getLogger(__name__)

_CHUNK_BYTES = 1024 * 1024
_HEADER_SLACK_BYTES = 1024 * 1024
_HEADER_BYTES_PER_MEMBER = 64 * 1024
_BLOCK_BYTES = 512
_MAX_EMPTY_READS = 64
# O_NOFOLLOW: never write through a link, though this module creates none.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """What one archive may hold: compressed bytes, members and bytes written."""

    max_archive_bytes: int
    max_extracted_bytes: int
    max_members: int


class _OverBudgetError(Exception):
    pass


class _MeteredStream:
    """The decompressed tar stream; reads past what was granted raise _OverBudgetError."""

    def __init__(self, inner: io.BufferedIOBase) -> None:
        self._inner = inner
        self._consumed = 0
        self._allowed = _HEADER_SLACK_BYTES
        self._empty_reads = 0

    def grant(self, nbytes: int) -> None:
        self._allowed += nbytes

    def read(self, size: int = -1) -> bytes:
        room = self._allowed - self._consumed
        if room <= 0:
            raise _OverBudgetError
        data = self._inner.read(room if size < 0 or size > room else size)
        self._consumed += len(data)
        if data or size == 0:
            self._empty_reads = 0
        else:
            # tarfile skips a member's data by reading it block by block, and goes on
            # reading past the end of the stream: a header declaring 10 TB over an
            # archive that has ended would keep it busy for hours.
            self._empty_reads += 1
            if self._empty_reads > _MAX_EMPTY_READS:
                raise EOFError("the archive ends inside a member's declared data")
        return data


def extract_tar_gz(
    archive: Path, dest: Path, limits: ArchiveLimits, *, shown: str | None = None
) -> Path:
    """Extract ``archive`` into the empty folder ``dest``; the folder to index.

    That is ``dest``, or its only entry when the archive holds a single top-level folder
    (``name-1.2.3/`` in an sdist or a GitHub tarball). Errors name the archive as
    ``shown`` ("the uploaded archive": not the worker's scratch path), by default
    "archive PATH".
    """
    name = f"archive {archive}" if shown is None else shown
    if not archive.exists():
        raise InvalidInputError(f"{name} does not exist")
    if not archive.is_file():
        raise InvalidInputError(f"{name} is not a file")
    size = archive.stat().st_size
    if size > limits.max_archive_bytes:
        raise InvalidInputError(
            f"{name} is {size} bytes, over the limit of {limits.max_archive_bytes}"
        )
    dest = dest.resolve()
    try:
        with archive.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            stream = _MeteredStream(unzipped)
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                _Extraction(name, dest, limits, tar, stream).run()
    except _OverBudgetError:
        raise InvalidInputError(f"{name} has tar headers larger than its members allow") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InvalidInputError(f"{name} is corrupt: {exc}") from None
    except OSError as exc:  # reading the archive itself; write errors are mapped below
        raise InvalidInputError(f"{name} cannot be read: {exc.strerror}") from None
    return _single_root(dest)


@dataclass
class _Extraction:
    archive: str
    dest: Path
    limits: ArchiveLimits
    tar: tarfile.TarFile
    stream: _MeteredStream
    written: int = 0

    def run(self) -> None:
        for count, member in enumerate(self.tar, start=1):
            if count > self.limits.max_members:
                raise InvalidInputError(
                    f"{self.archive} has more than {self.limits.max_members} members"
                )
            self.stream.grant(_HEADER_BYTES_PER_MEMBER)
            self._extract(member)

    def _extract(self, member: tarfile.TarInfo) -> None:
        rel = self._member_path(member)
        if not (member.isreg() or member.isdir()):
            self._check_with_data_filter(member)
        if rel is None:
            return
        if member.issym() or member.islnk():
            log.debug("%s: link %r skipped", self.archive, member.name)
        elif member.isdir():
            self._make_dir(self.dest / rel, member)
        elif member.isreg():
            self._write_file(self.dest / rel, member)
        else:
            raise self._error(member, "is a special file")

    def _member_path(self, member: tarfile.TarInfo) -> PurePosixPath | None:
        """The member's path inside the tree; None for the archive's own root (``./``)."""
        if "\x00" in member.name or "\x00" in member.linkname:
            # Only a pax header can carry one; no file system call takes such a path.
            raise self._error(member, "has a NUL byte in its name or link target")
        if member.name.startswith("/"):
            raise self._error(member, "has an absolute path")
        parts = [part for part in member.name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self._error(member, "has a '..' component")
        return PurePosixPath(*parts) if parts else None

    def _check_with_data_filter(self, member: tarfile.TarInfo) -> None:
        try:
            tarfile.data_filter(member, str(self.dest))
        except tarfile.FilterError as exc:
            raise self._error(member, f"is refused: {exc}") from None

    def _make_dir(self, path: Path, member: tarfile.TarInfo) -> None:
        try:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(member, f"cannot be extracted: {exc.strerror}") from None

    def _write_file(self, target: Path, member: tarfile.TarInfo) -> None:
        remaining = self.limits.max_extracted_bytes - self.written
        if member.size > remaining:  # the declared size: refused before reading
            raise self._too_large(member)
        self.stream.grant(-(-member.size // _BLOCK_BYTES) * _BLOCK_BYTES)
        source = self.tar.extractfile(member)
        if source is None:
            raise self._error(member, "has no data")
        self._make_dir(target.parent, member)
        try:
            fd = os.open(target, _WRITE_FLAGS, 0o644)
        except OSError as exc:
            raise self._error(member, f"cannot be extracted: {exc.strerror}") from None
        with os.fdopen(fd, "wb", buffering=0) as out, source:
            while chunk := source.read(_CHUNK_BYTES):  # read errors: the archive is corrupt
                self.written += len(chunk)  # the bytes actually read, not the header's
                if self.written > self.limits.max_extracted_bytes:
                    raise self._too_large(member)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise self._error(member, f"cannot be extracted: {exc.strerror}") from None

    def _error(self, member: tarfile.TarInfo, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{self.archive}: member {member.name!r} {problem}")

    def _too_large(self, member: tarfile.TarInfo) -> InvalidInputError:
        return InvalidInputError(
            f"{self.archive} expands to more than {self.limits.max_extracted_bytes} "
            f"bytes (at member {member.name!r})"
        )


def _single_root(dest: Path) -> Path:
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest
