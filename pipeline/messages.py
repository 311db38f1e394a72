"""JSON shapes of the messages between stages, and their strict decoding.

Owns what travels on the embed and write queues: one file version's chunks (and, on
the write queue, their vectors as base64 float32) and one file's graph. Decoding
checks every field and raises :class:`InvalidInputError` naming the field, so that a
malformed message is a permanent error (dead-lettered), never a crash in a worker.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.errors import InvalidInputError
from pipeline.models import (
    Chunk,
    ChunkKind,
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

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FileChunks:
    """One file version's chunks on their way through embed and write."""

    job_id: str | None
    repo: RepoRef
    file: FileVersion
    chunks: tuple[Chunk, ...]


def _field(payload: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(payload, Mapping):
        raise InvalidInputError(f"{where}: expected an object, got {type(payload).__name__}")
    value = payload.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidInputError(f"{where}.{name}: missing or not {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def encode_repo(repo: RepoRef) -> Payload:
    return {"tenant": repo.tenant, "name": repo.name}


def decode_repo(payload: Any, where: str = "repo") -> RepoRef:
    return RepoRef(_field(payload, "tenant", str, where), _field(payload, "name", str, where))


def encode_file(file: FileVersion) -> Payload:
    return {
        "path": file.path,
        "sha256": file.sha256,
        "language": file.language,
        "size_bytes": file.size_bytes,
    }


def decode_file(payload: Any, where: str = "file") -> FileVersion:
    return FileVersion(
        path=_field(payload, "path", str, where),
        sha256=_field(payload, "sha256", str, where),
        language=_field(payload, "language", str, where),
        size_bytes=_field(payload, "size_bytes", int, where),
    )


def encode_span(span: Span) -> list[int]:
    return [span.start_line, span.end_line, span.start_byte, span.end_byte]


def decode_span(value: Any, where: str) -> Span:
    if not (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidInputError(f"{where}.span: expected four integers")
    return Span(*value)


def encode_chunk(chunk: Chunk) -> Payload:
    return {
        "id": chunk.chunk_id,
        "span": encode_span(chunk.span),
        "symbol": chunk.symbol,
        "kind": chunk.kind.value,
        "hash": chunk.content_hash,
        "tokens": chunk.tokens,
        "text": chunk.text,
    }


def decode_chunk(payload: Any, file: FileVersion, where: str) -> Chunk:
    kind = _field(payload, "kind", str, where)
    try:
        chunk_kind = ChunkKind(kind)
    except ValueError:
        raise InvalidInputError(f"{where}.kind: unknown chunk kind {kind!r}") from None
    return Chunk(
        chunk_id=_field(payload, "id", str, where),
        path=file.path,
        language=file.language,
        span=decode_span(payload.get("span"), where),
        symbol=_field(payload, "symbol", str, where),
        kind=chunk_kind,
        content_hash=_field(payload, "hash", str, where),
        tokens=_field(payload, "tokens", int, where),
        text=_field(payload, "text", str, where),
    )


def encode_file_chunks(batch: FileChunks) -> Payload:
    return {
        "job_id": batch.job_id,
        "repo": encode_repo(batch.repo),
        "file": encode_file(batch.file),
        "chunks": [encode_chunk(c) for c in batch.chunks],
    }


def decode_file_chunks(payload: Any) -> FileChunks:
    job_id = payload.get("job_id") if isinstance(payload, Mapping) else None
    if job_id is not None and not isinstance(job_id, str):
        raise InvalidInputError("message.job_id: not a string")
    file = decode_file(_field(payload, "file", Mapping, "message"))
    raw_chunks = _field(payload, "chunks", list, "message")
    chunks = tuple(
        decode_chunk(c, file, f"chunks[{i}] of {file.path}") for i, c in enumerate(raw_chunks)
    )
    return FileChunks(job_id, decode_repo(payload.get("repo")), file, chunks)


def encode_vectors(vectors: Sequence[npt.NDArray[np.float32] | None]) -> list[str | None]:
    """Each vector as base64 of its float32 bytes (a sixth of the size of JSON floats)."""
    return [
        None if v is None else base64.b64encode(np.asarray(v, np.float32).tobytes()).decode()
        for v in vectors
    ]


def decode_vectors(values: Any, count: int, dimension: int | None = None) -> list[Any]:
    """The vectors of a write message; ``None`` stays None (a chunk without a vector)."""
    if not isinstance(values, list) or len(values) != count:
        raise InvalidInputError(f"message.vectors: expected a list of {count} entries")
    decoded: list[npt.NDArray[np.float32] | None] = []
    for index, value in enumerate(values):
        if value is None:
            decoded.append(None)
            continue
        try:
            raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if not raw or len(raw) % 4 or (dimension and len(raw) != 4 * dimension):
            raise InvalidInputError(f"message.vectors[{index}]: not a float32 vector")
        decoded.append(np.frombuffer(raw, dtype=np.float32).copy())
    return decoded


def encode_symbol(symbol: Symbol) -> Payload:
    return {
        "name": symbol.name,
        "qualified_name": symbol.qualified_name,
        "kind": symbol.kind.value,
        "span": encode_span(symbol.span),
        "parent": symbol.parent,
    }


def decode_symbol(payload: Any, path: str, where: str) -> Symbol:
    parent = payload.get("parent") if isinstance(payload, Mapping) else None
    if parent is not None and not isinstance(parent, str):
        raise InvalidInputError(f"{where}.parent: not a string")
    kind = _field(payload, "kind", str, where)
    try:
        symbol_kind = SymbolKind(kind)
    except ValueError:
        raise InvalidInputError(f"{where}.kind: unknown symbol kind {kind!r}") from None
    return Symbol(
        name=_field(payload, "name", str, where),
        qualified_name=_field(payload, "qualified_name", str, where),
        kind=symbol_kind,
        path=path,
        span=decode_span(payload.get("span"), where),
        parent=parent,
    )


def encode_edge(edge: Edge) -> list[Any]:
    return [edge.kind.value, edge.source, edge.target, edge.resolved, edge.line]


def decode_edge(value: Any, path: str, where: str) -> Edge:
    if not (isinstance(value, list) and len(value) == 5):
        raise InvalidInputError(f"{where}: expected [kind, source, target, resolved, line]")
    kind, source, target, resolved, line = value
    try:
        edge_kind = EdgeKind(kind)
    except ValueError:
        raise InvalidInputError(f"{where}: unknown edge kind {kind!r}") from None
    if not (isinstance(source, str) and isinstance(target, str) and isinstance(resolved, bool)):
        raise InvalidInputError(f"{where}: source and target must be strings")
    if not isinstance(line, int) or isinstance(line, bool):
        raise InvalidInputError(f"{where}: line must be an integer")
    return Edge(edge_kind, source, target, resolved, path, line)


def encode_file_graph(job_id: str | None, repo: RepoRef, graph: FileGraph) -> Payload:
    extraction = graph.extraction
    return {
        "job_id": job_id,
        "repo": encode_repo(repo),
        "file": encode_file(graph.file),
        "module": extraction.module,
        "parse_failed": extraction.parse_failed,
        "symbols": [encode_symbol(s) for s in extraction.symbols],
        "edges": [encode_edge(e) for e in extraction.edges],
        "chunks": [list(pair) for pair in graph.chunks],
    }


def decode_file_graph(payload: Any) -> tuple[str | None, RepoRef, FileGraph]:
    job_id = payload.get("job_id") if isinstance(payload, Mapping) else None
    if job_id is not None and not isinstance(job_id, str):
        raise InvalidInputError("message.job_id: not a string")
    repo = decode_repo(payload.get("repo"))
    file = decode_file(_field(payload, "file", Mapping, "message"))
    where = f"graph of {file.path}"
    symbols = tuple(
        decode_symbol(s, file.path, f"{where}.symbols[{i}]")
        for i, s in enumerate(_field(payload, "symbols", list, where))
    )
    edges = tuple(
        decode_edge(e, file.path, f"{where}.edges[{i}]")
        for i, e in enumerate(_field(payload, "edges", list, where))
    )
    chunks: list[tuple[str, str]] = []
    for i, pair in enumerate(_field(payload, "chunks", list, where)):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise InvalidInputError(f"{where}.chunks[{i}]: expected [chunk id, symbol]")
        chunks.append((pair[0], pair[1]))
    extraction = FileExtraction(
        path=file.path,
        language=file.language,
        module=_field(payload, "module", str, where),
        symbols=symbols,
        edges=edges,
        parse_failed=bool(payload.get("parse_failed", False)),
    )
    return job_id, repo, FileGraph(file, extraction, tuple(chunks))


def decode_more_vectors(values: Any, count: int) -> dict[str, list[Any]]:
    """The vectors of other models in a write message (``more_vectors``: model id ->
    vectors, as ``vectors``); absent: none."""
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) and k for k in values):
        raise InvalidInputError("message.more_vectors: expected an object of model id -> vectors")
    return {model_id: decode_vectors(got, count) for model_id, got in values.items()}
