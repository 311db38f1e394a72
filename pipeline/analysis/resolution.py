"""Cross-file resolution of call and inheritance edges over many files' extractions.

Owns the second pass of graph extraction: an edge left unresolved in its own file (a
bare callee or base name) is resolved to a symbol defined elsewhere in the repository
when that is unambiguous: exactly one candidate among the files the caller's file
imports, or else exactly one candidate in the whole repository.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pipeline.models import Edge, EdgeKind, FileExtraction, Symbol, SymbolKind

_CALLABLE = frozenset({SymbolKind.FUNCTION, SymbolKind.METHOD, SymbolKind.CLASS})
_BASES = frozenset({SymbolKind.CLASS})


def resolve_across_files(extractions: Sequence[FileExtraction]) -> tuple[FileExtraction, ...]:
    """The same extractions with unresolved calls and bases resolved where unambiguous."""
    by_name: dict[str, list[Symbol]] = {}
    for extraction in extractions:
        for symbol in extraction.symbols:
            by_name.setdefault(symbol.name, []).append(symbol)
    result: list[FileExtraction] = []
    for extraction in extractions:
        imported = frozenset(
            e.target for e in extraction.edges if e.kind is EdgeKind.IMPORTS and e.resolved
        )
        edges = tuple(_resolve(edge, by_name, imported) for edge in extraction.edges)
        result.append(dataclasses.replace(extraction, edges=edges))
    return tuple(result)


def _resolve(edge: Edge, by_name: dict[str, list[Symbol]], imported: frozenset[str]) -> Edge:
    if edge.resolved or edge.kind not in {EdgeKind.CALLS, EdgeKind.INHERITS}:
        return edge
    kinds = _CALLABLE if edge.kind is EdgeKind.CALLS else _BASES
    name = edge.target.replace("::", ".").rsplit(".", 1)[-1].split("<", 1)[0]
    candidates = [s for s in by_name.get(name, ()) if s.kind in kinds]
    preferred = [s for s in candidates if s.path in imported]
    for group in (preferred, candidates):
        if len(group) == 1:
            return dataclasses.replace(edge, target=group[0].qualified_name, resolved=True)
        if group:
            break
    return edge
