"""InMemorySearchIndex: a behaving fake of the search index, over the in-memory stores.

Reads the rows of an :class:`InMemoryVectorStore` through the searchable snapshots of an
:class:`InMemorySnapshotStore`, as the real index reads ``chunks`` through ``files``:
same scoping, same filters, exact cosine ranking, and the same BM25 for full text
(pipeline/search/bm25.py: N, document frequencies and the mean length over every row of
the repositories searched; lengths in distinct words), scored row by row, over words
split as PostgreSQL's parser splits them.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.models import Hit, RepoRef
from pipeline.search.bm25 import Plan, TermStats
from pipeline.search.lexical import lexical_text
from pipeline.search.query import SearchFilters, SearchRequest, like_matches
from pipeline.statements import sql

# Columns of sql.ChunkRow (CHUNK_STAGING_COLUMNS).
_ID, _PATH, _SHA, _START, _END = 0, 1, 2, 3, 4
_SYMBOL, _KIND, _LANG, _CONTENT, _MODEL, _VECTOR = 7, 8, 9, 10, 12, 13


class InMemorySearchIndex:
    """The SearchIndex port over the in-memory vector and snapshot stores."""

    def __init__(self, vectors: InMemoryVectorStore, snapshots: InMemorySnapshotStore) -> None:
        self._vectors = vectors
        self._snapshots = snapshots

    def close(self) -> None:
        """Nothing to release; here for parity with the real index."""

    def missing_repositories(self, tenant: str, names: Sequence[str]) -> list[str]:
        known = {str(r["name"]) for r in self._snapshots.repositories(tenant)}
        return [name for name in names if name not in known]

    def selected(self, request: SearchRequest) -> dict[str, bool]:
        names = request.repos or [
            str(r["name"]) for r in self._snapshots.repositories(request.tenant)
        ]
        return {
            name: self._snapshots.snapshot_for(
                RepoRef(request.tenant, name), request.ref, request.commit
            )
            is not None
            for name in names
        }

    def vector_hits(
        self, request: SearchRequest, vector: npt.NDArray[np.float32], model_id: str, limit: int
    ) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32)
        scored = []
        for repo, row in self._rows(request):
            if row[_MODEL] != model_id or row[_VECTOR] is None:
                continue
            stored = np.asarray(row[_VECTOR], dtype=np.float32)
            norms = float(np.linalg.norm(stored) * np.linalg.norm(query)) or 1.0
            scored.append((float(np.dot(stored, query)) / norms, repo, row))
        scored.sort(key=lambda s: (-s[0], s[2][_PATH], s[2][_START]))
        return [_hit(repo, row, score) for score, repo, row in scored[:limit]]

    def lexical_hits(self, request: SearchRequest, terms: Sequence[str], limit: int) -> list[Hit]:
        wanted = {w for term in terms for w in _lexemes(term)}
        repos = self._scope(request)
        every = [row for repo in repos for row in self._vectors.rows(repo)]
        words = {id(row): _lexemes(lexical_text(str(row[_CONTENT]))) for row in every}
        df = Counter(w for row in every for w in set(words[id(row)]) & wanted)
        lengths = [len(set(words[id(row)])) for row in every]
        plan = Plan.of(len(every), sum(lengths), [TermStats(w, df[w], 1.0) for w in wanted])
        scored = []
        for repo, row in self._rows(request):
            held = Counter(w for w in words[id(row)] if w in plan.idf)
            if held:
                dl = len(set(words[id(row)]))
                score = plan.score({w: (tf, dl) for w, tf in held.items()})
                scored.append((score, repo, row))
        scored.sort(key=lambda s: (-s[0], s[2][_PATH], s[2][_START], s[1], s[2][_ID]))
        return [_hit(repo, row, score) for score, repo, row in scored[:limit]]

    def _scope(self, request: SearchRequest) -> list[RepoRef]:
        """The repositories a request reads: those with a searchable snapshot."""
        names = request.repos or [
            str(r["name"]) for r in self._snapshots.repositories(request.tenant)
        ]
        repos = [RepoRef(request.tenant, name) for name in names]
        return [
            repo
            for repo in repos
            if self._snapshots.snapshot_for(repo, request.ref, request.commit) is not None
        ]

    def _rows(self, request: SearchRequest) -> list[tuple[str, sql.ChunkRow]]:
        found = []
        for repo in self._scope(request):
            name = repo.name
            snapshot_id = self._snapshots.snapshot_for(repo, request.ref, request.commit)
            files = {} if snapshot_id is None else self._snapshots.snapshot_files(snapshot_id)
            for row in self._vectors.rows(repo):
                listed = files.get(str(row[_PATH]))
                if (
                    listed is not None
                    and listed.sha256 == row[_SHA]
                    and _passes(request.filters, row)
                ):
                    found.append((name, row))
        return found


def _lexemes(text: str) -> list[str]:
    """Words as PostgreSQL's default parser gives them to the 'simple' configuration:
    split at anything that is not a letter or digit (``_`` included), lower-cased."""
    return [w.lower() for w in re.findall(r"[^\W_]+", text)]


def _passes(filters: SearchFilters, row: sql.ChunkRow) -> bool:
    if filters.languages and row[_LANG] not in filters.languages:
        return False
    if filters.kinds and row[_KIND] not in filters.kinds:
        return False
    patterns = filters.path_patterns
    return not patterns or any(like_matches(p, str(row[_PATH])) for p in patterns)


def _hit(repo: str, row: sql.ChunkRow, score: float) -> Hit:
    chunk_id, path, _sha, start, end, start_byte, end_byte, symbol, kind, language, content, *_ = (
        row
    )
    return Hit(
        repo, chunk_id, path, start, end, symbol, kind, language, content, score,
        body_bytes=end_byte - start_byte,
    )  # fmt: skip
