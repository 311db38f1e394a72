"""The fake source fetcher: sources mapped to folders a test has prepared, no git, no tar.

Behaves as the SourceFetcher port promises: returns a folder and a commit (or None),
writes nothing (so nothing outside ``workdir``), and raises InvalidInputError naming
the source when it does not know it or its folder is gone. It records every source it
was asked for, so tests can assert what was fetched.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource


class InMemorySourceFetcher:
    """A :class:`~pipeline.ports.SourceFetcher` over prepared folders.

    ``folders`` maps a source location to its folder; :meth:`add` also takes a ref
    (a location at a ref is looked up first, then the location alone) and a commit.
    """

    def __init__(self, folders: Mapping[str, Path] | None = None) -> None:
        self._entries: dict[tuple[str, str | None], tuple[Path, str | None]] = {
            (location, None): (folder, None) for location, folder in (folders or {}).items()
        }
        self.fetched: list[JobSource] = []

    def add(
        self, location: str, folder: Path, *, ref: str | None = None, commit: str | None = None
    ) -> None:
        self._entries[(location, ref)] = (folder, commit)

    def fetch(
        self, source: JobSource, workdir: Path, *, tenant: str | None = None
    ) -> tuple[Path, str | None]:
        self.fetched.append(source)
        entry = self._entries.get((source.location, source.ref))
        if entry is None:
            entry = self._entries.get((source.location, None))
        if entry is None:
            raise InvalidInputError(f"path does not exist: {source.describe()}")
        folder, commit = entry
        if not folder.is_dir():
            raise InvalidInputError(f"not a directory: {source.describe()}")
        return folder, commit
