"""Values of the schema migrations: a migration file and the record of an applied one.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["sql", "cypher"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file: ``NNNN_name.sql`` or ``NNNN_name.cypher``."""

    version: int
    name: str
    kind: Kind
    text: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """What a store recorded when it applied a migration."""

    version: int
    name: str
    checksum: str
