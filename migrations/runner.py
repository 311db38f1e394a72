"""The migration runner: finds numbered migrations, plans them, applies them in order.

Migrations are files named ``NNNN_name.sql`` under ``migrations/sql`` and
``NNNN_name.cypher`` under ``migrations/cypher``. Each target (PostgreSQL, the graph)
records what it applied with a sha256 checksum; a changed checksum of an applied
migration, or an applied migration whose file is gone, stops the run with a
:class:`MigrationError` before anything is applied. This module is pure planning; the
I/O lives behind :class:`MigrationTarget`, implemented by the store adapters.

Must not import: celery, tasks, workers, api, cli, or any database driver.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import MigrationError
from pipeline.migration import AppliedMigration, Kind, Migration
from pipeline.ports import MigrationTarget

__all__ = ["AppliedMigration", "Migration", "MigrationReport", "MigrationTarget", "run"]
MIGRATIONS_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<ext>sql|cypher)$")


def checksum(text: str) -> str:
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def discover(kind: Kind, root: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration of ``kind`` under ``root``, ordered by version."""
    folder = root / kind
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith((".", "_")) or path.is_dir():
            continue
        match = _NAME.match(path.name)
        if match is None or match["ext"] != kind:
            raise MigrationError(
                f"migration file {path} is misnamed: expected NNNN_lower_snake.{kind}"
            )
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"two {kind} migrations share version {version:04d}: {path}")
        text = path.read_text(encoding="utf-8")
        found[version] = Migration(version, match["name"], kind, text, checksum(text))
    return [found[v] for v in sorted(found)]


def plan(available: Sequence[Migration], applied: dict[int, AppliedMigration]) -> list[Migration]:
    """The migrations still to apply; refuses a changed or missing applied migration."""
    by_version = {m.version: m for m in available}
    for version, done in sorted(applied.items()):
        current = by_version.get(version)
        if current is None:
            raise MigrationError(
                f"migration {version:04d}_{done.name} was applied but its file is missing"
            )
        if current.checksum != done.checksum:
            raise MigrationError(
                f"{current.label} was changed after it was applied "
                f"(applied checksum {done.checksum[:12]}, file checksum {current.checksum[:12]}); "
                "add a new migration instead of editing an applied one"
            )
    return [m for m in available if m.version not in applied]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    kind: Kind
    applied: tuple[str, ...]
    pending: tuple[str, ...]
    dry_run: bool


def run(
    target: MigrationTarget,
    available: Sequence[Migration] | None = None,
    *,
    dry_run: bool = False,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrationReport:
    """Apply what is pending on ``target`` (nothing with ``dry_run``), under its lock."""
    migrations = list(available) if available is not None else discover(target.kind)
    with target.lock():
        pending = plan(migrations, target.applied())
        if dry_run:
            return MigrationReport(target.kind, (), tuple(m.label for m in pending), True)
        for migration in pending:
            if on_apply is not None:
                on_apply(migration)
            target.apply(migration)
    return MigrationReport(target.kind, tuple(m.label for m in pending), (), False)
