"""Which local paths a job may read: the operator's allowed roots, never the service's own.

A local source (a folder, a ``.tar.gz`` on the workers' disk, or the path of a
``file://`` git URL) is read by the service's workers with the service's permissions,
so a tenant must not be able to name whatever those workers can read. The rule:

- Refused outright: a relative path, and any ``..`` component (whatever it resolves to).
- The path is resolved (symlinks followed, as the workers would) and must then lie
  under one of the operator's ``allowed_roots`` (themselves resolved). No roots: every
  local path is refused; that is the default, and production sets none.
- Always refused, allowed root or not: a path inside a protected folder (the service's
  data folder, which holds the stack's secrets, the databases, run and upload folders,
  and the secrets folder) and a path that holds one (indexing a parent would read it).

The check answers the same way whether the path exists or not, so a refusal tells a
tenant nothing about the workers' disks. It runs at submission (the API, dry runs
included) and again when the worker fetches the source: a symlink changed in between
is caught. The only exception is the API's own upload folder, whose archives the
service wrote itself: :meth:`LocalSourcePolicy.check_fetch` accepts them for archive
sources, the submission check never does.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.archive_heads import HEAD_BYTES, archive_head_problem
from pipeline.sources.locations import REF_APPLIES
from pipeline.sources.uploads import UPLOAD_PREFIX

ALLOWED_ROOTS_SETTING = "QUARRY_SOURCE_ALLOWED_ROOTS"
FILE_URL_PREFIX = "file://"
UPLOADS_FOLDER = "uploads"  # under the data folder: the archives the API received


def _resolved(path: Path) -> Path:
    # realpath resolves what exists and keeps the rest lexically: the same answer for
    # a path that exists and for one that does not, so a refusal reveals neither.
    return Path(os.path.realpath(path))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True, slots=True)
class LocalSourcePolicy:
    """The operator's allowed roots and the service's protected folders (both resolved)."""

    allowed_roots: tuple[Path, ...]
    protected: tuple[Path, ...]
    uploads: Path | None = None

    @classmethod
    def build(
        cls,
        allowed_roots: Iterable[Path],
        protected: Iterable[Path],
        uploads: Path | None = None,
    ) -> LocalSourcePolicy:
        return cls(
            allowed_roots=tuple(_resolved(Path(p)) for p in allowed_roots),
            protected=tuple(_resolved(Path(p)) for p in protected),
            uploads=None if uploads is None else _resolved(uploads),
        )

    def check_submission(self, source: JobSource) -> JobSource:
        """``source`` if a tenant may name it; InvalidInputError naming it if not. A path
        under an allowed root that this host sees (the API's) must exist, and an archive
        there must be a readable file that starts a .tar.gz: refused here rather than
        failing in the worker. Where the root is not mounted on
        this host, only the ingest hosts can tell, and they do."""
        path = local_path_of(source)
        if path is not None:
            resolved = self.check_path(path, shown=source.location)
            roots = [r for r in self.allowed_roots if _within(resolved, r)]
            if any(r.is_dir() for r in roots) and not resolved.exists():
                raise InvalidInputError(f"source {source.location!r} does not exist")
            if source.kind is SourceKind.ARCHIVE and resolved.exists():
                _check_archive(resolved, source.location)
            if source.kind is SourceKind.PATH and resolved.exists():
                check_folder_ref(source, resolved)
        return source

    def check_fetch(self, source: JobSource) -> Path | None:
        """The resolved local path a worker may read for ``source`` (None for a remote
        git URL); archives the API uploaded itself are allowed too."""
        path = local_path_of(source)
        if path is None:
            return None
        if source.kind is SourceKind.ARCHIVE and self.uploads is not None:
            _reject_relative_or_dotdot(path, source.location)
            resolved = _resolved(Path(path))
            if resolved.parent == self.uploads:
                return resolved
        return self.check_path(path, shown=source.location)

    def check_path(self, path: str, *, shown: str) -> Path:
        """The resolved ``path``, if it lies under an allowed root and away from every
        protected folder; InvalidInputError naming ``shown`` otherwise."""
        _reject_relative_or_dotdot(path, shown)
        resolved = _resolved(Path(path))
        for folder in self.protected:
            if _within(resolved, folder) or _within(folder, resolved):
                raise InvalidInputError(
                    f"source {shown!r} is refused: it is or holds the service's own data or secrets"
                )
        if not any(_within(resolved, root) for root in self.allowed_roots):
            if not self.allowed_roots:
                raise InvalidInputError(
                    f"source {shown!r} is refused: local paths are not allowed on this "
                    f"service (the operator allows folders with {ALLOWED_ROOTS_SETTING}); "
                    "upload a .tar.gz or give a git URL"
                )
            raise InvalidInputError(
                f"source {shown!r} is refused: it is not under a folder this service "
                f"allows ({ALLOWED_ROOTS_SETTING})"
            )
        return resolved


def local_path_of(source: JobSource) -> str | None:
    """The local path a source reads: a folder, an archive file, or a ``file://`` URL's
    path; None for a remote git URL."""
    if source.kind is SourceKind.ARCHIVE and source.location.startswith(UPLOAD_PREFIX):
        return None  # an uploaded archive in the upload store (pipeline.sources.uploads)
    if source.kind is not SourceKind.GIT:
        return source.location
    if source.location.lower().startswith(FILE_URL_PREFIX):
        path = source.location[len(FILE_URL_PREFIX) :]
        if "%" in path:
            # git percent-decodes URLs: a %2e%2e would pass the checks as written.
            raise InvalidInputError(f"git URL {source.location!r}: a file URL must not hold '%'")
        return path
    return None


def _reject_relative_or_dotdot(path: str, shown: str) -> None:
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        raise InvalidInputError(f"source {shown!r}: a local path must be absolute")
    if ".." in pure.parts:
        raise InvalidInputError(f"source {shown!r}: a local path must not hold '..'")


def _check_archive(path: Path, shown: str) -> None:
    """InvalidInputError naming ``shown`` unless ``path`` is a readable file whose first
    bytes start a .tar.gz."""
    if not path.is_file():
        raise InvalidInputError(f"source {shown!r} is not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
            whole = not handle.read(1)
    except OSError as exc:
        raise InvalidInputError(f"source {shown!r} cannot be read: {exc.strerror}") from None
    problem = archive_head_problem(head, whole=whole)
    if problem is not None:
        raise InvalidInputError(f"source {shown!r}: {problem}")


def is_bare_repository(folder: Path) -> bool:
    """A bare git repository: HEAD, objects/ and refs/ at its top, no work tree."""
    return (
        (folder / "HEAD").is_file()
        and (folder / "objects").is_dir()
        and (folder / "refs").is_dir()
        and not (folder / ".git").exists()
    )


def check_folder_ref(source: JobSource, folder: Path) -> None:
    """InvalidInputError naming the ref unless ``source`` names no ref or ``folder`` is a
    bare repository (read as git at that ref; any other folder is read as it is)."""
    if source.ref is not None and not is_bare_repository(folder):
        raise InvalidInputError(
            f"ref {source.ref!r} given for folder {source.location!r}, which is no bare git"
            f" repository: {REF_APPLIES}"
        )
