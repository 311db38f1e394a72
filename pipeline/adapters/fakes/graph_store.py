"""InMemoryGraphStore: a behaving fake of the code graph store, for tests.

Owns a small property graph in dicts, written from the same rows as
:class:`~pipeline.adapters.neo4j.graph_store.Neo4jGraphStore`
(:func:`pipeline.statements.cypher.graph_rows`) but by plainer steps, so that the contract suite
checks the real adapter's replacement plan against them: one atomic step per
``batch_size`` files clears the files' chunks and outgoing edges, merges nodes and edges
(placeholders for targets elsewhere), then drops symbols no file defines and
placeholders nothing points at. Like the servers, it refuses a node id longer than an
index key may be (``max_id_bytes``; Neo4j 5 allows about 8 KB, ArcadeDB about 256 KB).
Thread-safe. ``node_ids``, ``edges`` and ``node`` mirror the real adapter's reads.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.errors import InvalidInputError
from pipeline.models import FileGraph, GraphSymbol, RepoRef, SymbolLink
from pipeline.statements import cypher

MAX_ID_BYTES = 8_000

EdgeKey = tuple[str, str, str]  # type, source id, target id


class InMemoryGraphStore:
    """GraphStore in process memory; same ids, nodes, edges and counts as the real one."""

    def __init__(self, *, batch_size: int = 500, max_id_bytes: int = MAX_ID_BYTES) -> None:
        cypher.batches([], batch_size)  # validates batch_size
        self._batch_size = batch_size
        self._max_id_bytes = max_id_bytes
        self._lock = threading.Lock()
        self._nodes: dict[str, tuple[str, dict[str, Any]]] = {}
        self._out: dict[str, set[EdgeKey]] = {}
        self._in: dict[str, set[EdgeKey]] = {}
        self._edge_props: dict[EdgeKey, dict[str, Any]] = {}

    def write_files(self, repo: RepoRef, files: Sequence[FileGraph]) -> int:
        latest = list({graph.file.path: graph for graph in files}.values())
        groups = [cypher.graph_rows(repo, g) for g in cypher.batches(latest, self._batch_size)]
        for rows in groups:
            self._check_ids(repo, rows)
            with self._lock:
                self._write(rows)
        return sum(rows.count() for rows in groups)

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        ids = cypher.file_ids_of(repo, paths)
        with self._lock:
            existing = [i for i in ids if self._label(i) == "File"]
            prior = self._prior(existing)
            removed = self._clear(existing)
            for file_id in existing:
                self._detach_delete(file_id)
            return removed + len(existing) + self._clean_up(prior)

    def file_versions(self, repo: RepoRef) -> dict[str, str]:
        key = cypher.repo_id(repo)
        with self._lock:
            return {
                p["path"]: p["sha256"]
                for label, p in self._nodes.values()
                if label == "File" and p.get("repo") == key and p.get("sha256") is not None
            }

    def chunk_ids(self, repo: RepoRef) -> set[str]:
        key = cypher.repo_id(repo)
        with self._lock:
            return {
                p["chunk_id"]
                for label, p in self._nodes.values()
                if label == "Chunk" and p.get("repo") == key
            }

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str]]:
        key = cypher.repo_id(repo)
        with self._lock:
            return {
                (p["path"], p["chunk_id"])
                for label, p in self._nodes.values()
                if label == "Chunk" and p.get("repo") == key
            }

    def delete_repository(
        self, repo: RepoRef, on_batch: Callable[[int], None] | None = None
    ) -> int:
        key = cypher.repo_id(repo)
        with self._lock:
            doomed = [i for i, (_, p) in self._nodes.items() if p.get("repo") == key]
            for node_id in doomed:
                self._detach_delete(node_id)
        if on_batch is not None and doomed:
            on_batch(len(doomed))
        return len(doomed)

    def node_ids(self, repo: RepoRef) -> set[str]:
        key = cypher.repo_id(repo)
        with self._lock:
            return {i for i, (_, p) in self._nodes.items() if p.get("repo") == key}

    def edges(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        """Every edge out of the repository's nodes as (type, source id, target id)."""
        ids = self.node_ids(repo)
        with self._lock:
            return {edge for node_id in ids for edge in self._out.get(node_id, ())}

    def node(self, node_id: str) -> tuple[str, dict[str, Any]] | None:
        """(label, properties) of one node, or None."""
        with self._lock:
            found = self._nodes.get(node_id)
            return (found[0], dict(found[1])) if found else None

    def find_symbols(self, repo: RepoRef, name: str, limit: int) -> list[GraphSymbol]:
        key = cypher.repo_id(repo)
        with self._lock:
            exact = self._nodes.get(cypher.symbol_id(key, name))
            if exact is not None and exact[0] == "Symbol":
                return [cypher.graph_symbol(exact[1])][:limit]
            named = [
                p
                for label, p in self._nodes.values()
                if label == "Symbol" and p.get("repo") == key and p.get("name") == name
            ]
        named.sort(key=lambda p: str(p.get("qualified_name")))
        return [cypher.graph_symbol(p) for p in named[:limit]]

    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        key = cypher.repo_id(repo)
        ids = {cypher.symbol_id(key, name) for name in qualified_names}
        links = {}
        with self._lock:
            edges = {e for i in ids for e in (*self._out.get(i, ()), *self._in.get(i, ()))}
            for kind, source, target in edges:
                ends = [self._nodes.get(source), self._nodes.get(target)]
                if kind in cypher.SYMBOL_LINKS and all(e and e[0] == "Symbol" for e in ends):
                    a, b = (cypher.graph_symbol(e[1]) for e in ends if e)
                    link = SymbolLink(kind, a, b)
                    links[cypher.link_key(link)] = link
        return [links[key] for key in sorted(links)]

    # The steps of one transaction, under the lock.

    def _check_ids(self, repo: RepoRef, rows: cypher.GraphRows) -> None:
        ids = [
            *rows.file_ids,
            *(row["id"] for row in rows.symbols),
            *(row["target"] for edge_rows in rows.edges.values() for row in edge_rows),
            *(row["id"] for chunk_rows in rows.chunks.values() for row in chunk_rows),
        ]
        too_long = [i for i in ids if len(i.encode("utf-8")) > self._max_id_bytes]
        if too_long:
            paths = [row["props"]["path"] for row in rows.files]
            raise InvalidInputError(
                f"graph rejected the query: a node id of {len(too_long[0].encode())} bytes is "
                f"longer than {self._max_id_bytes} ({cypher.describe_files(repo, paths)})"
            )

    def _write(self, rows: cypher.GraphRows) -> None:
        existing = [i for i in rows.file_ids if self._label(i) == "File"]
        prior = self._prior(existing)
        self._clear(existing)
        key = rows.repository["repo"]
        if key not in self._nodes:
            self._merge_node("Repository", key, rows.repository)
        for row in rows.files:
            self._merge_node("File", row["id"], row["props"])
            self._merge_edge(("HAS_FILE", key, row["id"]), {})
        for row in rows.symbols:
            if self._label(row["file"]) == "File":
                self._merge_node("Symbol", row["id"], row["props"])
                self._merge_edge(("DEFINES", row["file"], row["id"]), {})
        for kind, edge_rows in rows.edges.items():
            relation = cypher.EDGE_RELATIONS[kind]
            for row in edge_rows:
                source, target = row["source"], row["target"]
                if self._label(source) != relation.source:
                    continue
                if relation.placeholder_target and target not in self._nodes:
                    self._nodes[target] = (relation.target, dict(row["placeholder"], id=target))
                if self._label(target) == relation.target:
                    self._merge_edge((kind, source, target), {"line": row["line"]})
        for owner, chunk_rows in rows.chunks.items():
            for row in chunk_rows:
                if self._label(row["owner"]) == owner:
                    self._merge_node("Chunk", row["id"], row["props"])
                    self._merge_edge(("HAS_CHUNK", row["owner"], row["id"]), {})
        self._clean_up(prior)

    def _prior(self, file_ids: list[str]) -> dict[str, list[str]]:
        """Symbols the files define, and the targets that may become orphans, by label."""
        defined = self._targets(file_ids, {"DEFINES"})
        return {
            "defined": defined,
            "Symbol": self._targets(defined, {"CALLS", "INHERITS"}, "Symbol"),
            "File": self._targets(file_ids, {"IMPORTS"}, "File"),
        }

    def _clear(self, file_ids: list[str]) -> int:
        defined = self._targets(file_ids, {"DEFINES"})
        chunks = self._targets([*file_ids, *defined], {"HAS_CHUNK"}, "Chunk")
        for chunk in chunks:
            self._detach_delete(chunk)
        for node_id in [*defined, *file_ids]:
            for edge in list(self._out.get(node_id, ())):
                self._delete_edge(edge)
        return len(chunks)

    def _clean_up(self, prior: dict[str, list[str]]) -> int:
        removed = 0
        for symbol in prior["defined"]:
            defined = any(e[0] == "DEFINES" for e in self._in.get(symbol, ()))
            if self._label(symbol) == "Symbol" and not defined:
                self._detach_delete(symbol)
                removed += 1
        for label in ("Symbol", "File"):
            for node_id in prior[label]:
                linked = self._out.get(node_id) or self._in.get(node_id)
                if self._label(node_id) == label and not linked:
                    del self._nodes[node_id]
                    removed += 1
        return removed

    # Graph primitives.

    def _label(self, node_id: str) -> str | None:
        found = self._nodes.get(node_id)
        return found[0] if found else None

    def _targets(self, sources: list[str], kinds: set[str], label: str | None = None) -> list[str]:
        found = (e[2] for s in sources for e in self._out.get(s, ()) if e[0] in kinds)
        return [t for t in dict.fromkeys(found) if label is None or self._label(t) == label]

    def _merge_node(self, label: str, node_id: str, props: dict[str, Any]) -> None:
        if node_id not in self._nodes:
            self._nodes[node_id] = (label, {})
        self._nodes[node_id][1].update(props, id=node_id)

    def _merge_edge(self, edge: EdgeKey, props: dict[str, Any]) -> None:
        self._out.setdefault(edge[1], set()).add(edge)
        self._in.setdefault(edge[2], set()).add(edge)
        self._edge_props.setdefault(edge, {}).update(props)

    def _delete_edge(self, edge: EdgeKey) -> None:
        self._out.get(edge[1], set()).discard(edge)
        self._in.get(edge[2], set()).discard(edge)
        self._edge_props.pop(edge, None)

    def _detach_delete(self, node_id: str) -> None:
        for edge in [*self._out.pop(node_id, ()), *self._in.pop(node_id, ())]:
            self._delete_edge(edge)
        self._nodes.pop(node_id, None)
