"""pipeline.statements.cypher without a driver: ids, the rows of a write, and the statement text."""

from __future__ import annotations

import re

import pytest

from pipeline.errors import InvalidInputError
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
from pipeline.statements import cypher

REPO = RepoRef("acme", "shop")
SPAN = Span(1, 9, 0, 90)
RUN = "shop.app.App.run"


def graph(
    path: str = "shop/app.py",
    *,
    edges: tuple[Edge, ...] = (),
    chunks: tuple[tuple[str, str], ...] = (),
    sha256: str = "a" * 64,
) -> FileGraph:
    symbols = (
        Symbol("app", "shop.app", SymbolKind.MODULE, path, SPAN),
        Symbol("App", "shop.app.App", SymbolKind.CLASS, path, Span(2, 8, 5, 80), "shop.app"),
        Symbol(
            "run", "shop.app.App.run", SymbolKind.METHOD, path, Span(3, 4, 9, 40), "shop.app.App"
        ),
        Symbol(
            "run", "shop.app.App.run", SymbolKind.METHOD, path, Span(6, 7, 50, 70), "shop.app.App"
        ),
    )
    extraction = FileExtraction(path, "python", "shop.app", symbols, edges)
    return FileGraph(FileVersion(path, sha256, "python", 90), extraction, chunks)


def edge(kind: EdgeKind, source: str, target: str, resolved: bool = True) -> Edge:
    return Edge(kind, source, target, resolved, "shop/app.py", 3)


def sid(name: str) -> str:
    return f"acme/shop#symbol:{name}"


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: cypher.repo_id(REPO), "acme/shop"),
        (lambda: cypher.file_id("acme/shop", "a/b.py"), "acme/shop#file:a/b.py"),
        (lambda: cypher.symbol_id("acme/shop", "a.b.f"), "acme/shop#symbol:a.b.f"),
        (lambda: cypher.chunk_node_id("acme/shop", "c0ffee"), "acme/shop#chunk:c0ffee"),
    ],
)
def test_every_id_starts_with_the_repository_key(build: object, expected: str) -> None:
    assert callable(build)
    assert build() == expected


@pytest.mark.parametrize(
    "repo", [RepoRef("", "shop"), RepoRef("acme", ""), RepoRef("ac/me", "x"), RepoRef("a", "b#c")]
)
def test_repository_that_would_make_ids_ambiguous_is_refused(repo: RepoRef) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(repr(repo.key))):
        cypher.repo_id(repo)


def test_same_repository_name_under_two_tenants_gets_distinct_ids() -> None:
    one = cypher.graph_rows(RepoRef("acme", "shop"), [graph()])
    two = cypher.graph_rows(RepoRef("globex", "shop"), [graph()])
    assert not set(one.file_ids) & set(two.file_ids)
    assert {r["id"] for r in one.symbols}.isdisjoint(r["id"] for r in two.symbols)


@pytest.mark.parametrize("name", ["Repository", "File", "Symbol", "Chunk"])
def test_known_labels_pass(name: str) -> None:
    assert cypher.label(name) == name


@pytest.mark.parametrize("name", ["", "file", "File) DETACH DELETE (n", "Job", "Symbol:Chunk"])
def test_unknown_labels_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown node label"):
        cypher.label(name)
    with pytest.raises(ValueError, match="unknown node label"):
        cypher.node_ids(name, "acme/shop")


@pytest.mark.parametrize("name", ["", "calls", "CALLS]->() DELETE r //", "KNOWS", "DEFINES"])
def test_edge_kinds_outside_the_allow_list_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an edge kind"):
        cypher.merge_edges(name, [])


def test_rows_keep_resolved_edges_from_the_files_own_nodes_only() -> None:
    edges = (
        edge(EdgeKind.DEFINES, "shop/app.py", "shop.app"),
        edge(EdgeKind.CONTAINS, "shop/app.py", "shop.app"),  # DEFINES says it
        edge(EdgeKind.CONTAINS, "shop.app", "shop.app.App"),
        edge(EdgeKind.CONTAINS, "shop.app", "elsewhere.X"),  # not a node of the file
        edge(EdgeKind.CALLS, "shop.app.App.run", "lib.util.helper"),
        edge(EdgeKind.CALLS, "shop.app.App.run", "lib.util.helper"),  # duplicate
        edge(EdgeKind.CALLS, "shop.app.App.run", "print", resolved=False),
        edge(EdgeKind.CALLS, "other.caller", "shop.app.App"),  # source not in the file
        edge(EdgeKind.INHERITS, "shop.app.App", "lib.base.Base"),
        edge(EdgeKind.IMPORTS, "shop/app.py", "lib/util.py"),
        edge(EdgeKind.IMPORTS, "shop/app.py", "os", resolved=False),
    )
    rows = cypher.graph_rows(REPO, [graph(edges=edges)])
    pairs = {kind: [(r["source"], r["target"]) for r in rs] for kind, rs in rows.edges.items()}
    assert pairs == {
        "CONTAINS": [(sid("shop.app"), sid("shop.app.App"))],
        "CALLS": [(sid("shop.app.App.run"), sid("lib.util.helper"))],
        "INHERITS": [(sid("shop.app.App"), sid("lib.base.Base"))],
        "IMPORTS": [("acme/shop#file:shop/app.py", "acme/shop#file:lib/util.py")],
    }
    assert rows.edges["CALLS"][0]["placeholder"] == {
        "repo": "acme/shop",
        "qualified_name": "lib.util.helper",
    }
    assert rows.edges["IMPORTS"][0]["placeholder"] == {"repo": "acme/shop", "path": "lib/util.py"}
    assert "placeholder" not in rows.edges["CONTAINS"][0]


def test_rows_hold_one_symbol_per_qualified_name_with_its_properties() -> None:
    rows = cypher.graph_rows(REPO, [graph()])
    assert [r["id"] for r in rows.symbols] == [
        sid("shop.app"),
        sid("shop.app.App"),
        sid("shop.app.App.run"),
    ]
    run = rows.symbols[2]
    assert run["file"] == "acme/shop#file:shop/app.py"
    assert run["props"] == {
        "repo": "acme/shop",
        "path": "shop/app.py",
        "name": "run",
        "qualified_name": "shop.app.App.run",
        "kind": "method",
        "start_line": 3,
        "end_line": 4,
    }
    assert rows.files[0]["props"]["sha256"] == "a" * 64


def test_chunks_hang_on_their_symbol_or_else_on_the_file() -> None:
    chunks = (("c1", "shop.app.App.run"), ("c2", ""), ("c3", "not.in.this.file"))
    rows = cypher.graph_rows(REPO, [graph(chunks=chunks)])
    assert [(r["id"], r["owner"]) for r in rows.chunks["Symbol"]] == [
        ("acme/shop#chunk:c1", sid("shop.app.App.run"))
    ]
    file_id = "acme/shop#file:shop/app.py"
    assert [r["owner"] for r in rows.chunks["File"]] == [file_id, file_id]
    assert rows.chunks["Symbol"][0]["props"]["chunk_id"] == "c1"


def test_last_graph_of_a_path_wins_and_count_is_nodes_plus_edges() -> None:
    edges = (edge(EdgeKind.CALLS, "shop.app.App.run", "lib.f"),)
    rows = cypher.graph_rows(
        REPO, [graph(sha256="old"), graph(sha256="new", edges=edges, chunks=(("c", ""),))]
    )
    assert [f["props"]["sha256"] for f in rows.files] == ["new"]
    # 1 file + HAS_FILE, 3 symbols + DEFINES, 1 chunk + HAS_CHUNK, 1 CALLS
    assert rows.count() == 2 + 6 + 2 + 1


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (graph(path="bad\udc80.py"), r"'bad\\udc80\.py'"),
        (
            FileGraph(FileVersion("big.py", "s", "python", 2**63), graph("big.py").extraction),
            "exceeds 64 bits",
        ),
        (graph(chunks=(("c\ud800", ""),)), r"shop/app\.py"),
    ],
)
def test_values_the_driver_cannot_send_are_refused_naming_the_file(
    bad: FileGraph, match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        cypher.graph_rows(REPO, [bad])


def _labels_and_types(query: str) -> tuple[set[str], set[str]]:
    labels = set(re.findall(r"\(\w*:(\w+)", query))
    types = set(re.findall(r"\[\w*:([\w|]+)\]", query))
    return labels, {t for group in types for t in group.split("|")}


def _every_statement() -> list[cypher.Statement]:
    rows = cypher.graph_rows(REPO, [graph()])
    ids = ["acme/shop#file:a.py"]
    statements = [
        cypher.merge_repository(rows),
        cypher.merge_files("acme/shop", rows.files),
        cypher.merge_symbols(rows.symbols),
        *(cypher.merge_edges(kind, []) for kind in cypher.EDGE_RELATIONS),
        *(cypher.merge_chunks(owner, []) for owner in ("Symbol", "File")),
        cypher.prior_edges(ids),
        cypher.delete_chunks(ids),
        *(cypher.delete_edges(kind, "Symbol", []) for kind in cypher.EDGE_TARGETS),
        cypher.delete_file_nodes(ids),
        cypher.delete_undefined_symbols(ids),
        cypher.delete_orphans("Symbol", ids),
        cypher.delete_repository_batch("Chunk", "acme/shop", 500),
        cypher.file_versions("acme/shop"),
        cypher.chunk_ids("acme/shop"),
        cypher.node_ids("File", "acme/shop"),
        cypher.edges_from("Symbol", "acme/shop"),
        cypher.node_properties("Symbol", "x"),
    ]
    return statements


@pytest.mark.parametrize("statement", _every_statement(), ids=lambda s: s[0][:60])
def test_statements_use_only_allowed_names_bound_parameters_and_no_apoc(
    statement: cypher.Statement,
) -> None:
    query, params = statement
    labels, types = _labels_and_types(query)
    assert labels <= set(cypher.LABELS)
    assert types <= set(cypher.RELATIONS)
    assert "apoc." not in query.lower() and "FULLTEXT" not in query and "VECTOR" not in query
    assert set(re.findall(r"\$(\w+)", query)) == set(params)
    assert "acme/shop#" not in query, "values are bound, never spliced into the text"


def test_writes_are_unwind_batched_merges_that_add_properties() -> None:
    query, params = cypher.merge_symbols([{"id": "x", "file": "f", "props": {}}])
    assert query.startswith("UNWIND $rows AS row")
    assert "MERGE (s:Symbol {id: row.id}) SET s += row.props" in query
    assert params["rows"] == [{"id": "x", "file": "f", "props": {}}]
    calls, _ = cypher.merge_edges("CALLS", [])
    assert "MERGE (t:Symbol {id: row.target}) ON CREATE SET t += row.placeholder" in calls
    contains, _ = cypher.merge_edges("CONTAINS", [])
    assert "MATCH (t:Symbol {id: row.target})" in contains


def _prior(rows: cypher.GraphRows) -> list[cypher.PriorEdge]:
    labels = {r["id"]: "File" for r in rows.files} | {r["id"]: "Symbol" for r in rows.symbols}
    return [(kind, labels[source], source, target) for kind, source, target in rows.outgoing()]


def test_replacing_a_file_with_the_same_rows_removes_nothing() -> None:
    edges = (edge(EdgeKind.CALLS, RUN, "lib.f"), edge(EdgeKind.IMPORTS, "shop/app.py", "lib.py"))
    rows = cypher.graph_rows(REPO, [graph(edges=edges, chunks=(("c1", RUN),))])
    plan = cypher.replacement(_prior(rows), rows.file_ids, rows)
    assert plan == cypher.Replacement(files=rows.file_ids)


def test_replacing_a_file_removes_only_what_the_new_rows_lack() -> None:
    old_edges = (edge(EdgeKind.CALLS, RUN, "lib.f"), edge(EdgeKind.CALLS, RUN, "lib.g"))
    old = cypher.graph_rows(REPO, [graph(edges=old_edges, chunks=(("c1", RUN), ("c2", "")))])
    new_graph = graph(edges=old_edges[:1], chunks=(("c1", ""),))
    extraction = new_graph.extraction
    symbols = tuple(s for s in extraction.symbols if s.qualified_name != RUN)
    new_graph = FileGraph(
        new_graph.file,
        FileExtraction("shop/app.py", "python", "shop.app", symbols),
        new_graph.chunks,
    )
    new = cypher.graph_rows(REPO, [new_graph])
    plan = cypher.replacement(_prior(old), old.file_ids, new)
    assert plan.chunks == ["acme/shop#chunk:c2"], "c1 stays: only its owner changes"
    file_id = "acme/shop#file:shop/app.py"
    assert plan.edges[("HAS_CHUNK", "Symbol")] == [
        {"source": sid(RUN), "target": "acme/shop#chunk:c1"}
    ]
    assert plan.edges[("DEFINES", "File")] == [{"source": file_id, "target": sid(RUN)}]
    assert {r["target"] for r in plan.edges[("CALLS", "Symbol")]} == {sid("lib.f"), sid("lib.g")}
    assert plan.defined == [sid(RUN)]
    assert sorted(plan.targets["Symbol"]) == [sid("lib.f"), sid("lib.g")]
    assert set(plan.targets) == {"Symbol"}


def test_deleting_files_removes_everything_they_held() -> None:
    edges = (edge(EdgeKind.IMPORTS, "shop/app.py", "lib.py"),)
    rows = cypher.graph_rows(REPO, [graph(edges=edges, chunks=(("c1", RUN),))])
    plan = cypher.replacement(_prior(rows), rows.file_ids, None)
    assert plan.chunks == ["acme/shop#chunk:c1"]
    assert sorted(plan.defined) == sorted(r["id"] for r in rows.symbols)
    assert plan.targets == {"File": ["acme/shop#file:lib.py"]}
    assert ("HAS_CHUNK", "Symbol") not in plan.edges, "the chunk's edges go with the chunk"


@pytest.mark.parametrize(("size", "expected"), [(1, [1, 1, 1]), (2, [2, 1]), (500, [3])])
def test_batches_split_rows_by_batch_size(size: int, expected: list[int]) -> None:
    assert [len(b) for b in cypher.batches([1, 2, 3], size)] == expected


def test_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        cypher.batches([1], 0)


def test_file_ids_of_paths_are_unique_in_order() -> None:
    assert cypher.file_ids_of(REPO, ["b.py", "a.py", "b.py"]) == [
        "acme/shop#file:b.py",
        "acme/shop#file:a.py",
    ]


def test_error_description_names_the_repository_and_a_few_short_paths() -> None:
    text = cypher.describe_files(REPO, ["a.py", "x" * 500, "c.py", "d.py"])
    assert text.startswith("acme/shop: 'a.py', 'xxx")
    assert "..." in text and text.endswith("and 1 more")
    assert len(text) < 200
