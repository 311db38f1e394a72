"""The commit's cache of kept symbols, on fakes: read once per file version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.models import RepoRef
from pipeline.stages.commit import KeptSymbols
from pipeline.stages.indexing import JobContext

REPO = RepoRef("t1", "shop")
A, B = "a" * 64, "b" * 64


class CountingSnapshots(InMemorySnapshotStore):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[set[str]] = []

    def symbols(
        self, repo: RepoRef, files: Mapping[str, str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        self.asked.append(set(files))
        return super().symbols(repo, files)


def _context(snapshots: InMemorySnapshotStore) -> JobContext:
    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        raise AssertionError(task)

    return JobContext(InMemoryJobStore(), snapshots, InMemoryJobBoard(), send)


def test_kept_symbols_are_read_once_per_version_and_a_new_version_is_read_again() -> None:
    snapshots = CountingSnapshots()
    snapshots.put_symbols(
        REPO,
        {
            ("cart.py", A): [("Cart", "cart.Cart", "class")],
            ("cart.py", B): [("Basket", "cart.Basket", "class")],
            ("price.py", A): [("price", "price.price", "function")],
        },
    )
    ctx, kept = _context(snapshots), KeptSymbols()
    first = kept.context(ctx, REPO, {"cart.py": A, "price.py": A, "empty.py": A})
    assert [e.path for e in first] == ["cart.py", "price.py", "empty.py"]
    assert [s.qualified_name for s in first[0].symbols] == ["cart.Cart"]
    assert first[2].symbols == ()
    again = kept.context(ctx, REPO, {"cart.py": A, "price.py": A, "empty.py": A})
    assert again == first
    # Cached versions are not read again; a version without symbols is (they may come).
    assert snapshots.asked == [{"cart.py", "price.py", "empty.py"}, {"empty.py"}]
    changed = kept.context(ctx, REPO, {"cart.py": B, "price.py": A})
    assert [s.qualified_name for s in changed[0].symbols] == ["cart.Basket"]
    assert snapshots.asked[-1] == {"cart.py"}
    other_repo = kept.context(ctx, RepoRef("t2", "shop"), {"cart.py": A})
    assert other_repo[0].symbols == ()  # keyed by repository too


def test_kept_symbols_forget_the_least_recently_used_past_the_limit() -> None:
    snapshots = CountingSnapshots()
    snapshots.put_symbols(
        REPO, {(f"m{i}.py", A): [(f"f{i}", f"m{i}.f{i}", "function")] for i in range(3)}
    )
    ctx, kept = _context(snapshots), KeptSymbols(max_symbols=2)
    kept.context(ctx, REPO, {"m0.py": A, "m1.py": A})
    kept.context(ctx, REPO, {"m0.py": A})  # m0 used last: m1 goes first
    kept.context(ctx, REPO, {"m2.py": A})
    snapshots.asked.clear()
    kept.context(ctx, REPO, {"m0.py": A, "m1.py": A, "m2.py": A})
    assert snapshots.asked == [{"m1.py"}]
