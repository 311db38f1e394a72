"""Ports: the Protocols the domain needs from the outside world.

Each port has a real adapter and a behaving fake under ``pipeline/adapters``; one
contract suite runs over both.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from pipeline.migration import AppliedMigration, Kind, Migration


class MigrationTarget(Protocol):
    """A store that can hold migrations of one kind and records what it applied."""

    @property
    def kind(self) -> Kind:
        """Which migrations this store takes: ``sql`` or ``cypher``."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Exclude other runners for the duration of a run."""
        ...

    def applied(self) -> dict[int, AppliedMigration]:
        """Migrations recorded as applied, by version."""
        ...

    def apply(self, migration: Migration) -> None:
        """Apply one migration and record it (atomically where the store allows)."""
        ...
