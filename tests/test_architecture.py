"""The dependency direction of ../shared/STYLE.md, checked on every module's imports.

config <- pipeline <- pipeline.adapters <- workers;  pipeline <- tasks <- workers;
tasks.client <- api. Drivers only in pipeline/adapters; os.environ only in config.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "pipeline", "tasks", "workers", "api", "cli", "migrations")
DRIVERS = {
    "neo4j",
    "psycopg",
    "psycopg_pool",
    "pgvector",
    "redis",
    "httpx",
    "pybreaker",
    "torch",
    "sentence_transformers",
    "onnxruntime",
    "faiss",
}
QUARRY = set(PACKAGES)

# package -> top-level names it must not import
FORBIDDEN: dict[str, set[str]] = {
    "config": (QUARRY - {"config", "pipeline"}) | DRIVERS | {"celery", "kombu"},
    "pipeline": {"tasks", "workers", "api", "cli", "migrations", "celery", "kombu"} | DRIVERS,
    "pipeline.adapters": {"tasks", "workers", "api", "cli", "migrations", "celery", "kombu"},
    "migrations": {"tasks", "workers", "api", "cli", "celery"} | DRIVERS,
    "tasks": {"workers", "api", "cli"} | DRIVERS,
    "api": {"workers", "cli", "torch", "sentence_transformers"},
    "workers": {"api", "cli"} | DRIVERS,
    "cli": {"torch", "sentence_transformers"},
}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _area(path: Path) -> str:
    rel = path.relative_to(REPO).parts
    if rel[0] == "pipeline" and len(rel) > 2 and rel[1] == "adapters":
        return "pipeline.adapters"
    return rel[0]


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_imports_follow_the_dependency_direction(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    area = _area(path)
    bad = sorted(
        name
        for name in _imports(tree)
        if name.split(".")[0] in FORBIDDEN[area]
        and not (area == "pipeline" and name.startswith("pipeline"))
    )
    assert not bad, f"{area} must not import {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_config_reads_the_environment(path: Path) -> None:
    if _area(path) == "config":
        return
    source = path.read_text(encoding="utf-8")
    assert "os.environ" not in source and "os.getenv" not in source


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_opens_with_a_docstring(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path} has no module docstring"


def test_the_checker_catches_a_forbidden_import() -> None:
    tree = ast.parse("import celery\nfrom neo4j import GraphDatabase\n")
    assert {"celery", "neo4j"} <= _imports(tree)
    assert "celery" in FORBIDDEN["pipeline"] and "neo4j" in FORBIDDEN["pipeline"]
