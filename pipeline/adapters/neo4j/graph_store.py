"""Neo4jGraphStore: the code graph on Neo4j 5 or ArcadeDB's Bolt server.

Owns running the statements of :mod:`pipeline.statements.cypher` (which draws the model and the
ids) in managed write transactions. Unresolved edges (``resolved=False``) are skipped:
a bare callee name or an external module is not a node of the repository.
A ``write_files`` or ``delete_files`` call runs one transaction per ``batch_size`` files
(each statement UNWINDs at most ``batch_size`` rows): read the edges out of the files
and their symbols (with the edges' lines and the properties of the symbols and chunks the
files own), delete the chunks and edges the new rows lack (all of them for a delete),
MERGE the new nodes and edges that the graph does not already hold as they are
(:func:`~pipeline.statements.cypher.changed_rows`: a one-file change sends the few rows
it changed, not the whole file's), then drop symbols no file defines any more and
placeholders nothing points at. Deleting only what changed keeps a replay or a small
edit cheap: on ArcadeDB, deletes cost far more at commit than MERGEs that find a match.
The transaction is idempotent, so the driver's retries (transient errors) and ours (a
lost unique key race, see :func:`~pipeline.adapters.neo4j.driver.retry_constraint_races`)
are safe.
Driver errors map as :func:`~pipeline.adapters.neo4j.driver.map_neo4j_errors` maps
them; a rejected write names the repository and files.

``node_ids``, ``edges`` and ``node`` are small reads for tests and operators.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import neo4j

from config.endpoints import Endpoints
from config.settings import QuarrySettings
from pipeline.adapters.neo4j.driver import make_driver, map_neo4j_errors, retry_constraint_races
from pipeline.errors import InvalidInputError
from pipeline.models import FileGraph, GraphSymbol, RepoRef, SymbolLink
from pipeline.statements import cypher

T = TypeVar("T")


class Neo4jGraphStore:
    """GraphStore over a Bolt driver; ``database`` is always passed (ArcadeDB needs it).

    The store owns the driver it is given: :meth:`close` closes it.
    """

    def __init__(self, driver: neo4j.Driver, database: str, *, batch_size: int = 500) -> None:
        cypher.batches([], batch_size)  # validates batch_size
        self._driver = driver
        self._database = database
        self._batch_size = batch_size
        # Node and edge rows sent to MERGE, less those the graph held unchanged (tests).
        self.rows_sent = 0

    def close(self) -> None:
        self._driver.close()

    def write_files(self, repo: RepoRef, files: Sequence[FileGraph]) -> int:
        latest = list({graph.file.path: graph for graph in files}.values())
        groups = [cypher.graph_rows(repo, g) for g in cypher.batches(latest, self._batch_size)]
        written = 0
        for rows in groups:
            paths = [row["props"]["path"] for row in rows.files]
            with self._errors(f"writing {cypher.describe_files(repo, paths)}"):
                self._write(partial(self._write_tx, rows=rows))
            written += rows.count()
        return written

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        unique = list(dict.fromkeys(paths))
        ids = cypher.file_ids_of(repo, unique)
        removed = 0
        for start in range(0, len(ids), self._batch_size):
            batch = ids[start : start + self._batch_size]
            names = cypher.describe_files(repo, unique[start : start + len(batch)])
            with self._errors(f"deleting {names}"):
                removed += self._write(partial(self._delete_tx, file_ids=batch))
        return removed

    def file_versions(self, repo: RepoRef) -> dict[str, str]:
        records = self._read(cypher.file_versions(cypher.repo_id(repo)))
        return {str(r["path"]): str(r["sha256"]) for r in records}

    def chunk_ids(self, repo: RepoRef) -> set[str]:
        return {str(r["chunk_id"]) for r in self._read(cypher.chunk_ids(cypher.repo_id(repo)))}

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str]]:
        records = self._read(cypher.chunk_keys(cypher.repo_id(repo)))
        return {(str(r["path"]), str(r["chunk_id"])) for r in records}

    def delete_repository(
        self, repo: RepoRef, on_batch: Callable[[int], None] | None = None
    ) -> int:
        # One bounded transaction per batch (ArcadeDB is slow on big ones): a batch that
        # failed is retried by the caller, the batches before it stay done.
        key = cypher.repo_id(repo)
        removed = 0
        for label in ("Chunk", "Symbol", "File", "Repository"):
            statement = cypher.delete_repository_batch(label, key, self._batch_size)
            with self._errors(f"deleting repository {key}"):
                while n := self._write(partial(_count, statement=statement)):
                    removed += n
                    if on_batch is not None:
                        on_batch(n)
        return removed

    def node_ids(self, repo: RepoRef) -> set[str]:
        key = cypher.repo_id(repo)
        return {
            str(r["id"]) for label in cypher.LABELS for r in self._read(cypher.node_ids(label, key))
        }

    def edges(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        """Every edge out of the repository's nodes as (type, source id, target id)."""
        key = cypher.repo_id(repo)
        return {
            (str(r["type"]), str(r["source"]), str(r["target"]))
            for label in ("Repository", "File", "Symbol")
            for r in self._read(cypher.edges_from(label, key))
        }

    def node(self, node_id: str) -> tuple[str, dict[str, Any]] | None:
        """(label, properties) of one node, or None."""
        for label in cypher.LABELS:
            records = self._read(cypher.node_properties(label, node_id))
            if records:
                return label, dict(records[0]["props"])
        return None

    def find_symbols(self, repo: RepoRef, name: str, limit: int) -> list[GraphSymbol]:
        key = cypher.repo_id(repo)
        records = self._read(cypher.symbol_by_id(cypher.symbol_id(key, name)))
        if not records:
            records = self._read(cypher.symbols_named(key, name, limit))
        return [cypher.graph_symbol(dict(r["props"])) for r in records[:limit]]

    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        key = cypher.repo_id(repo)
        ids = sorted({cypher.symbol_id(key, name) for name in qualified_names})
        links = {}
        for outgoing in (True, False):
            for record in self._read(cypher.symbol_links(ids, outgoing)):
                near = cypher.graph_symbol(dict(record["near"]))
                far = cypher.graph_symbol(dict(record["far"]))
                source, target = (near, far) if outgoing else (far, near)
                link = SymbolLink(str(record["type"]), source, target)
                links[cypher.link_key(link)] = link  # a self-call is found both ways
        return [links[key] for key in sorted(links)]

    # Transactions.

    def _write_tx(self, tx: neo4j.ManagedTransaction, rows: cypher.GraphRows) -> None:
        plan, prior = self._replacement(tx, rows.file_ids, rows)
        self._remove_stale(tx, plan)
        _run(tx, cypher.merge_repository(rows))
        rows = cypher.changed_rows(rows, prior)
        self.rows_sent += rows.count()
        key = rows.repository["repo"]
        for batch in self._batches(rows.files):
            _run(tx, cypher.merge_files(key, batch))
        for batch in self._batches(rows.symbols):
            _run(tx, cypher.merge_symbols(batch))
        for kind, edge_rows in rows.edges.items():
            for batch in self._batches(edge_rows):
                _run(tx, cypher.merge_edges(kind, batch))
        for owner, chunk_rows in rows.chunks.items():
            for batch in self._batches(chunk_rows):
                _run(tx, cypher.merge_chunks(owner, batch))
        self._clean_up(tx, plan)

    def _delete_tx(self, tx: neo4j.ManagedTransaction, file_ids: list[str]) -> int:
        plan, _ = self._replacement(tx, file_ids, None)
        removed = self._remove_stale(tx, plan)
        for batch in self._batches(plan.files):
            removed += _count(tx, cypher.delete_file_nodes(batch))
        return removed + self._clean_up(tx, plan)

    def _replacement(
        self, tx: neo4j.ManagedTransaction, file_ids: list[str], new: cypher.GraphRows | None
    ) -> tuple[cypher.Replacement, cypher.PriorState]:
        prior: list[cypher.PriorEdge] = []
        state: cypher.PriorState = {}
        existing: list[str] = []
        for batch in self._batches(file_ids):
            for r in _run(tx, cypher.prior_edges(batch)):
                if r["label"] == "File":
                    existing.append(str(r["source"]))
                if r["type"] is not None:
                    prior.append((r["type"], r["label"], r["source"], r["target"]))
                    props = r["props"]
                    state[(r["type"], r["source"], r["target"])] = (
                        r["line"],
                        None if props is None else dict(props),
                    )
        return cypher.replacement(prior, existing, new), state

    def _remove_stale(self, tx: neo4j.ManagedTransaction, plan: cypher.Replacement) -> int:
        """Old chunks and edges the new rows lack; returns the chunks deleted."""
        removed = 0
        for batch in self._batches(plan.chunks):
            removed += _count(tx, cypher.delete_chunks(batch))
        for (kind, label), edge_rows in plan.edges.items():
            for rows in self._batches(edge_rows):
                _run(tx, cypher.delete_edges(kind, label, rows))
        return removed

    def _clean_up(self, tx: neo4j.ManagedTransaction, plan: cypher.Replacement) -> int:
        removed = 0
        for batch in self._batches(plan.defined):
            removed += _count(tx, cypher.delete_undefined_symbols(batch))
        for label, ids in plan.targets.items():
            for batch in self._batches(ids):
                removed += _count(tx, cypher.delete_orphans(label, batch))
        return removed

    # Plumbing.

    def _batches(self, rows: list[T]) -> list[list[T]]:
        return cypher.batches(rows, self._batch_size)

    def _write(self, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
        def attempt() -> T:
            with self._driver.session(database=self._database) as session:
                return session.execute_write(work)

        return retry_constraint_races(attempt)

    def _read(self, statement: cypher.Statement) -> list[neo4j.Record]:
        with (
            self._errors("reading"),
            self._driver.session(database=self._database) as session,
        ):
            return session.execute_read(lambda tx: _run(tx, statement))

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            with map_neo4j_errors():
                yield
        except InvalidInputError as exc:
            raise InvalidInputError(f"{exc} ({action})") from exc


def _run(tx: neo4j.ManagedTransaction, statement: cypher.Statement) -> list[neo4j.Record]:
    query, params = statement
    return list(tx.run(query, params))


def _count(tx: neo4j.ManagedTransaction, statement: cypher.Statement) -> int:
    records = _run(tx, statement)
    return int(records[0]["n"]) if records else 0


def graph_store_from(settings: QuarrySettings, endpoints: Endpoints) -> Neo4jGraphStore:
    """The graph store the settings and endpoints describe (it owns its driver)."""
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    return Neo4jGraphStore(driver, endpoints.neo4j_database, batch_size=settings.graph_batch_size)
