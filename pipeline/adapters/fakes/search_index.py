"""InMemorySearchIndex: a behaving fake of the search index, over the in-memory stores.

Reads the rows of an :class:`InMemoryVectorStore` through the searchable snapshots of an
:class:`InMemorySnapshotStore`, as the real index reads ``chunks`` through ``files``:
same scoping, same filters, exact cosine ranking, and the same BM25 for full text (N: the
rows in scope; document frequencies over the matched rows; lengths in distinct words),
over words split as PostgreSQL's parser splits them.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.models import Hit, RepoRef
from pipeline.search.lexical import lexical_text
from pipeline.search.query import SearchFilters, SearchRequest, like_matches
from pipeline.statements import sql
from pipeline.statements.search_sql import BM25_B, BM25_K1

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
        phrases = [tuple(_lexemes(term)) for term in terms]
        wanted = {word for phrase in phrases for word in phrase}
        rows = self._rows(request, filtered=False)
        matched = []
        for repo, row in rows:
            if _passes(request.filters, row):
                words = _lexemes(lexical_text(str(row[_CONTENT])))
                if any(_holds(words, phrase) for phrase in phrases if phrase):
                    held = Counter(w for w in words if w in wanted)
                    matched.append((repo, row, held, len(set(words))))
        if not matched:
            return []
        df = Counter(term for *_, held, _dl in matched for term in held)
        n = max(len(rows), len(matched))
        avgdl = max(1.0, sum(dl for *_, dl in matched) / len(matched))
        scored = []
        for repo, row, held, dl in matched:
            score = sum(
                math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                * tf
                * (BM25_K1 + 1)
                / (tf + BM25_K1 * (1 - BM25_B + BM25_B * dl / avgdl))
                for t, tf in held.items()
            )
            scored.append((score, repo, row))
        scored.sort(key=lambda s: (-s[0], s[2][_PATH], s[2][_START]))
        return [_hit(repo, row, score) for score, repo, row in scored[:limit]]

    def _rows(
        self, request: SearchRequest, filtered: bool = True
    ) -> list[tuple[str, sql.ChunkRow]]:
        names = request.repos or [
            str(r["name"]) for r in self._snapshots.repositories(request.tenant)
        ]
        found = []
        for name in names:
            repo = RepoRef(request.tenant, name)
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


def _holds(words: list[str], phrase: tuple[str, ...]) -> bool:
    """Whether ``phrase`` occurs in ``words`` as consecutive words (a quoted tsquery term
    of several words is a phrase: ``'parse_http_header'`` is parse <-> http <-> header)."""
    width = len(phrase)
    return any(tuple(words[i : i + width]) == phrase for i in range(len(words) - width + 1))


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
