"""InMemorySearchIndex: a behaving fake of the search index, over the in-memory stores.

Reads the rows of an :class:`InMemoryVectorStore` through the searchable snapshots of an
:class:`InMemorySnapshotStore`, as the real index reads ``chunks`` through ``files``:
same scoping, same filters, exact cosine ranking. Its full-text ranking is simpler than
PostgreSQL's ``ts_rank_cd`` (the count of distinct query words a chunk holds, then how
often they occur, over its length) but follows the same rules: a chunk matches when it
holds any of the words, and one with more of them ranks first.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pipeline import sql
from pipeline.adapters.memory_snapshot_store import InMemorySnapshotStore
from pipeline.adapters.memory_vector_store import InMemoryVectorStore
from pipeline.lexical import lexical_text
from pipeline.models import Hit, RepoRef
from pipeline.search_query import SearchFilters, SearchRequest, like_matches

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
        wanted = set(terms)
        scored = []
        for repo, row in self._rows(request):
            words = lexical_text(str(row[_CONTENT])).split()
            held = [w for w in words if w in wanted]
            if held:
                score = len(set(held)) + len(held) / (len(held) + 1) / (1 + math.log(len(words)))
                scored.append((score, repo, row))
        scored.sort(key=lambda s: (-s[0], s[2][_PATH], s[2][_START]))
        return [_hit(repo, row, score) for score, repo, row in scored[:limit]]

    def _rows(self, request: SearchRequest) -> list[tuple[str, sql.ChunkRow]]:
        names = request.repos or [
            str(r["name"]) for r in self._snapshots.repositories(request.tenant)
        ]
        found = []
        for name in names:
            repo = RepoRef(request.tenant, name)
            files = self._snapshots.searchable_files(repo)
            for row in self._vectors.rows(repo):
                listed = files.get(str(row[_PATH]))
                if (
                    listed is not None
                    and listed.sha256 == row[_SHA]
                    and _passes(request.filters, row)
                ):
                    found.append((name, row))
        return found


def _passes(filters: SearchFilters, row: sql.ChunkRow) -> bool:
    if filters.languages and row[_LANG] not in filters.languages:
        return False
    if filters.kinds and row[_KIND] not in filters.kinds:
        return False
    patterns = filters.path_patterns
    return not patterns or any(like_matches(p, str(row[_PATH])) for p in patterns)


def _hit(repo: str, row: sql.ChunkRow, score: float) -> Hit:
    chunk_id, path, _sha, start, end, _sb, _eb, symbol, kind, language, content, *_ = row
    return Hit(repo, chunk_id, path, start, end, symbol, kind, language, content, score)
