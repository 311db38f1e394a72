"""One contract for every GraphStore: the in-memory fake and the Bolt graph server.

The real adapter runs on a fresh graph database of the session stack's server (ArcadeDB),
created for this module and migrated with the shipped Cypher migrations. Every test uses
its own repository, so tests share the database without seeing each other.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import neo4j
import pytest
from neo4j import exceptions as neo4j_errors

from config.endpoints import Endpoints
from devstack.stack import Stack
from migrations.runner import discover, run
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.neo4j.driver import retry_constraint_races
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.neo4j.migrations import Neo4jMigrationTarget
from pipeline.errors import InvalidInputError, PermanentError, StoreUnavailableError
from pipeline.models import (
    Edge,
    EdgeKind,
    FileExtraction,
    FileGraph,
    FileVersion,
    RepoRef,
    Span,
    Symbol,
    SymbolKind,
)
from tests.databases import fresh_graph_database
from tests.pipeline.graphs import file_graphs

GraphStoreUnderTest = InMemoryGraphStore | Neo4jGraphStore

_STEPS = "".join(f"        total += {i} * value  # step {i}\n" for i in range(40))
SOURCES = {
    "shop/__init__.py": "",
    "shop/base.py": (
        "class Base:\n    def run(self, value):\n        total = 0\n"
        + _STEPS
        + "        return helper(total)\n\n    def size(self):\n        return 1\n\n\n"
        "def helper(x):\n    return x\n"
    ),
    "shop/app.py": (
        "from shop.base import Base, helper\n\n\nclass App(Base):\n"
        "    def run(self, value):\n        return helper(value) + util()\n\n"
        "    def stop(self):\n        return os_exit()\n\n\ndef util():\n    return 2\n"
    ),
}


@pytest.fixture(scope="module")
def graph_database(request: pytest.FixtureRequest) -> Iterator[tuple[neo4j.Driver, str]]:
    stack: Stack = request.getfixturevalue("stack")
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_graph_database(stack.settings, endpoints, "graphstore") as (driver, name):
        run(Neo4jMigrationTarget(driver, name), discover("cypher"))
        yield driver, name


@pytest.fixture(params=["memory", "graph"])
def store(request: pytest.FixtureRequest) -> GraphStoreUnderTest:
    if request.param == "memory":
        return InMemoryGraphStore(batch_size=4)
    driver, database = request.getfixturevalue("graph_database")
    # A small batch size makes every write span several UNWIND batches.
    return Neo4jGraphStore(driver, database, batch_size=4)


@pytest.fixture
def repo() -> RepoRef:
    return RepoRef(f"tenant-{uuid.uuid4().hex[:8]}", "shop")


def ids(repo: RepoRef, kind: str, *names: str) -> set[str]:
    return {f"{repo.key}#{kind}:{name}" for name in names}


def sym(repo: RepoRef, name: str) -> str:
    return f"{repo.key}#symbol:{name}"


def _path(store: GraphStoreUnderTest, node_id: str) -> object:
    found = store.node(node_id)
    return found[1].get("path") if found else None


def snapshot(store: GraphStoreUnderTest, repo: RepoRef) -> tuple[set[str], set[Any]]:
    return store.node_ids(repo), store.edges(repo)


def test_written_files_read_back_as_nodes_and_edges(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    graphs = file_graphs(SOURCES)
    written = store.write_files(repo, graphs)

    nodes, edges = snapshot(store, repo)
    symbols = {"shop", "shop.base", "shop.base.Base", "shop.base.Base.run", "shop.base.Base.size"}
    symbols |= {"shop.base.helper", "shop.app", "shop.app.App", "shop.app.App.run"}
    symbols |= {"shop.app.App.stop", "shop.app.util"}
    chunk_ids = {chunk_id for g in graphs for chunk_id, _ in g.chunks}
    assert nodes == {repo.key} | ids(repo, "file", *SOURCES) | ids(repo, "symbol", *symbols) | (
        ids(repo, "chunk", *chunk_ids)
    )
    assert written == len(nodes) - 1 + len(edges), "nodes (but the repository) plus edges"
    app, base = f"{repo.key}#file:shop/app.py", f"{repo.key}#file:shop/base.py"
    assert {
        ("HAS_FILE", repo.key, app),
        ("DEFINES", app, sym(repo, "shop.app.App.run")),
        ("IMPORTS", app, base),
        ("CALLS", sym(repo, "shop.app.App.run"), sym(repo, "shop.base.helper")),
        ("CALLS", sym(repo, "shop.app.App.run"), sym(repo, "shop.app.util")),
        ("CALLS", sym(repo, "shop.base.Base.run"), sym(repo, "shop.base.helper")),
        ("CONTAINS", sym(repo, "shop.base.Base"), sym(repo, "shop.base.Base.run")),
        ("CONTAINS", sym(repo, "shop.app"), sym(repo, "shop.app.util")),
        ("INHERITS", sym(repo, "shop.app.App"), sym(repo, "shop.base.Base")),
    } <= edges
    assert not any(target.endswith(("os_exit", "os")) for _, _, target in edges), "unresolved"
    for graph in graphs:
        for chunk_id, qualified_name in graph.chunks:
            owner = sym(repo, qualified_name)
            assert ("HAS_CHUNK", owner, f"{repo.key}#chunk:{chunk_id}") in edges
    run_chunks = [c for g in graphs for c, q in g.chunks if q == "shop.base.Base.run"]
    assert len(run_chunks) > 1, "a long method has several chunks, all linked to it"

    found = store.node(sym(repo, "shop.base.Base.run"))
    assert found is not None
    label, props = found
    assert label == "Symbol"
    assert props["repo"] == repo.key and props["path"] == "shop/base.py"
    assert (props["name"], props["qualified_name"]) == ("run", "shop.base.Base.run")
    assert (props["kind"], props["start_line"]) == ("method", 2)
    file_node = store.node(base)
    assert file_node is not None
    assert file_node[0] == "File" and file_node[1]["language"] == "python"
    assert store.file_versions(repo) == {g.file.path: g.file.sha256 for g in graphs}
    assert store.chunk_ids(repo) == chunk_ids
    assert store.chunk_keys(repo) == {
        (g.file.path, chunk_id) for g in graphs for chunk_id, _ in g.chunks
    }


def test_chunk_without_a_symbol_of_the_file_hangs_on_the_file(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    [graph] = file_graphs({"solo.py": "def f():\n    return 1\n"})
    graph = FileGraph(graph.file, graph.extraction, (("loose", ""), ("other", "elsewhere.g")))
    store.write_files(repo, [graph])
    edges = store.edges(repo)
    file_id = f"{repo.key}#file:solo.py"
    assert {("HAS_CHUNK", file_id, f"{repo.key}#chunk:{c}") for c in ("loose", "other")} <= edges
    assert sym(repo, "elsewhere.g") not in store.node_ids(repo)


def test_replaying_a_write_gives_identical_nodes_and_edges(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    graphs = file_graphs(SOURCES)
    first = store.write_files(repo, graphs)
    before = snapshot(store, repo)
    second = store.write_files(repo, graphs)
    assert second == first
    assert snapshot(store, repo) == before


def test_rewriting_a_file_replaces_its_symbols_and_edges(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    store.write_files(repo, file_graphs(SOURCES))
    changed = {**SOURCES, "shop/base.py": "class Base:\n    def run(self):\n        return 0\n"}
    [new_base] = file_graphs(changed, only={"shop/base.py"})
    store.write_files(repo, [new_base])

    nodes, edges = snapshot(store, repo)
    gone = {sym(repo, "shop.base.helper"), sym(repo, "shop.base.Base.size")}
    assert not gone & nodes
    assert not any(source in gone or target in gone for _, source, target in edges)
    assert ("CALLS", sym(repo, "shop.base.Base.run"), sym(repo, "shop.base.helper")) not in edges
    base_chunks = {f"{repo.key}#chunk:{c}" for c, _ in new_base.chunks}
    chunks_of_base = {n for n in nodes if "#chunk:" in n and _path(store, n) == "shop/base.py"}
    assert chunks_of_base == base_chunks, "only the new version's chunks remain"
    assert ("INHERITS", sym(repo, "shop.app.App"), sym(repo, "shop.base.Base")) in edges, (
        "edges from other files to a symbol that stays are kept"
    )
    assert store.file_versions(repo)["shop/base.py"] == new_base.file.sha256


# Edges go stale while both ends stay: App.run stops calling helper and util, app.py
# stops importing base.py (App still inherits Base: the name is unique in the repository).
CHANGED = {
    "shop/__init__.py": "from shop.app import main\n",
    "shop/base.py": "class Base:\n    def run(self):\n        return 0\n\n\n"
    "def helper(x):\n    return x\n",
    "shop/app.py": (
        "class App(Base):\n    def run(self, value):\n        return main()\n\n\n"
        "def util():\n    return 2\n\n\ndef main():\n    return App().run(1)\n"
    ),
}


def _relative(repo: RepoRef, graph: tuple[set[str], set[Any]]) -> tuple[set[str], set[Any]]:
    def cut(node_id: str) -> str:
        return node_id.removeprefix(repo.key)

    nodes, edges = graph
    return {cut(n) for n in nodes}, {(k, cut(s), cut(t)) for k, s, t in edges}


def test_rewriting_every_file_ends_as_writing_the_new_versions_afresh(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    fresh = RepoRef(repo.tenant, "fresh")
    store.write_files(repo, file_graphs(SOURCES))
    store.write_files(repo, file_graphs(CHANGED))
    store.write_files(fresh, file_graphs(CHANGED))
    stale = ("CALLS", sym(repo, "shop.app.App.run"), sym(repo, "shop.base.helper"))
    assert stale not in store.edges(repo)
    assert _relative(repo, snapshot(store, repo)) == _relative(fresh, snapshot(store, fresh))
    assert store.chunk_ids(repo) == store.chunk_ids(fresh)


def test_deleting_files_leaves_no_ghost_node_or_edge(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    graphs = file_graphs(SOURCES)
    store.write_files(repo, graphs)
    app_nodes = {n for n in store.node_ids(repo) if "shop.app" in n or "shop/app.py" in n}
    app_nodes |= {
        f"{repo.key}#chunk:{c}" for g in graphs if g.file.path == "shop/app.py" for c, _ in g.chunks
    }

    removed = store.delete_files(repo, ["shop/app.py", "never/written.py"])
    nodes, edges = snapshot(store, repo)
    assert removed == len(app_nodes)
    assert not app_nodes & nodes
    assert not any(s in app_nodes or t in app_nodes for _, s, t in edges)
    assert "shop/app.py" not in store.file_versions(repo)

    store.delete_files(repo, list(SOURCES))
    assert snapshot(store, repo) == ({repo.key}, set())
    assert store.file_versions(repo) == {} and store.chunk_ids(repo) == set()


def test_placeholder_target_is_filled_by_its_file_and_goes_when_nothing_points_at_it(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    [app] = file_graphs(SOURCES, only={"shop/app.py"})
    store.write_files(repo, [app])
    placeholder = store.node(sym(repo, "shop.base.helper"))
    assert placeholder is not None and "kind" not in placeholder[1]
    assert "shop/base.py" not in store.file_versions(repo), "an import target is no file version"

    store.write_files(repo, file_graphs(SOURCES, only={"shop/base.py"}))
    filled = store.node(sym(repo, "shop.base.helper"))
    assert filled is not None and filled[1]["kind"] == "function"

    store.delete_files(repo, ["shop/base.py"])
    store.write_files(repo, [app])  # a replay clears and re-adds the placeholders
    store.delete_files(repo, ["shop/app.py"])
    assert snapshot(store, repo) == ({repo.key}, set())


def test_two_tenants_with_the_same_repository_name_are_isolated(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    other = RepoRef(f"{repo.tenant}-other", repo.name)
    store.write_files(repo, file_graphs(SOURCES))
    store.write_files(other, file_graphs(SOURCES, only={"shop/app.py"}))
    mine, theirs = snapshot(store, repo), snapshot(store, other)
    assert not mine[0] & theirs[0]
    assert all(n.startswith(f"{other.key}#") or n == other.key for n in theirs[0])
    assert all(s.startswith(other.key) and t.startswith(other.key) for _, s, t in theirs[1])

    theirs_nodes = len(theirs[0])
    batches: list[int] = []
    assert store.delete_repository(other, on_batch=batches.append) == theirs_nodes
    assert sum(batches) == theirs_nodes and all(n > 0 for n in batches)
    assert snapshot(store, other) == (set(), set())
    assert snapshot(store, repo) == mine
    assert store.delete_repository(other) == 0  # nothing left: idempotent


def _caller(path: str, target: str) -> FileGraph:
    module = path.removesuffix(".py")
    span = Span(1, 2, 0, 10)
    extraction = FileExtraction(
        path,
        "python",
        module,
        (
            Symbol(module, module, SymbolKind.MODULE, path, span),
            Symbol("f", f"{module}.f", SymbolKind.FUNCTION, path, span, module),
        ),
        (Edge(EdgeKind.CALLS, f"{module}.f", target, True, path, 2),),
    )
    return FileGraph(FileVersion(path, "0" * 64, "python", 10), extraction)


@pytest.mark.timeout(120)
def test_concurrent_writes_merging_the_same_new_placeholder_both_succeed(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    rounds = 12
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(rounds):
            barrier = threading.Barrier(2)  # both transactions start together

            def write(path: str, target: str, barrier: threading.Barrier = barrier) -> int:
                barrier.wait(timeout=30)
                return store.write_files(repo, [_caller(path, target)])

            target = f"lib.shared{round_}"
            futures = [pool.submit(write, f"r{round_}_{i}.py", target) for i in (0, 1)]
            assert [future.result() for future in futures] == [7, 7]
    nodes, edges = snapshot(store, repo)
    for round_ in range(rounds):
        shared = sym(repo, f"lib.shared{round_}")
        assert shared in nodes
        assert sum(1 for kind, _, t in edges if kind == "CALLS" and t == shared) == 2
    assert len([n for n in nodes if "#file:" in n]) == 2 * rounds


def test_payload_the_server_rejects_is_a_permanent_error_naming_the_input(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    path = "deep/" + "x" * 1_000_000 + ".py"  # an id no index of either server takes
    with pytest.raises(PermanentError, match=rf"{repo.key}: 'deep/xxx"):
        store.write_files(repo, [_caller(path, "lib.g")])
    assert store.file_versions(repo) == {}, "nothing of the failed transaction stays"


def test_path_the_driver_cannot_encode_is_refused_naming_the_file(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    with pytest.raises(InvalidInputError, match=r"bad\\udc80\.py"):
        store.write_files(repo, [_caller("bad\udc80.py", "lib.g")])
    with pytest.raises(InvalidInputError, match="must be non-empty"):
        store.file_versions(RepoRef("a#b", "c"))


def test_constraint_race_is_retried_then_reported_as_transient() -> None:
    calls: list[int] = []

    def lose_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise neo4j_errors.ConstraintError("duplicated key")
        return "done"

    assert retry_constraint_races(lose_twice, sleep=lambda _s: None) == "done"
    assert len(calls) == 3

    def always_lose() -> str:
        raise neo4j_errors.ConstraintError("duplicated key")

    with pytest.raises(StoreUnavailableError, match="race still lost after 3 attempts"):
        retry_constraint_races(always_lose, attempts=3, sleep=lambda _s: None)


# --- reads for search: symbols by name, and their links ---------------------------------


def test_find_symbols_by_qualified_name_then_by_short_name(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    store.write_files(repo, file_graphs(SOURCES))
    exact = store.find_symbols(repo, "shop.app.App.run", 5)
    assert [(s.qualified_name, s.name, s.kind, s.path) for s in exact] == [
        ("shop.app.App.run", "run", "method", "shop/app.py")
    ]
    assert exact[0].start_line >= 1 and exact[0].end_line >= exact[0].start_line
    named = store.find_symbols(repo, "run", 5)
    assert [s.qualified_name for s in named] == ["shop.app.App.run", "shop.base.Base.run"]
    assert [s.qualified_name for s in store.find_symbols(repo, "run", 1)] == ["shop.app.App.run"]
    assert store.find_symbols(repo, "nothing_here", 5) == []
    other = RepoRef(repo.tenant, "other")
    assert store.find_symbols(other, "run", 5) == []


def test_symbol_links_are_the_edges_into_and_out_of_the_symbols(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    store.write_files(repo, file_graphs(SOURCES))
    links = store.symbol_links(repo, ["shop.app.App.run", "shop.base.helper"])
    found = {
        (link.relation, link.source.qualified_name, link.target.qualified_name) for link in links
    }
    assert found == {
        ("CONTAINS", "shop.app.App", "shop.app.App.run"),
        ("CALLS", "shop.app.App.run", "shop.base.helper"),
        ("CALLS", "shop.app.App.run", "shop.app.util"),
        ("CALLS", "shop.base.Base.run", "shop.base.helper"),
        ("CONTAINS", "shop.base", "shop.base.helper"),  # a module holds its functions
    }
    assert len(links) == len(found)
    caller = next(
        link.source for link in links if link.source.qualified_name == "shop.base.Base.run"
    )
    assert (caller.name, caller.kind, caller.path) == ("run", "method", "shop/base.py")
    inherits = store.symbol_links(repo, ["shop.base.Base"])
    assert ("INHERITS", "shop.app.App", "shop.base.Base") in {
        (link.relation, link.source.qualified_name, link.target.qualified_name) for link in inherits
    }
    assert store.symbol_links(repo, ["no.such.symbol"]) == []
    assert store.symbol_links(RepoRef(repo.tenant, "other"), ["shop.base.helper"]) == []


def _properties(store: GraphStoreUnderTest, repo: RepoRef) -> dict[str, dict[str, Any]]:
    """Every node's properties, by id relative to the repository."""
    found = {}
    for node_id in store.node_ids(repo):
        node = store.node(node_id)
        assert node is not None
        props = {k: v for k, v in node[1].items() if k not in ("id", "repo")}
        found[node_id.removeprefix(repo.key)] = props
    del found[""]  # the repository's own node, which names it
    return found


def test_a_rewrite_that_moves_lines_ends_with_the_properties_of_a_fresh_write(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    """Only rows the graph does not hold as they are are sent again: a symbol whose lines
    moved, and every chunk of a new file version, must still be written."""
    fresh = RepoRef(repo.tenant, "fresh")
    moved = {**SOURCES, "shop/base.py": "import os\n\n\n" + SOURCES["shop/base.py"]}
    store.write_files(repo, file_graphs(SOURCES))
    store.write_files(repo, file_graphs(moved, only={"shop/base.py"}))
    store.write_files(fresh, file_graphs(moved))
    assert _properties(store, repo) == _properties(store, fresh)
    assert _relative(repo, snapshot(store, repo)) == _relative(fresh, snapshot(store, fresh))


def _edge_lines(driver: neo4j.Driver, database: str, repo: RepoRef) -> set[tuple[Any, ...]]:
    query = (
        "MATCH (s {repo: $repo})-[r]->(t) WHERE r.line IS NOT NULL "
        "RETURN type(r) AS type, s.id AS source, t.id AS target, r.line AS line"
    )
    with driver.session(database=database) as session:
        records = session.execute_read(lambda tx: list(tx.run(query, repo=repo.key)))
    return {
        (
            r["type"],
            r["source"].removeprefix(repo.key),
            r["target"].removeprefix(repo.key),
            r["line"],
        )
        for r in records
    }


def test_the_graph_server_is_sent_only_what_changed_and_edge_lines_follow(
    graph_database: tuple[neo4j.Driver, str], repo: RepoRef
) -> None:
    driver, database = graph_database
    store = Neo4jGraphStore(driver, database, batch_size=4)
    graphs = file_graphs(SOURCES)
    store.write_files(repo, graphs)
    store.rows_sent = 0
    store.write_files(repo, graphs)  # a replay: the graph holds every row but the files'
    assert store.rows_sent == 2 * len(graphs)
    moved = {**SOURCES, "shop/app.py": "import os\n\n\n" + SOURCES["shop/app.py"]}
    store.write_files(repo, file_graphs(moved, only={"shop/app.py"}))
    fresh = RepoRef(repo.tenant, "fresh")
    store.write_files(fresh, file_graphs(moved))
    assert _edge_lines(driver, database, repo) == _edge_lines(driver, database, fresh)


def test_a_name_two_files_of_a_write_define_keeps_the_last_ones_properties_on_a_replay(
    store: GraphStoreUnderTest, repo: RepoRef
) -> None:
    """``shop/base.py`` and its stub ``shop/base.pyi`` both define ``shop.base.Base``: one
    node, whose properties the last file of the write sets. A replay (the graph already
    holds every row) must end the same, not with the earlier file's row."""
    fresh = RepoRef(repo.tenant, "fresh")
    both = {**SOURCES, "shop/base.pyi": "\n\n\nclass Base:\n    def size(self) -> int: ...\n"}
    graphs = file_graphs(both)
    shared = sym(repo, "shop.base.Base")
    paths = [
        g.file.path
        for g in graphs
        if any(s.qualified_name == "shop.base.Base" for s in g.extraction.symbols)
    ]
    assert sorted(paths) == ["shop/base.py", "shop/base.pyi"]
    store.write_files(fresh, graphs)
    store.write_files(repo, graphs)
    store.write_files(repo, graphs)  # the replay
    assert _properties(store, repo) == _properties(store, fresh)
    assert _path(store, shared) == _path(store, sym(fresh, "shop.base.Base"))
