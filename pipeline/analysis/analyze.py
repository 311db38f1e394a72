"""One file in, chunks and graph out: the entry point the producer and the CLI call.

Owns the order of the per-file steps: content checks (size, binary, minified,
generated), decoding, one parse under a time limit shared by chunking and graph
extraction, and the line-window fallback when there is no usable tree.

A text that a grammar cannot be trusted with (it would crash the process, or take
time or memory that the parse time limit does not bound: :mod:`pipeline.analysis.parse_limits`)
is not parsed: it gets line windows, and ``unparsed_reason`` says why.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.analysis.chunking import ChunkingOptions, chunk_source
from pipeline.analysis.encoding import source_file
from pipeline.analysis.extraction import extract_graph
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.languages import has_grammar
from pipeline.analysis.parse_limits import unsafe_to_parse
from pipeline.analysis.parsing import parse
from pipeline.analysis.selection import content_skip_reason
from pipeline.analysis.tokens import TokenCounter
from pipeline.models import Chunk, FileExtraction, SkippedFile, SourceFile


@dataclass(frozen=True, slots=True)
class FileAnalysis:
    """A file's chunks and graph. ``parse_timed_out``: chunks are line windows.
    ``unparsed_reason``: why the file was not parsed (line windows too), or None."""

    source: SourceFile
    chunks: tuple[Chunk, ...]
    extraction: FileExtraction
    parse_timed_out: bool = False
    unparsed_reason: str | None = None


def analyze_file(
    path: str,
    data: bytes,
    *,
    options: ChunkingOptions | None = None,
    counter: TokenCounter | None = None,
    repo: RepoPaths | None = None,
    check_content: bool = True,
) -> FileAnalysis | SkippedFile:
    """Chunks and graph of ``data`` read from repo-relative ``path``, or why it was skipped."""
    opts = options or ChunkingOptions()
    if check_content:
        skipped = content_skip_reason(path, data, max_file_bytes=opts.max_file_bytes)
        if skipped is not None:
            return skipped
    source = source_file(path, data)
    unparsed = unsafe_to_parse(source.language, source.text)
    tree = None
    if source.text and unparsed is None:
        tree = parse(source.text.encode("utf-8"), source.language, opts.parse_timeout_s)
    timed_out = tree is None and bool(source.text) and unparsed is None
    timed_out = timed_out and has_grammar(source.language)
    extraction = extract_graph(path, source.language, source.text, tree, repo)
    chunks = chunk_source(
        path,
        source.language,
        source.text,
        tree=tree,
        symbols=extraction.symbols,
        module=extraction.module,
        options=opts,
        counter=counter,
    )
    return FileAnalysis(source, chunks, extraction, timed_out, unparsed)
