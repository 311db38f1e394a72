"""The dependency direction of ../shared/STYLE.md, checked on every module's imports.

config <- pipeline <- pipeline.adapters <- workers;  pipeline <- tasks <- workers;
tasks.client <- api. Drivers only in pipeline/adapters; os.environ only in config.
config imports nothing of Quarry; tasks/, workers/ and the API name no adapter: they
reach stores, breakers and models through the composition root (wiring/); no import
cycle anywhere, imports inside functions and under TYPE_CHECKING included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (
    "config",
    "pipeline",
    "tasks",
    "wiring",
    "workers",
    "devstack",
    "api",
    "cli",
    "migrations",
)
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
    "config": (QUARRY - {"config"}) | DRIVERS | {"celery", "kombu"},
    "pipeline": {"tasks", "wiring", "workers", "devstack", "api", "cli", "migrations"}
    | {"celery", "kombu"}
    | DRIVERS,
    "pipeline.adapters": {"tasks", "wiring", "workers", "devstack", "api", "cli", "migrations"}
    | {"celery", "kombu"},
    "migrations": {"tasks", "workers", "api", "cli", "celery"} | DRIVERS,
    "tasks": {"wiring", "workers", "devstack", "api", "cli"} | DRIVERS,
    "api": {"workers", "cli", "torch", "sentence_transformers"},
    "wiring": {"workers", "devstack", "api", "cli"} | DRIVERS,
    "workers": {"api", "cli", "devstack"} | DRIVERS,
    "devstack": {"api", "cli"} | DRIVERS,
    "bench": {"api"},
    "cli": {"torch", "sentence_transformers"},
}
# Only the composition root (wiring/) names adapters for tasks/, workers/ and the API.
ADAPTERS = "pipeline.adapters"
NO_ADAPTERS = ("tasks", "api", "workers")


def _modules() -> list[Path]:
    # bench/corpora holds other projects' sources, downloaded for the benchmarks.
    found = (p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
    return sorted(p for p in found if "corpora" not in p.relative_to(REPO).parts)


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
def test_tasks_workers_and_the_api_reach_adapters_only_through_wiring(path: Path) -> None:
    rel = path.relative_to(REPO).as_posix()
    if _area(path) not in NO_ADAPTERS:
        return
    found = sorted(
        n for n in _imports(ast.parse(path.read_text("utf-8"))) if n.startswith(ADAPTERS)
    )
    assert not found, f"{rel} imports adapters {found}; go through the composition root"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth of the file)."""
    modules = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                known = target
                while known and known not in modules:
                    known = known.rpartition(".")[0]
                if known and known != name:
                    deps.add(known)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root, children_of_root in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children_of_root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_there_is_no_import_cycle() -> None:
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_config_reads_the_environment(path: Path) -> None:
    # Benchmark scripts set their own thread counts and paths; they are not the service.
    if _area(path) in ("config", "bench"):
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
