"""Cypher of the code graph: node ids, the rows a write sends, and the query text.

Owns the graph model and every Cypher statement the graph store runs. Pure: builds
strings and parameter dicts, validates what cannot be bound (labels, relationship
types) against fixed allow-lists; no driver, no I/O. Statements use only what both
Neo4j 5 and ArcadeDB's Bolt server accept (no APOC, no FULLTEXT/VECTOR indexes).

Model::

    (:Repository)-[:HAS_FILE]->(:File)-[:DEFINES]->(:Symbol)
    (:File)-[:IMPORTS]->(:File)
    (:Symbol)-[:CONTAINS|CALLS|INHERITS]->(:Symbol)
    (:Symbol)-[:HAS_CHUNK]->(:Chunk)   or (:File)-[:HAS_CHUNK]->(:Chunk) when the chunk's
                                       symbol is not one the file defines

Ids start with ``RepoRef.key``: the key itself for the repository, then ``#file:<path>``,
``#symbol:<qualified name>``, ``#chunk:<chunk id>``. A qualified name is one node per
repository: two files that define the same name share it, and the last written sets
its properties. Unresolved edges (``resolved=False``: a bare name, an external module)
are skipped, and so are the file -> module ``CONTAINS`` edges (``DEFINES`` says it) and
edges whose source is not a node of the file. A resolved target outside the file is
MERGEd by id as a placeholder (only ``repo`` and ``path`` or ``qualified_name``) that
the defining file's write fills in; a placeholder nothing points at any more is removed.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pipeline.models import GraphSymbol, RepoRef, SymbolLink
from pipeline.statements.graph_rows import (
    EDGE_RELATIONS,
    LABELS,
    RELATIONS,
    Checker,
    GraphRows,
    Relation,
    chunk_node_id,
    file_id,
    graph_rows,
    label,
    relation,
    repo_id,
    symbol_id,
)

Statement = tuple[str, dict[str, Any]]
Row = dict[str, Any]
T = TypeVar("T")
__all__ = [
    "EDGE_RELATIONS",
    "EDGE_TARGETS",
    "LABELS",
    "RELATIONS",
    "SYMBOL_LINKS",
    "Checker",
    "GraphRows",
    "PriorEdge",
    "PriorState",
    "Relation",
    "Replacement",
    "Row",
    "Statement",
    "batches",
    "changed_rows",
    "chunk_ids",
    "chunk_keys",
    "chunk_node_id",
    "delete_chunks",
    "delete_edges",
    "delete_file_nodes",
    "delete_orphans",
    "delete_repository_batch",
    "delete_undefined_symbols",
    "describe_files",
    "edges_from",
    "file_id",
    "file_ids_of",
    "file_versions",
    "graph_rows",
    "graph_symbol",
    "label",
    "link_key",
    "merge_chunks",
    "merge_edges",
    "merge_files",
    "merge_repository",
    "merge_symbols",
    "node_ids",
    "node_properties",
    "prior_edges",
    "relation",
    "replacement",
    "repo_id",
    "symbol_by_id",
    "symbol_id",
    "symbol_links",
    "symbols_named",
]

# Writes, in the order one transaction runs them.


def merge_repository(rows: GraphRows) -> Statement:
    props = rows.repository
    # ON CREATE: every write of the repository MERGEs this node, and setting it again
    # would make concurrent transactions conflict on it.
    query = "MERGE (r:Repository {id: $id}) ON CREATE SET r += $props"
    return query, {"id": props["repo"], "props": props}


def merge_files(repo: str, rows: list[Row]) -> Statement:
    # The edge is merged from the file's side: ArcadeDB looks for an existing edge among
    # the pattern's first node's edges, and the repository's are all of its files (a
    # batch of 200 files took 1.5 s at 12k files, growing with the repository; from the
    # file's side it stays at 0.04 s). Neo4j plans either direction the same.
    return (
        "UNWIND $rows AS row MATCH (r:Repository {id: $repo}) "
        "MERGE (f:File {id: row.id}) SET f += row.props MERGE (f)<-[:HAS_FILE]-(r)",
        {"repo": repo, "rows": rows},
    )


def merge_symbols(rows: list[Row]) -> Statement:
    return (
        "UNWIND $rows AS row MATCH (f:File {id: row.file}) "
        "MERGE (s:Symbol {id: row.id}) SET s += row.props MERGE (f)-[:DEFINES]->(s)",
        {"rows": rows},
    )


def merge_edges(kind: str, rows: list[Row]) -> Statement:
    if kind not in EDGE_RELATIONS:
        raise ValueError(f"{kind!r} is not an edge kind a file writes: {sorted(EDGE_RELATIONS)}")
    spec = EDGE_RELATIONS[relation(kind)]
    source, target = label(spec.source), label(spec.target)
    if spec.placeholder_target:
        find_target = f"MERGE (t:{target} {{id: row.target}}) ON CREATE SET t += row.placeholder"
    else:
        find_target = f"MATCH (t:{target} {{id: row.target}})"
    return (
        f"UNWIND $rows AS row MATCH (s:{source} {{id: row.source}}) {find_target} "
        f"MERGE (s)-[r:{kind}]->(t) SET r.line = row.line",
        {"rows": rows},
    )


def merge_chunks(owner: str, rows: list[Row]) -> Statement:
    return (
        f"UNWIND $rows AS row MATCH (o:{label(owner)} {{id: row.owner}}) "
        "MERGE (c:Chunk {id: row.id}) SET c += row.props MERGE (o)-[:HAS_CHUNK]->(c)",
        {"rows": rows},
    )


# Replacing and deleting: read what the files held, remove only what the new rows lack.

# The target label of every edge a file's write creates, by type.
EDGE_TARGETS = {"DEFINES": "Symbol", "HAS_CHUNK": "Chunk"} | {
    kind: relation.target for kind, relation in EDGE_RELATIONS.items()
}


# With each prior edge: its line, and the properties of the node it points at when that
# node is one the file writes (a symbol it defines, a chunk): what :func:`changed_rows`
# compares the new rows with.
_PRIOR_DETAIL = (
    "r.line AS line, CASE WHEN type(r) IN ['DEFINES', 'HAS_CHUNK'] THEN properties(t) END AS props"
)


def prior_edges(file_ids: list[str]) -> Statement:
    """Rows (label, source, type, target, line, props) of the edges out of the files and
    their symbols.

    Every existing file gives at least one row (type null when it has no edge).
    """
    return (
        "UNWIND $ids AS id MATCH (f:File {id: id}) OPTIONAL MATCH (f)-[r]->(t) "
        "RETURN 'File' AS label, f.id AS source, type(r) AS type, t.id AS target, "
        f"{_PRIOR_DETAIL} "
        "UNION ALL UNWIND $ids AS id MATCH (:File {id: id})-[:DEFINES]->(s:Symbol)-[r]->(t) "
        "RETURN 'Symbol' AS label, s.id AS source, type(r) AS type, t.id AS target, "
        f"{_PRIOR_DETAIL}",
        {"ids": file_ids},
    )


PriorEdge = tuple[str, str, str, str]  # type, source label, source id, target id
# (type, source id, target id) -> (the edge's line, the target's properties or None)
PriorState = dict[tuple[str, str, str], tuple[Any, dict[str, Any] | None]]


def changed_rows(rows: GraphRows, prior: PriorState) -> GraphRows:
    """The rows of a write less those the graph already holds as they are: a symbol the
    file defines with the same properties, an edge with the same line, a chunk with the
    same properties and owner. MERGE with SET of equal values changes nothing, but the
    server still writes each such node and edge (on ArcadeDB, most of a one-file
    change's graph write, where most of the file is unchanged). Files are always written
    (their version changed, or the write is a replay that must restore them)."""

    # A node or edge that several rows of the write set (a qualified name two files of
    # the batch define: one node, whose last row wins) is always sent whole: skipping
    # the row that matches the graph would let an earlier row win instead.
    nodes = Counter(r["id"] for r in rows.symbols)
    nodes.update(r["id"] for chunk_rows in rows.chunks.values() for r in chunk_rows)
    edges = Counter(
        (kind, r["source"], r["target"])
        for kind, edge_rows in rows.edges.items()
        for r in edge_rows
    )

    def same(props: dict[str, Any] | None, new: dict[str, Any]) -> bool:
        return props is not None and all(props.get(k) == v for k, v in new.items())

    def held(key: tuple[str, str, str], new_props: dict[str, Any]) -> bool:
        found = prior.get(key)
        return nodes[key[2]] == 1 and found is not None and same(found[1], new_props)

    def edge_held(key: tuple[str, str, str], line: Any) -> bool:
        found = prior.get(key)
        return edges[key] == 1 and found is not None and found[0] == line

    return GraphRows(
        rows.repository,
        files=rows.files,
        symbols=[r for r in rows.symbols if not held(("DEFINES", r["file"], r["id"]), r["props"])],
        chunks={
            owner: [
                r for r in chunk_rows if not held(("HAS_CHUNK", r["owner"], r["id"]), r["props"])
            ]
            for owner, chunk_rows in rows.chunks.items()
        },
        edges={
            kind: [
                r for r in edge_rows if not edge_held((kind, r["source"], r["target"]), r["line"])
            ]
            for kind, edge_rows in rows.edges.items()
        },
    )


@dataclass(slots=True)
class Replacement:
    """What a write (or, with no new rows, a delete) removes, from the files' prior edges."""

    files: list[str] = field(default_factory=list)  # file nodes that existed
    chunks: list[str] = field(default_factory=list)  # chunk nodes to DETACH DELETE
    edges: dict[tuple[str, str], list[Row]] = field(default_factory=dict)  # (type, label)
    defined: list[str] = field(default_factory=list)  # delete if no file defines them
    targets: dict[str, list[str]] = field(default_factory=dict)  # label -> delete if orphan


def replacement(
    prior: Sequence[PriorEdge], existing: Sequence[str], new: GraphRows | None
) -> Replacement:
    """Old edges and chunks the new rows lack, and the nodes that may be left behind."""
    kept = new.outgoing() if new is not None else set()
    kept_nodes = {t for _, _, t in kept}
    still_defined = {t for kind, _, t in kept if kind == "DEFINES"}
    plan = Replacement(files=list(dict.fromkeys(existing)))
    chunks: dict[str, None] = {}
    for kind, source_label, source, target in dict.fromkeys(prior):
        if (kind, source, target) in kept:
            continue
        if kind == "HAS_CHUNK" and target not in kept_nodes:
            chunks[target] = None  # its edges go with it
            continue
        if kind in EDGE_TARGETS:
            rows = plan.edges.setdefault((kind, source_label), [])
            rows.append({"source": source, "target": target})
        if kind == "DEFINES" and target not in still_defined:
            plan.defined.append(target)
        elif kind in {"CALLS", "INHERITS", "IMPORTS"} and target not in kept_nodes:
            plan.targets.setdefault(EDGE_TARGETS[kind], []).append(target)
    plan.chunks = list(chunks)
    return plan


def delete_chunks(chunk_ids: list[str]) -> Statement:
    return (
        "UNWIND $ids AS id MATCH (c:Chunk {id: id}) DETACH DELETE c RETURN count(*) AS n",
        {"ids": chunk_ids},
    )


def delete_edges(kind: str, source_label: str, rows: list[Row]) -> Statement:
    source, target = label(source_label), label(EDGE_TARGETS[relation(kind)])
    return (
        f"UNWIND $rows AS row MATCH (s:{source} {{id: row.source}})-[r:{kind}]->"
        f"(t:{target} {{id: row.target}}) DELETE r",
        {"rows": rows},
    )


def delete_file_nodes(file_ids: list[str]) -> Statement:
    return (
        "UNWIND $ids AS id MATCH (f:File {id: id}) DETACH DELETE f RETURN count(*) AS n",
        {"ids": file_ids},
    )


def delete_undefined_symbols(symbol_ids: list[str]) -> Statement:
    """Symbols no file defines any more go, with the edges other files had to them.

    The pattern starts at the bound node: ArcadeDB scans every DEFINES edge for
    ``NOT ()-[:DEFINES]->(s)``.
    """
    return (
        "UNWIND $ids AS id MATCH (s:Symbol {id: id}) WHERE NOT (s)<-[:DEFINES]-() "
        "DETACH DELETE s RETURN count(*) AS n",
        {"ids": symbol_ids},
    )


def delete_orphans(node_label: str, node_ids: list[str]) -> Statement:
    """Placeholders nothing points at any more (a written file or symbol always has one)."""
    return (
        f"UNWIND $ids AS id MATCH (x:{label(node_label)} {{id: id}}) WHERE NOT (x)--() "
        "DELETE x RETURN count(*) AS n",
        {"ids": node_ids},
    )


def delete_repository_batch(node_label: str, repo: str, limit: int) -> Statement:
    return (
        f"MATCH (x:{label(node_label)} {{repo: $repo}}) WITH x LIMIT $limit "
        "DETACH DELETE x RETURN count(*) AS n",
        {"repo": repo, "limit": limit},
    )


# Reads.


def file_versions(repo: str) -> Statement:
    return (
        "MATCH (f:File {repo: $repo}) WHERE f.sha256 IS NOT NULL "
        "RETURN f.path AS path, f.sha256 AS sha256",
        {"repo": repo},
    )


def chunk_ids(repo: str) -> Statement:
    return "MATCH (c:Chunk {repo: $repo}) RETURN c.chunk_id AS chunk_id", {"repo": repo}


def chunk_keys(repo: str) -> Statement:
    return (
        "MATCH (c:Chunk {repo: $repo}) RETURN c.path AS path, c.chunk_id AS chunk_id",
        {"repo": repo},
    )


def node_ids(node_label: str, repo: str) -> Statement:
    return f"MATCH (n:{label(node_label)} {{repo: $repo}}) RETURN n.id AS id", {"repo": repo}


def edges_from(node_label: str, repo: str) -> Statement:
    return (
        f"MATCH (s:{label(node_label)} {{repo: $repo}})-[r]->(t) "
        "RETURN type(r) AS type, s.id AS source, t.id AS target",
        {"repo": repo},
    )


def node_properties(node_label: str, node_id: str) -> Statement:
    return f"MATCH (n:{label(node_label)} {{id: $id}}) RETURN properties(n) AS props", {
        "id": node_id
    }


SYMBOL_LINKS = ("CALLS", "CONTAINS", "INHERITS")


def symbol_by_id(symbol: str) -> Statement:
    return "MATCH (s:Symbol {id: $id}) RETURN properties(s) AS props", {"id": symbol}


def symbols_named(repo: str, name: str, limit: int) -> Statement:
    return (
        "MATCH (s:Symbol {repo: $repo}) WHERE s.name = $name "
        "RETURN properties(s) AS props ORDER BY s.qualified_name LIMIT $limit",
        {"repo": repo, "name": name, "limit": limit},
    )


def symbol_links(symbol_ids: list[str], outgoing: bool) -> Statement:
    """The CALLS/CONTAINS/INHERITS edges out of (or into) the symbols: type and both
    ends' properties."""
    pattern = (
        "(s:Symbol {id: id})-[r]->(t:Symbol)" if outgoing else "(t:Symbol)-[r]->(s:Symbol {id: id})"
    )
    return (
        f"UNWIND $ids AS id MATCH {pattern} WHERE type(r) IN $types "
        "RETURN type(r) AS type, properties(s) AS near, properties(t) AS far",
        {"ids": symbol_ids, "types": list(SYMBOL_LINKS)},
    )


def file_ids_of(repo: RepoRef, paths: Sequence[str]) -> list[str]:
    """Node ids of ``paths``, each once, in order."""
    key = repo_id(repo)
    return [file_id(key, Checker(path).text(path)) for path in dict.fromkeys(paths)]


def describe_files(repo: RepoRef, paths: Sequence[str], shown: int = 3) -> str:
    """The repository and its first few paths, each cut short, for error messages."""
    cut = [p if len(p) <= 120 else f"{p[:120]}..." for p in paths[:shown]]
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return f"{repo.key}: {', '.join(map(ascii, cut))}{more}"


def batches(rows: list[T], batch_size: int) -> list[list[T]]:
    """``rows`` in batches of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]


def graph_symbol(props: dict[str, Any]) -> GraphSymbol:
    """A symbol node's properties as a GraphSymbol (a placeholder has only its name)."""
    return GraphSymbol(
        qualified_name=str(props.get("qualified_name") or ""),
        name=str(props.get("name") or ""),
        kind=str(props.get("kind") or ""),
        path=str(props.get("path") or ""),
        start_line=int(props.get("start_line") or 0),
        end_line=int(props.get("end_line") or 0),
    )


def link_key(link: SymbolLink) -> tuple[str, str, str]:
    """How symbol links sort and deduplicate: (relation, source, target) names."""
    return link.relation, link.source.qualified_name, link.target.qualified_name
