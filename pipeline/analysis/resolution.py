"""Cross-file resolution of call and inheritance edges over many files' extractions.

Owns the second pass of graph extraction: an edge left unresolved in its own file (a
bare callee or base name) is resolved to a symbol defined elsewhere in the repository
when that is unambiguous: exactly one candidate among the files the caller's file
imports, or else exactly one candidate in the whole repository.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from pipeline.models import Edge, EdgeKind, FileExtraction, Symbol, SymbolKind

_CALLABLE = frozenset({SymbolKind.FUNCTION, SymbolKind.METHOD, SymbolKind.CLASS})
_BASES = frozenset({SymbolKind.CLASS})


def resolve_across_files(extractions: Sequence[FileExtraction]) -> tuple[FileExtraction, ...]:
    """The same extractions with unresolved calls and bases resolved where unambiguous."""
    return resolve_against(extractions, [s for e in extractions for s in e.symbols])


def resolve_against(
    extractions: Sequence[FileExtraction], symbols: Iterable[Symbol]
) -> tuple[FileExtraction, ...]:
    """The extractions with unresolved calls and bases resolved against ``symbols``, the
    repository's symbols (or only those :func:`wanted` names: enough for the same result,
    see ``SnapshotStore.symbol_candidates``)."""
    by_name: dict[str, list[Symbol]] = {}
    for symbol in symbols:
        by_name.setdefault(symbol.name, []).append(symbol)
    result: list[FileExtraction] = []
    for extraction in extractions:
        imported = _imported(extraction)
        edges = tuple(_resolve(edge, by_name, imported) for edge in extraction.edges)
        result.append(dataclasses.replace(extraction, edges=edges))
    return tuple(result)


@dataclasses.dataclass(frozen=True, slots=True)
class Wanted:
    """What resolving some extractions needs to know of the rest of the repository: the
    candidates of ``names`` of ``kinds``, all of them in ``preferred`` (imported) paths and
    two per name and kind elsewhere (two tell "several" from "exactly one")."""

    names: frozenset[str]
    kinds: frozenset[str]
    preferred: frozenset[str]


def wanted(extractions: Sequence[FileExtraction]) -> Wanted:
    """The names, kinds and imported paths that resolving ``extractions`` looks up."""
    names: set[str] = set()
    preferred: set[str] = set()
    for extraction in extractions:
        unresolved = [e for e in extraction.edges if _resolvable(e)]
        if unresolved:
            names.update(_name(e) for e in unresolved)
            preferred.update(_imported(extraction))
    kinds = frozenset(k.value for k in _CALLABLE | _BASES)
    return Wanted(frozenset(names), kinds, frozenset(preferred))


def _imported(extraction: FileExtraction) -> frozenset[str]:
    return frozenset(
        e.target for e in extraction.edges if e.kind is EdgeKind.IMPORTS and e.resolved
    )


def _resolvable(edge: Edge) -> bool:
    return not edge.resolved and edge.kind in {EdgeKind.CALLS, EdgeKind.INHERITS}


def _name(edge: Edge) -> str:
    return edge.target.replace("::", ".").rsplit(".", 1)[-1].split("<", 1)[0]


def _resolve(edge: Edge, by_name: dict[str, list[Symbol]], imported: frozenset[str]) -> Edge:
    if not _resolvable(edge):
        return edge
    kinds = _CALLABLE if edge.kind is EdgeKind.CALLS else _BASES
    candidates = [s for s in by_name.get(_name(edge), ()) if s.kind in kinds]
    preferred = [s for s in candidates if s.path in imported]
    for group in (preferred, candidates):
        if len(group) == 1:
            return dataclasses.replace(edge, target=group[0].qualified_name, resolved=True)
        if group:
            break
    return edge
