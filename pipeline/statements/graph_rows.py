"""The code graph's model as rows: labels, relations, node ids and what a write sends.

Owns turning file graphs into the rows the Cypher of pipeline/statements/cypher.py
writes (see its docstring for the model), with the checks that values fit what the
driver can send. Pure: no driver, no I/O.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import InvalidInputError
from pipeline.models import EdgeKind, FileGraph, RepoRef

Row = dict[str, Any]


LABELS = ("Repository", "File", "Symbol", "Chunk")
RELATIONS = ("HAS_FILE", "DEFINES", "IMPORTS", "CONTAINS", "CALLS", "INHERITS", "HAS_CHUNK")


@dataclass(frozen=True, slots=True)
class Relation:
    """How one edge kind is written: end labels, and whether the target may be elsewhere."""

    source: str
    target: str
    placeholder_target: bool


# Edge kinds written from FileExtraction.edges, in write order.
EDGE_RELATIONS = {
    "CONTAINS": Relation("Symbol", "Symbol", placeholder_target=False),
    "CALLS": Relation("Symbol", "Symbol", placeholder_target=True),
    "INHERITS": Relation("Symbol", "Symbol", placeholder_target=True),
    "IMPORTS": Relation("File", "File", placeholder_target=True),
}
_MAX_INT = 2**63  # Bolt integers are signed 64-bit


def label(name: str) -> str:
    if name not in LABELS:
        raise ValueError(f"unknown node label {name!r}; expected one of {LABELS}")
    return name


def relation(name: str) -> str:
    if name not in RELATIONS:
        raise ValueError(f"unknown relationship type {name!r}; expected one of {RELATIONS}")
    return name


def repo_id(repo: RepoRef) -> str:
    """The repository's node id, its key; refuses keys that would make ids ambiguous."""
    if not repo.tenant or not repo.name or "/" in repo.tenant or "#" in repo.key:
        raise InvalidInputError(
            f"repository {repo.key!r}: tenant and name must be non-empty, the tenant "
            "without '/', neither with '#'"
        )
    return repo.key


def file_id(key: str, path: str) -> str:
    return f"{key}#file:{path}"


def symbol_id(key: str, qualified_name: str) -> str:
    return f"{key}#symbol:{qualified_name}"


def chunk_node_id(key: str, chunk_id: str) -> str:
    return f"{key}#chunk:{chunk_id}"


@dataclass(slots=True)
class GraphRows:
    """What one write sends: node rows and edge rows, deduplicated, ready to bind."""

    repository: Row
    files: list[Row] = field(default_factory=list)  # id, props
    symbols: list[Row] = field(default_factory=list)  # id, file, props
    chunks: dict[str, list[Row]] = field(default_factory=dict)  # owner label -> id, owner, props
    edges: dict[str, list[Row]] = field(default_factory=dict)  # type -> source, target, line, ...

    @property
    def file_ids(self) -> list[str]:
        return [row["id"] for row in self.files]

    def outgoing(self) -> set[tuple[str, str, str]]:
        """(type, source, target) of every edge out of the files and their symbols."""
        edges = {("DEFINES", r["file"], r["id"]) for r in self.symbols}
        edges |= {("HAS_CHUNK", r["owner"], r["id"]) for rs in self.chunks.values() for r in rs}
        edges |= {(k, r["source"], r["target"]) for k, rs in self.edges.items() for r in rs}
        return edges

    def count(self) -> int:
        """Nodes plus edges: a file brings HAS_FILE, a symbol DEFINES, a chunk HAS_CHUNK."""
        chunks = sum(len(rows) for rows in self.chunks.values())
        edges = sum(len(rows) for rows in self.edges.values())
        return 2 * (len(self.files) + len(self.symbols) + chunks) + edges


def graph_rows(repo: RepoRef, graphs: Sequence[FileGraph]) -> GraphRows:
    """Rows of a write; the last graph of a path wins. Raises InvalidInputError naming it."""
    key = repo_id(repo)
    rows = GraphRows({"repo": key, "tenant": repo.tenant, "name": repo.name})
    rows.chunks = {"Symbol": [], "File": []}
    rows.edges = {kind: [] for kind in EDGE_RELATIONS}
    for graph in {g.file.path: g for g in graphs}.values():
        _add_file(rows, key, graph)
    return rows


def _add_file(rows: GraphRows, key: str, graph: FileGraph) -> None:
    version, extraction = graph.file, graph.extraction
    path = version.path
    check = Checker(path)
    fid = file_id(key, check.text(path))
    rows.files.append(
        {
            "id": fid,
            "props": {
                "repo": key,
                "path": path,
                "sha256": check.text(version.sha256),
                "language": check.text(version.language),
                "size_bytes": check.int(version.size_bytes),
                "module": check.text(extraction.module),
            },
        }
    )
    own: set[str] = set()
    for symbol in extraction.symbols:
        sid = symbol_id(key, check.text(symbol.qualified_name))
        if sid in own:
            continue
        own.add(sid)
        props = {
            "repo": key,
            "path": path,
            "name": check.text(symbol.name),
            "qualified_name": symbol.qualified_name,
            "kind": symbol.kind.value,
            "start_line": check.int(symbol.span.start_line),
            "end_line": check.int(symbol.span.end_line),
        }
        rows.symbols.append({"id": sid, "file": fid, "props": props})
    seen: set[tuple[str, str, str]] = set()
    for edge in extraction.edges:
        if not edge.resolved or edge.kind is EdgeKind.DEFINES:
            continue
        kind = edge.kind.value.upper()
        if edge.kind is EdgeKind.IMPORTS:
            source = fid if edge.source == path else ""
            target = file_id(key, check.text(edge.target))
            placeholder = {"repo": key, "path": edge.target}
        else:
            source = symbol_id(key, edge.source)
            target = symbol_id(key, check.text(edge.target))
            placeholder = {"repo": key, "qualified_name": edge.target}
            if source not in own or (kind == "CONTAINS" and target not in own):
                continue
        if not source or (kind, source, target) in seen:
            continue
        seen.add((kind, source, target))
        row: Row = {"source": source, "target": target, "line": check.int(edge.line)}
        if EDGE_RELATIONS[kind].placeholder_target:
            row["placeholder"] = placeholder
        rows.edges[kind].append(row)
    for chunk_id, qualified_name in graph.chunks:
        owner = symbol_id(key, qualified_name) if qualified_name else ""
        owner_label = "Symbol" if owner in own else "File"
        cid = check.text(chunk_id)
        rows.chunks[owner_label].append(
            {
                "id": chunk_node_id(key, cid),
                "owner": owner if owner in own else fid,
                "props": {
                    "repo": key,
                    "chunk_id": cid,
                    "path": path,
                    "sha256": version.sha256,
                    "symbol": check.text(qualified_name),
                },
            }
        )


@dataclass(frozen=True, slots=True)
class Checker:
    """Values the driver cannot send (lone surrogates, integers past 64 bits), by file."""

    path: str

    def text(self, value: str) -> str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"graph write of {self.path!a}: {value!a} is not valid UTF-8"
                ) from exc
        return value

    def int(self, value: int) -> int:
        if not -_MAX_INT <= value < _MAX_INT:
            raise InvalidInputError(f"graph write of {self.path!a}: {value} exceeds 64 bits")
        return value
