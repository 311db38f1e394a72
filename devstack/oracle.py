"""What the stores must hold for a folder once its job is done, computed apart from the
workers, and the check of both stores against it: no missing chunk, no duplicate, no
ghost (issue 9: every reliability scenario ends with it).

The expected chunks come from the same library code a chunk worker runs (file
selection, then analysis with the stack's chunking settings), in this process; the
stored ones are read with SQL and Cypher of their own, counting rows, so a duplicate
row or node would show. Shared by the tests and the benchmarks (bench/multi_host.py).

Must not import: api/, cli/, a driver.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from config.endpoints import Endpoints
from config.settings import QuarrySettings
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.postgres.connect import connect
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.selection import select_files
from pipeline.models import RepoRef
from pipeline.statements import cypher

Key = tuple[str, str, str]  # path, file sha256, chunk id


def expected_chunks(root: Path, settings: QuarrySettings) -> set[Key]:
    options = ChunkingOptions(
        max_tokens=settings.chunk_max_tokens, max_file_bytes=settings.chunk_max_file_bytes
    )
    counter = model_token_counter()
    expected: set[Key] = set()
    for rel in select_files(root).files:
        data = (root / rel).read_bytes()
        analysis = analyze_file(rel, data, options=options, counter=counter)
        if isinstance(analysis, FileAnalysis):
            sha = hashlib.sha256(data).hexdigest()
            expected |= {(rel, sha, c.chunk_id) for c in analysis.chunks}
    return expected


def stored_rows(endpoints: Endpoints, ref: RepoRef) -> list[Key]:
    """Every chunk row of the repository that search can see (its default ref's snapshot)."""
    with connect(endpoints.postgres_dsn) as conn:
        rows = conn.execute(
            """
            SELECT c.path, c.file_sha256, c.id FROM chunks c
            JOIN repositories r ON r.id = c.repository_id
            JOIN refs d ON d.repository_id = r.id AND d.name = r.default_ref
            JOIN files f ON f.snapshot_id = d.snapshot_id
                AND f.path = c.path AND f.content_sha256 = c.file_sha256
            WHERE r.tenant_id = %s AND r.name = %s
            """,
            (ref.tenant, ref.name),
        ).fetchall()
    return [(str(p), str(s), str(c)) for p, s, c in rows]


def all_rows(endpoints: Endpoints, ref: RepoRef) -> list[Key]:
    """Every chunk row of the repository, searchable or not (old versions are ghosts)."""
    with connect(endpoints.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT c.path, c.file_sha256, c.id FROM chunks c"
            " JOIN repositories r ON r.id = c.repository_id"
            " WHERE r.tenant_id = %s AND r.name = %s",
            (ref.tenant, ref.name),
        ).fetchall()
    return [(str(p), str(s), str(c)) for p, s, c in rows]


def graph_chunk_ids(endpoints: Endpoints, ref: RepoRef) -> list[str]:
    """The chunk id of every Chunk node of the repository, one entry per node."""
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    try:
        records, _, _ = driver.execute_query(
            "MATCH (c:Chunk {repo: $repo}) RETURN c.chunk_id AS id",
            {"repo": cypher.repo_id(ref)},
            database_=endpoints.neo4j_database,
        )
    finally:
        driver.close()
    return [str(r["id"]) for r in records]


@dataclass(frozen=True, slots=True)
class StoreCheck:
    expected: int
    missing: int
    duplicated: int
    ghosts: int

    @property
    def clean(self) -> bool:
        return self.missing == self.duplicated == self.ghosts == 0


def check_stores(
    root: Path, ref: RepoRef, settings: QuarrySettings, endpoints: Endpoints
) -> StoreCheck:
    """Both stores against the folder: counts of missing, duplicated and ghost chunks."""
    expected = expected_chunks(root, settings)
    ids = {cid for _p, _s, cid in expected}
    rows, every_row = stored_rows(endpoints, ref), all_rows(endpoints, ref)
    nodes = graph_chunk_ids(endpoints, ref)
    duplicated = sum(n - 1 for n in Counter(every_row).values() if n > 1)
    duplicated += sum(n - 1 for n in Counter(nodes).values() if n > 1)
    missing = len(expected - set(rows)) + len(ids - set(nodes))
    ghosts = len(set(every_row) - expected) + len(set(nodes) - ids)
    return StoreCheck(len(expected), missing, duplicated, ghosts)


def assert_stores_match(
    root: Path, ref: RepoRef, settings: QuarrySettings, endpoints: Endpoints
) -> StoreCheck:
    check = check_stores(root, ref, settings, endpoints)
    assert check.expected > 0, f"{root} has no chunks to expect"
    assert check.clean, check
    return check
