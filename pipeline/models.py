"""Frozen values that flow through the pipeline: source files, chunks, symbols and edges.

Owns the plain data shapes only; no behaviour beyond trivial derived properties.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver or model library.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


class ChunkKind(enum.StrEnum):
    """What a chunk mainly holds; ``other`` for prose, text and line windows."""

    FUNCTION = "function"
    METHOD = "method"
    CLASS = "class"
    MODULE = "module"
    OTHER = "other"


class SymbolKind(enum.StrEnum):
    """The kinds of definition the code graph records."""

    MODULE = "module"
    CLASS = "class"
    FUNCTION = "function"
    METHOD = "method"


class EdgeKind(enum.StrEnum):
    """Relations between files and symbols in the code graph."""

    DEFINES = "defines"
    IMPORTS = "imports"
    CALLS = "calls"
    CONTAINS = "contains"
    INHERITS = "inherits"


class SkipReason(enum.StrEnum):
    """Why a file was not chunked; every skipped file carries exactly one."""

    IGNORED = "ignored"
    DEFAULT_EXCLUDED = "default_excluded"
    TOO_LARGE = "too_large"
    BINARY = "binary"
    MINIFIED = "minified"
    GENERATED = "generated"
    SYMLINK_OUTSIDE_ROOT = "symlink_outside_root"
    SYMLINKED_DIRECTORY = "symlinked_directory"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a file: 1-based inclusive lines and 0-based half-open byte offsets."""

    start_line: int
    end_line: int
    start_byte: int
    end_byte: int


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A decoded file ready for parsing.

    ``text`` is the cleaned text (NUL bytes removed, undecodable bytes replaced); all
    byte offsets in chunks and symbols refer to ``text`` encoded as UTF-8.
    """

    path: str
    language: str
    text: str
    encoding: str
    replaced_count: int = 0
    removed_nul_count: int = 0

    @property
    def had_decode_errors(self) -> bool:
        return self.replaced_count > 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a file, sized for the embedding model."""

    chunk_id: str
    path: str
    language: str
    span: Span
    symbol: str
    kind: ChunkKind
    content_hash: str
    tokens: int
    text: str

    @property
    def start_line(self) -> int:
        return self.span.start_line

    @property
    def end_line(self) -> int:
        return self.span.end_line


@dataclass(frozen=True, slots=True)
class Symbol:
    """A definition: module, class, function or method."""

    name: str
    qualified_name: str
    kind: SymbolKind
    path: str
    span: Span
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """A relation; ``resolved`` is False when ``target`` is a bare, unresolved name."""

    kind: EdgeKind
    source: str
    target: str
    resolved: bool
    path: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class FileExtraction:
    """Everything the code graph learns from one file."""

    path: str
    language: str
    module: str
    symbols: tuple[Symbol, ...] = ()
    edges: tuple[Edge, ...] = ()
    parse_failed: bool = False


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that selection or chunking left out, with the reason and a short detail."""

    path: str
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Selection:
    """The result of walking a tree: files to process and files skipped, with reasons."""

    files: tuple[str, ...] = ()
    skipped: tuple[SkippedFile, ...] = field(default_factory=tuple)

    def skipped_by_reason(self) -> dict[SkipReason, int]:
        counts: dict[SkipReason, int] = {}
        for item in self.skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts


@dataclass(frozen=True, slots=True)
class RepoRef:
    """A repository as the stores know it: its tenant and its name within the tenant.

    ``key`` is the stable prefix of every graph id of the repository, so that two tenants
    (or two repositories) never share a node.
    """

    tenant: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One version of one file: the unit a snapshot lists and the stores replace."""

    path: str
    sha256: str
    language: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class SnapshotChanges:
    """How a snapshot differs from the one its ref holds (a new ref: the default ref's):
    ``changed``, the paths whose version differs or that only one of them lists;
    ``deleted``, those of them the ref's own snapshot lists and this one does not (none
    for a new ref); ``files``, how many files the snapshot lists."""

    changed: frozenset[str]
    deleted: tuple[str, ...]
    files: int


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as the vector store holds it: the chunk, its file version and its vector.

    ``embedding`` is an L2-normalised float32 vector (a sequence of floats; a numpy
    array in practice), or None for a chunk that has no vector yet. It takes no part
    in equality.
    """

    chunk: Chunk
    file_sha256: str
    model_id: str
    embedding: npt.NDArray[np.float32] | Sequence[float] | None = field(default=None, compare=False)
    # Vectors of other models by model id (a model being backfilled: pipeline.embedding_models);
    # a model named with None: a blank chunk, which gets no vector.
    extra: Mapping[str, npt.NDArray[np.float32] | None] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class FileGraph:
    """What the graph store writes for one file version: its symbols, edges and chunks.

    ``chunks`` are (chunk id, qualified name of the symbol the chunk belongs to, or
    ``""``) so that a vector hit maps to a graph node.
    """

    file: FileVersion
    extraction: FileExtraction
    chunks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A task that failed for good: its name, arguments, the error and when.

    ``payload`` holds the task's JSON arguments unchanged, so that a replay sends the
    same task again.
    """

    letter_id: str
    task: str
    payload: Mapping[str, Any]
    error: str
    attempts: int
    failed_at: float


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk of a repository's searchable snapshot found by one retriever, with that
    retriever's score (cosine similarity, or full-text rank)."""

    repo: str
    chunk_id: str
    path: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    content: str
    score: float
    body_bytes: int | None = None  # the content's last bytes that are the file's own text

    @property
    def body(self) -> str:
        """The chunk's text without the header (path, symbol) that was embedded with it."""
        if self.body_bytes is None:
            return self.content
        data = self.content.encode("utf-8")
        return data[max(0, len(data) - self.body_bytes) :].decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class GraphSymbol:
    """A symbol node as graph reads return it. A placeholder (a target defined in a file
    not written yet, or outside the repository) has only its qualified name."""

    qualified_name: str
    name: str = ""
    kind: str = ""
    path: str = ""
    start_line: int = 0
    end_line: int = 0


@dataclass(frozen=True, slots=True)
class SymbolLink:
    """One ``CALLS``, ``CONTAINS`` or ``INHERITS`` edge between two symbols."""

    relation: str
    source: GraphSymbol
    target: GraphSymbol
