"""InMemoryMigrationTarget: the behaving fake of MigrationTarget, for unit tests.

It passes the same contract suite as the PostgreSQL and graph targets
(tests/migrations/test_contract.py). ``fail_on`` makes a named migration fail the way
a real store would: nothing of it is recorded.

Must not import: drivers, celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.errors import MigrationError
from pipeline.migration import AppliedMigration, Kind, Migration


class InMemoryMigrationTarget:
    def __init__(self, kind: Kind = "sql", fail_on: str | None = None) -> None:
        self._kind: Kind = kind
        self.fail_on = fail_on
        self.records: dict[int, AppliedMigration] = {}
        self.executed: list[str] = []
        self._locked = False

    @property
    def kind(self) -> Kind:
        return self._kind

    @contextmanager
    def lock(self) -> Iterator[None]:
        if self._locked:
            raise RuntimeError("lock is not re-entrant")
        self._locked = True
        try:
            yield
        finally:
            self._locked = False

    def applied(self) -> dict[int, AppliedMigration]:
        return dict(self.records)

    def apply(self, migration: Migration) -> None:
        if not self._locked:
            raise RuntimeError("apply outside lock()")
        if migration.name == self.fail_on:
            raise MigrationError(f"{migration.label} failed: injected failure")
        self.executed.append(migration.label)
        self.records[migration.version] = AppliedMigration(
            migration.version, migration.name, migration.checksum
        )
