"""The index's ports: the embedding model and its caches, the vector, graph and
search stores.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pipeline.models import (
    FileGraph,
    GraphSymbol,
    Hit,
    RepoRef,
    StoredChunk,
    SymbolLink,
)
from pipeline.search.query import SearchRequest


class Embedder(Protocol):
    """A text embedding model on one device.

    ``embed`` runs one device batch and returns one L2-normalised float32 row per text;
    it raises :class:`~pipeline.errors.EmbeddingOutOfMemoryError` when the device runs
    out of memory for that batch (the caller halves the batch and retries). Texts longer
    than ``max_tokens`` word-pieces are truncated by the model.
    """

    @property
    def model_id(self) -> str:
        """Names the vector space: the model and the numeric path (``...+onnx-int8``)."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector, read from the model."""
        ...

    @property
    def device(self) -> str:
        """Where the model runs, for metrics and logs (``cpu``, ``cuda:0 NVIDIA H200``)."""
        ...

    @property
    def max_tokens(self) -> int:
        """The model's window in word-pieces, special tokens included."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-pieces of each text with the special tokens, before truncation."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One device batch: shape ``(len(texts), dimension)``, rows of unit length."""
        ...


class EmbeddingCache(Protocol):
    """Vectors keyed by (model id, content hash): identical content is embedded once."""

    def get_many(
        self, model_id: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """The cached vectors among ``content_hashes``; misses are absent from the result."""
        ...

    def put_many(self, model_id: str, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        """Store vectors by content hash; storing one twice keeps the first (idempotent)."""
        ...


class QueryEmbeddingCache(Protocol):
    """Query vectors for search, kept for a limited time."""

    def get(self, model_id: str, query: str) -> npt.NDArray[np.float32] | None:
        """The cached vector of ``query``, or None."""
        ...

    def put(self, model_id: str, query: str, vector: npt.NDArray[np.float32]) -> None:
        """Cache the vector of ``query`` for the configured lifetime."""
        ...


class VectorStore(Protocol):
    """Chunks with their vectors and full-text, one repository at a time.

    A chunk row is keyed by (repository, file version, chunk id), so that the chunks
    of a file's new version are written beside the old ones and the old ones are
    removed when the job commits. Every call is scoped to one tenant's repository and
    runs in one transaction.
    """

    def ensure_repository(self, repo: RepoRef) -> None:
        """Create the tenant and the repository if they do not exist (idempotent)."""
        ...

    def upsert_chunks(
        self,
        repo: RepoRef,
        chunks: Sequence[StoredChunk],
        *,
        whole_versions: bool = False,
        defer_index: bool = False,
    ) -> int:
        """Insert or update ``chunks``; returns how many rows were written.

        ``whole_versions``: ``chunks`` are all the chunks of their file versions (path,
        file sha256), so rows of those versions with other ids go, in the same
        transaction (a version chunked again by a newer chunker, CHUNKER_VERSION).
        ``defer_index``: the rows written with a vector wait for :meth:`index_pending`
        instead of entering the approximate index in this write (searchable either way)."""
        ...

    def index_pending(self, limit: int) -> int:
        """Add up to ``limit`` rows, of any tenant, that were written since to the
        approximate nearest-neighbour index; how many. A row waiting for it is already
        searchable (exactly); this only moves the index's cost off the job's path. A
        store without such an index has nothing waiting: 0."""
        ...

    def pending_rows(self) -> int:
        """How many rows wait for :meth:`index_pending`."""
        ...

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        """Delete every chunk of every version of ``paths``; returns rows deleted."""
        ...

    def retain_versions(self, repo: RepoRef, keep: Mapping[str, Collection[str]]) -> int:
        """For each path of ``keep``, delete the chunks of its versions (file sha256s) not in
        ``keep[path]``; other paths are untouched. Returns rows deleted."""
        ...

    def file_versions(self, repo: RepoRef) -> dict[str, frozenset[str]]:
        """The file versions that have chunks: path -> file sha256s."""
        ...

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        """Every stored chunk as (path, file sha256, chunk id)."""
        ...

    def delete_repository(self, repo: RepoRef) -> None:
        """Remove the repository's chunks (and the repository row)."""
        ...


class GraphStore(Protocol):
    """The code graph of repositories: files, symbols, chunks and their relations.

    Node ids start with the repository's ``RepoRef.key``. Writing a file replaces what
    the graph held of that path before (its symbols, chunks and outgoing edges), so a
    write replayed gives the same graph.
    """

    def write_files(self, repo: RepoRef, files: Sequence[FileGraph]) -> int:
        """Write each file's nodes and edges; returns the nodes plus edges written."""
        ...

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        """Remove the files, their symbols and chunks, and all their edges."""
        ...

    def file_versions(self, repo: RepoRef) -> dict[str, str]:
        """path -> file sha256 of every file node of the repository."""
        ...

    def chunk_ids(self, repo: RepoRef) -> set[str]:
        """The ids of every chunk node of the repository."""
        ...

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str]]:
        """(path, chunk id) of every chunk node of the repository."""
        ...

    def delete_repository(
        self, repo: RepoRef, on_batch: Callable[[int], None] | None = None
    ) -> int:
        """Remove every node of the repository, in bounded batches; the nodes removed.
        ``on_batch`` is called with each committed batch's count (progress)."""
        ...

    def find_symbols(self, repo: RepoRef, name: str, limit: int) -> list[GraphSymbol]:
        """Symbols whose qualified name is ``name``, else whose short name is (at most
        ``limit``, sorted by qualified name)."""
        ...

    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        """Every CALLS, CONTAINS and INHERITS edge into or out of the named symbols."""
        ...


class SearchIndex(Protocol):
    """The searchable snapshots of every repository, read by the two retrievers.

    Every read is scoped to the request's tenant, its repositories (all of the tenant's
    when it names none) and its filters, and sees in each repository only the snapshot
    of the request's commit, else its ref, else the default ref: chunks of file versions
    that snapshot lists.
    """

    def missing_repositories(self, tenant: str, names: Sequence[str]) -> list[str]:
        """The ``names`` that are not repositories of ``tenant``."""
        ...

    def selected(self, request: SearchRequest) -> dict[str, bool]:
        """Each repository of the request's scope -> whether its ref (or commit) selects a
        snapshot there (False: no such ref, or no ref holds exactly one matching commit)."""
        ...

    def vector_hits(
        self, request: SearchRequest, vector: npt.NDArray[np.float32], model_id: str, limit: int
    ) -> list[Hit]:
        """Up to ``limit`` chunks embedded by ``model_id``, nearest to ``vector`` first
        (score: cosine similarity)."""
        ...

    def lexical_hits(self, request: SearchRequest, terms: Sequence[str], limit: int) -> list[Hit]:
        """Up to ``limit`` chunks whose full text holds any of ``terms``, best first."""
        ...
