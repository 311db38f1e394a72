"""quarry bench refs's pure parts: the feature branch's file picks, the probe function,
row deltas, ratios and the figures table (no stack, nothing timed)."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from bench.refs import branch_ratios, figures_table, pick_files, probe_function, ratio, row_delta


def test_pick_files_spreads_over_sorted_python_files_of_enough_bytes() -> None:
    sizes = {f"src/m{i}.py": 2000 for i in range(9)} | {"small.py": 10, "README.md": 9000}
    assert pick_files(sizes, 3) == ["src/m0.py", "src/m3.py", "src/m6.py"]
    assert pick_files(dict(reversed(sizes.items())), 3) == pick_files(sizes, 3)


def test_pick_files_refuses_a_tree_with_too_few_files() -> None:
    with pytest.raises(ValueError, match=r"need 3 \.py files of >= 1000 bytes, found 2"):
        pick_files({"a.py": 5000, "b.py": 5000, "c.py": 999}, 3)


def test_probe_functions_are_valid_python_and_distinct() -> None:
    bodies = [probe_function(i) for i in range(3)]
    assert len(set(bodies)) == 3
    for i, body in enumerate(bodies):
        tree = ast.parse("x = 1\n" + body)
        assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == [
            f"quarry_branch_probe_{i}"
        ]


def test_row_delta_and_ratio() -> None:
    assert row_delta({"chunks": 10, "files": 4}, {"chunks": 13, "files": 2}) == {
        "chunks": 3,
        "files": -2,
    }
    assert ratio(3, 400) == 0.0075
    assert ratio(3, 0) is None
    assert ratio(None, 5) is None


def _step(wall_s: float, embedded: int, chunk_rows: int, written: int) -> dict[str, Any]:
    rows = {"chunks": chunk_rows, "files": written, "file_symbols": 0, "embedding_cache": 0}
    return {
        "wall_s": wall_s,
        "files": {"todo": written, "written": written},
        "chunks": {"embedded": embedded, "cached": 0},
        "rows_added": rows,
        "graph_nodes_added": 0,
    }


def test_branch_ratios_and_table() -> None:
    cold = _step(40.0, 800, 1000, 80)
    branch = _step(4.0, 8, 10, 3) | {"changed_files_git": 3}
    branch["ratio"] = branch_ratios(branch, cold)
    assert branch["ratio"] == {
        "wall_s": 0.1,
        "chunks_embedded": 0.01,
        "chunk_rows_added": 0.01,
        "files_written": 0.0375,
    }
    branch["delete"] = {"rows_delta": {"chunks": -10, "files": -84}}
    table = figures_table({"cold": cold, "branches": {"feature/x": branch}})
    lines = table.splitlines()
    assert lines[0] == "| figure | cold `main` | `feature/x` |"
    assert "| chunk rows added | 1000 | 10 |" in lines
    assert "| ratio wall (branch/cold) | - | 0.1 |" in lines
    assert "| delete ref: chunk rows freed | - | 10 |" in lines
    assert "| delete ref: files rows freed | - | 84 |" in lines
