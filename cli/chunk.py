"""``quarry chunk PATH``: chunks or the code graph of a file or folder, with no service.

Owns the command's arguments and output formats (plain listing, JSON lines, graph JSON
lines). It is the composition root for chunking: it loads the embedding model's
WordPiece vocabulary from the model package and injects it as the token counter.
Must not import: celery, tasks/, workers/, api/, torch, or any driver.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.resolution import resolve_across_files
from pipeline.analysis.selection import select_files
from pipeline.analysis.tokens import CharBoundTokenCounter, TokenCounter
from pipeline.models import Chunk, FileExtraction, SkippedFile


def register(app: typer.Typer) -> None:
    """Add the ``chunk`` command to ``app``."""
    app.command("chunk")(chunk)


def chunk(
    path: Annotated[Path, typer.Argument(help="A file or a folder.")],
    *,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    graph: Annotated[
        bool, typer.Option("--graph", help="Print symbols and edges as JSON lines instead.")
    ] = False,
    header: Annotated[
        bool,
        typer.Option("--header/--no-header", help="Start each chunk's text with path and symbol."),
    ] = True,
    max_tokens: Annotated[int, typer.Option(help="The model's maximum sequence length.")] = 256,
    max_file_bytes: Annotated[int, typer.Option(help="Larger files are skipped.")] = 1_000_000,
    approximate_tokens: Annotated[
        bool,
        typer.Option(help="Count tokens by the vocabulary-free upper bound (smaller chunks)."),
    ] = False,
) -> None:
    """Print the chunks (or, with --graph, the symbols and edges) of PATH."""
    if not path.exists():
        typer.echo(f"quarry: error: path does not exist: {path}", err=True)
        raise typer.Exit(2)
    options = ChunkingOptions(
        max_tokens=max_tokens, include_header=header, max_file_bytes=max_file_bytes
    )
    counter = CharBoundTokenCounter() if approximate_tokens else model_token_counter()
    analyses = list(_analyze(path, options, counter))
    if graph:
        _print_graph([a.extraction for a in analyses])
        return
    console = Console(highlight=False, soft_wrap=True)
    for analysis in analyses:
        for item in analysis.chunks:
            if as_json:
                sys.stdout.write(json.dumps(_chunk_record(item), ensure_ascii=False) + "\n")
            else:
                _print_chunk(console, item)


def _analyze(path: Path, options: ChunkingOptions, counter: TokenCounter) -> Iterator[FileAnalysis]:
    if path.is_file():
        name = path.as_posix()
        result = analyze_file(name, _read(path), options=options, counter=counter)
        if isinstance(result, SkippedFile):
            _report_skip(result)
        else:
            _report_repairs(result)
            yield result
        return
    selection = select_files(path, max_file_bytes=options.max_file_bytes)
    for skipped in selection.skipped:
        _report_skip(skipped)
    repo = RepoPaths(selection.files)
    for rel in selection.files:
        try:
            data = _read(path / rel)
        except OSError as exc:
            typer.echo(f"skipped {rel}: unreadable ({exc})", err=True)
            continue
        result = analyze_file(rel, data, options=options, counter=counter, repo=repo)
        if isinstance(result, SkippedFile):
            _report_skip(result)
        else:
            _report_repairs(result)
            yield result


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _report_skip(skipped: SkippedFile) -> None:
    detail = f" ({skipped.detail})" if skipped.detail else ""
    typer.echo(f"skipped {skipped.path}: {skipped.reason.value}{detail}", err=True)


def _report_repairs(analysis: FileAnalysis) -> None:
    source = analysis.source
    if source.replaced_count or source.removed_nul_count:
        typer.echo(
            f"decoded {source.path} as {source.encoding}: {source.replaced_count} undecodable "
            f"bytes replaced, {source.removed_nul_count} NUL bytes removed",
            err=True,
        )
    if analysis.parse_timed_out:
        typer.echo(f"parse of {source.path} timed out: line windows", err=True)


def _chunk_record(item: Chunk) -> dict[str, object]:
    return {
        "path": item.path,
        "language": item.language,
        "start_line": item.start_line,
        "end_line": item.end_line,
        "symbol": item.symbol,
        "kind": item.kind.value,
        "content_hash": item.content_hash,
        "chunk_id": item.chunk_id,
        "tokens": item.tokens,
        "text": item.text,
    }


def _print_chunk(console: Console, item: Chunk) -> None:
    console.print(
        f"[bold]{item.path}:{item.start_line}-{item.end_line}[/bold] "
        f"[cyan]{item.kind.value}[/cyan] {item.symbol} [dim]({item.tokens} tokens)[/dim]",
        markup=True,
    )
    console.print(item.text, markup=False)
    console.print()


def _print_graph(extractions: list[FileExtraction]) -> None:
    for extraction in resolve_across_files(extractions):
        for symbol in extraction.symbols:
            record: dict[str, object] = {
                "type": "symbol",
                "name": symbol.name,
                "qualified_name": symbol.qualified_name,
                "kind": symbol.kind.value,
                "path": symbol.path,
                "start_line": symbol.span.start_line,
                "end_line": symbol.span.end_line,
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        for edge in extraction.edges:
            record = {
                "type": "edge",
                "kind": edge.kind.value,
                "source": edge.source,
                "target": edge.target,
                "resolved": edge.resolved,
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
