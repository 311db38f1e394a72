"""The migration runner's planning: discovery, order, refusals. Pure, no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrations.runner import checksum, discover, plan, run
from pipeline.adapters.fakes.migrations import InMemoryMigrationTarget
from pipeline.errors import MigrationError
from pipeline.migration import AppliedMigration


def write(root: Path, kind: str, name: str, text: str = "SELECT 1;") -> None:
    (root / kind).mkdir(parents=True, exist_ok=True)
    (root / kind / name).write_text(text, encoding="utf-8")


def test_discover_orders_by_version_not_by_name(tmp_path: Path) -> None:
    write(tmp_path, "sql", "0010_later.sql")
    write(tmp_path, "sql", "0002_earlier.sql")
    assert [m.version for m in discover("sql", tmp_path)] == [2, 10]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_x.txt"])
def test_discover_refuses_a_misnamed_file(tmp_path: Path, name: str) -> None:
    write(tmp_path, "sql", name)
    with pytest.raises(MigrationError, match="misnamed"):
        discover("sql", tmp_path)


def test_discover_refuses_two_files_with_one_version(tmp_path: Path) -> None:
    write(tmp_path, "sql", "0001_a.sql")
    write(tmp_path, "sql", "0001_b.sql")
    with pytest.raises(MigrationError, match="share version 0001"):
        discover("sql", tmp_path)


def test_checksum_ignores_line_ending_style() -> None:
    assert checksum("a;\r\nb;\r\n") == checksum("a;\nb;\n")


def test_plan_returns_only_what_is_pending(tmp_path: Path) -> None:
    write(tmp_path, "sql", "0001_a.sql", "A")
    write(tmp_path, "sql", "0002_b.sql", "B")
    available = discover("sql", tmp_path)
    applied = {1: AppliedMigration(1, "a", checksum("A"))}
    assert [m.name for m in plan(available, applied)] == ["b"]


def test_plan_refuses_an_applied_migration_that_was_edited(tmp_path: Path) -> None:
    write(tmp_path, "sql", "0001_a.sql", "A edited")
    with pytest.raises(MigrationError, match="0001_a was changed after it was applied"):
        plan(discover("sql", tmp_path), {1: AppliedMigration(1, "a", checksum("A"))})


def test_plan_refuses_an_applied_migration_whose_file_is_gone(tmp_path: Path) -> None:
    write(tmp_path, "sql", "0002_b.sql", "B")
    with pytest.raises(MigrationError, match="0001_a was applied but its file is missing"):
        plan(discover("sql", tmp_path), {1: AppliedMigration(1, "a", checksum("A"))})


def test_a_failing_migration_stops_the_run_and_keeps_what_came_before(tmp_path: Path) -> None:
    for name in ("0001_a.sql", "0002_b.sql", "0003_c.sql"):
        write(tmp_path, "sql", name)
    target = InMemoryMigrationTarget(fail_on="b")
    with pytest.raises(MigrationError, match="0002_b failed"):
        run(target, discover("sql", tmp_path))
    assert sorted(target.applied()) == [1]


def test_shipped_migrations_are_well_formed() -> None:
    sql, cypher = discover("sql"), discover("cypher")
    assert [m.version for m in sql] == list(range(1, len(sql) + 1))
    assert [m.version for m in cypher] == list(range(1, len(cypher) + 1))
    assert "CREATE EXTENSION IF NOT EXISTS vector" in sql[0].text
