"""Graph extraction: definitions, imports, calls, containment and inheritance per file.

Owns running the per-language tree-sitter queries (data files
``pipeline/analysis/queries/<lang>.scm``) and turning their captures into
:class:`Symbol` and :class:`Edge` values. Capture names are the contract with those
files:

* ``@definition.class|function|method|module`` on a definition, ``@name`` on its name,
  optional ``@receiver`` (the type a Go, Rust or C++ method belongs to);
* ``@import`` with ``@import.module`` (quotes stripped) and optional ``@import.name``;
* ``@call`` with ``@call.name`` on the callee's last name;
* ``@inherit.class`` with one ``@inherit.base`` per base; ``@_x`` captures are helpers.

Calls resolve within the file when exactly one definition has the callee's name;
:func:`pipeline.analysis.resolution.resolve_across_files` does the rest over many files.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; reads only its own
query files.
"""

from __future__ import annotations

import bisect
import functools
import posixpath
from dataclasses import dataclass
from importlib import resources

from tree_sitter import Node, Query, QueryCursor, Tree

from pipeline.analysis.imports import RepoPaths, resolve_import
from pipeline.analysis.languages import grammar, has_grammar
from pipeline.models import Edge, EdgeKind, FileExtraction, Span, Symbol, SymbolKind

# Files that stand for their folder: Python packages, JS index modules, Rust mod.rs.
_PACKAGE_FILES = {"__init__": ".py", "index": ".js", "mod": ".rs"}
_KIND_PRIORITY = {"method": 3, "class": 2, "module": 2, "function": 1}
_CLASS_KINDS = frozenset({SymbolKind.CLASS})


@dataclass(slots=True)
class _Definition:
    node: Node
    kind: str
    name: str
    receiver: str | None


def module_name(path: str) -> str:
    """Dotted module name from a repo path: ``pkg/mod/__init__.py`` -> ``pkg.mod``."""
    stem, ext = posixpath.splitext(path)
    parts = [p for p in stem.split("/") if p not in {"", "."}]
    if len(parts) > 1 and _PACKAGE_FILES.get(parts[-1]) == ext.lower():
        parts.pop()
    return ".".join(parts) or path


# The TSX grammar extends TypeScript's with JSX; the same definitions, imports and calls
# are captured by the same patterns, so both languages share one query file.
_QUERY_FILE = {"tsx": "typescript"}


@functools.cache
def _query(language: str) -> Query | None:
    lang = grammar(language)
    name = _QUERY_FILE.get(language, language)
    source = resources.files("pipeline.analysis").joinpath("queries", f"{name}.scm")
    if lang is None or not source.is_file():
        return None
    return Query(lang, source.read_text(encoding="utf-8"))


def extract_graph(
    path: str,
    language: str,
    text: str,
    tree: Tree | None,
    repo: RepoPaths | None = None,
) -> FileExtraction:
    """Symbols and edges of one file. ``tree`` None (no grammar, timeout) gives the module only."""
    data = text.encode("utf-8")
    module = module_name(path)
    last_line = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    module_symbol = Symbol(
        name=module.rsplit(".", 1)[-1],
        qualified_name=module,
        kind=SymbolKind.MODULE,
        path=path,
        span=Span(1, max(last_line, 1), 0, len(data)),
    )
    edges: list[Edge] = [
        Edge(EdgeKind.DEFINES, path, module, True, path, 1),
        Edge(EdgeKind.CONTAINS, path, module, True, path, 1),
    ]
    query = _query(language)
    if tree is None or query is None:
        parse_failed = tree is None and has_grammar(language) and bool(text)
        return FileExtraction(path, language, module, (module_symbol,), tuple(edges), parse_failed)
    matches = QueryCursor(query).matches(tree.root_node)
    builder = _Builder(path, language, data, module, repo)
    for _pattern, captures in matches:
        builder.add(captures)
    symbols = builder.symbols()
    edges += builder.edges(symbols)
    return FileExtraction(path, language, module, (module_symbol, *symbols), tuple(edges))


def _text(data: bytes, node: Node) -> str:
    return data[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _span(node: Node) -> Span:
    return Span(node.start_point.row + 1, node.end_point.row + 1, node.start_byte, node.end_byte)


def _last_name(text: str) -> str:
    for separator in ("::", "\\", "."):
        text = text.rsplit(separator, 1)[-1]
    return text.split("<", 1)[0].split("[", 1)[0].strip()


class _Builder:
    def __init__(
        self, path: str, language: str, data: bytes, module: str, repo: RepoPaths | None
    ) -> None:
        self.path, self.language, self.data, self.module, self.repo = (
            path,
            language,
            data,
            module,
            repo,
        )
        self.defs: dict[tuple[int, int], _Definition] = {}
        self.calls: list[tuple[int, int, str]] = []
        self.imports: list[tuple[int, str, str | None]] = []
        self.bases: list[tuple[Node, str]] = []

    def add(self, captures: dict[str, list[Node]]) -> None:
        for key, nodes in captures.items():
            if key.startswith("definition.") and "name" in captures:
                self._add_definition(key.removeprefix("definition."), nodes[0], captures)
            elif key == "call" and "call.name" in captures:
                node = nodes[0]
                name = _last_name(_text(self.data, captures["call.name"][0]))
                self.calls.append((node.start_byte, node.start_point.row + 1, name))
            elif key == "import" and "import.module" in captures:
                names: list[str | None] = [
                    _text(self.data, n) for n in captures.get("import.name", ())
                ] or [None]
                for module_node in captures["import.module"]:
                    for imported in names:
                        module_text = _text(self.data, module_node)
                        row = nodes[0].start_point.row + 1
                        self.imports.append((row, module_text, imported))
            elif key == "inherit.class":
                for base in captures.get("inherit.base", ()):
                    self.bases.append((nodes[0], _text(self.data, base)))

    def _add_definition(self, kind: str, node: Node, captures: dict[str, list[Node]]) -> None:
        name = _text(self.data, captures["name"][0]).replace("::", ".")
        receiver_nodes = captures.get("receiver")
        receiver = _text(self.data, receiver_nodes[0]) if receiver_nodes else None
        key = (node.start_byte, node.end_byte)
        old = self.defs.get(key)
        if old is None or _KIND_PRIORITY.get(kind, 0) > _KIND_PRIORITY.get(old.kind, 0):
            self.defs[key] = _Definition(node, kind, name, receiver)

    def symbols(self) -> list[Symbol]:
        ordered = sorted(self.defs.values(), key=lambda d: (d.node.start_byte, -d.node.end_byte))
        result: list[Symbol] = []
        open_stack: list[int] = []
        for definition in ordered:
            while open_stack and result[open_stack[-1]].span.end_byte < definition.node.end_byte:
                open_stack.pop()
            parent = result[open_stack[-1]] if open_stack else None
            kind = SymbolKind(definition.kind)
            if kind is SymbolKind.FUNCTION and parent is not None and parent.kind in _CLASS_KINDS:
                kind = SymbolKind.METHOD
            elif (
                kind is SymbolKind.METHOD
                and definition.receiver is None
                and (parent is None or parent.kind not in _CLASS_KINDS)
            ):
                kind = SymbolKind.FUNCTION
            prefix = parent.qualified_name if parent is not None else self.module
            if definition.receiver is not None and (
                parent is None or parent.kind is SymbolKind.MODULE
            ):
                prefix = f"{prefix}.{_last_name(definition.receiver)}"
            result.append(
                Symbol(
                    name=definition.name.rsplit(".", 1)[-1],
                    qualified_name=f"{prefix}.{definition.name}",
                    kind=kind,
                    path=self.path,
                    span=_span(definition.node),
                    parent=parent.qualified_name if parent is not None else self.module,
                )
            )
            open_stack.append(len(result) - 1)
        return result

    def edges(self, symbols: list[Symbol]) -> list[Edge]:
        path = self.path
        edges: list[Edge] = []
        by_name: dict[str, list[Symbol]] = {}
        for symbol in symbols:
            by_name.setdefault(symbol.name, []).append(symbol)
            line = symbol.span.start_line
            edges.append(Edge(EdgeKind.DEFINES, path, symbol.qualified_name, True, path, line))
            edges.append(
                Edge(
                    EdgeKind.CONTAINS,
                    symbol.parent or self.module,
                    symbol.qualified_name,
                    True,
                    path,
                    line,
                )
            )
        edges += self._import_edges()
        edges += self._call_edges(symbols, by_name)
        edges += self._inherit_edges(symbols, by_name)
        return edges

    def _import_edges(self) -> list[Edge]:
        seen: set[str] = set()
        edges: list[Edge] = []
        for line, module, name in self.imports:
            resolved = None
            if self.repo is not None:
                resolved = resolve_import(self.language, self.path, module, name, self.repo)
            target = resolved or module.strip().strip("\"'`<>")
            if target in seen or target == self.path:
                continue
            seen.add(target)
            edges.append(
                Edge(EdgeKind.IMPORTS, self.path, target, resolved is not None, self.path, line)
            )
        return edges

    def _call_edges(self, symbols: list[Symbol], by_name: dict[str, list[Symbol]]) -> list[Edge]:
        starts = [s.span.start_byte for s in symbols]
        index_of = {s.qualified_name: i for i, s in enumerate(symbols)}
        seen: set[tuple[str, str]] = set()
        edges: list[Edge] = []
        for start, line, name in sorted(self.calls):
            caller = self.module
            i = bisect.bisect_right(starts, start) - 1
            while i >= 0:
                symbol = symbols[i]
                if symbol.span.end_byte > start:
                    caller = symbol.qualified_name
                    break
                i = index_of.get(symbol.parent or "", -1)
            candidates = [s for s in by_name.get(name, ()) if s.kind is not SymbolKind.MODULE]
            resolved = len(candidates) == 1
            target = candidates[0].qualified_name if resolved else name
            if (caller, target) in seen or not name:
                continue
            seen.add((caller, target))
            edges.append(Edge(EdgeKind.CALLS, caller, target, resolved, self.path, line))
        return edges

    def _inherit_edges(self, symbols: list[Symbol], by_name: dict[str, list[Symbol]]) -> list[Edge]:
        by_span = {(s.span.start_byte, s.span.end_byte): s for s in symbols}
        edges: list[Edge] = []
        seen: set[tuple[str, str]] = set()
        for class_node, base_text in self.bases:
            symbol = by_span.get((class_node.start_byte, class_node.end_byte))
            if symbol is not None:
                source = symbol.qualified_name
            else:
                own = _last_name(_text(self.data, class_node))
                matches = [s for s in by_name.get(own, ()) if s.kind is SymbolKind.CLASS]
                source = matches[0].qualified_name if len(matches) == 1 else f"{self.module}.{own}"
            base = _last_name(base_text)
            candidates = [s for s in by_name.get(base, ()) if s.kind is SymbolKind.CLASS]
            resolved = len(candidates) == 1 and candidates[0].qualified_name != source
            target = candidates[0].qualified_name if resolved else base_text.strip()
            if (source, target) in seen:
                continue
            seen.add((source, target))
            edges.append(
                Edge(
                    EdgeKind.INHERITS,
                    source,
                    target,
                    resolved,
                    self.path,
                    class_node.start_point.row + 1,
                )
            )
        return edges
