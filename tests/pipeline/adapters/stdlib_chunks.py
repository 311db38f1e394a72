"""Real code chunks for embedder tests: the standard library's textwrap and shlex, chunked
as the pipeline chunks them."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file


def stdlib_chunks() -> list[str]:
    counter = model_token_counter()
    texts: list[str] = []
    for module in (textwrap, shlex):
        path = Path(str(module.__file__))
        result = analyze_file(path.name, path.read_bytes(), counter=counter)
        assert isinstance(result, FileAnalysis)
        texts.extend(chunk.text for chunk in result.chunks)
    return texts
