"""Code graphs of small Python sources, built as the pipeline builds them (analysis, then
call resolution across the files), for the graph store and search tests."""

from __future__ import annotations

import hashlib

from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.resolution import resolve_across_files
from pipeline.models import FileGraph, FileVersion


def file_graphs(sources: dict[str, str], *, only: set[str] | None = None) -> list[FileGraph]:
    """Analyse every source together (cross-file resolution), keep those in ``only``."""
    paths = RepoPaths(sources)
    analyses: dict[str, FileAnalysis] = {}
    for path, text in sources.items():
        analysis = analyze_file(path, text.encode(), repo=paths)
        assert isinstance(analysis, FileAnalysis)
        analyses[path] = analysis
    graphs = []
    for extraction in resolve_across_files([a.extraction for a in analyses.values()]):
        path, data = extraction.path, sources[extraction.path].encode()
        version = FileVersion(path, hashlib.sha256(data).hexdigest(), "python", len(data))
        chunks = tuple((c.chunk_id, c.symbol) for c in analyses[path].chunks)
        if only is None or path in only:
            graphs.append(FileGraph(version, extraction, chunks))
    return graphs
