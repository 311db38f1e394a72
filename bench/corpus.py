"""A benchmark corpus: a folder or a source distribution, chunked as the pipeline would.

Shared by ``quarry bench embed`` and ``quarry bench e2e`` (a module of its own, so that
the benchmark commands do not import each other).

Must not import: api/.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer

from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.selection import select_files
from pipeline.messages import FileChunks
from pipeline.models import FileVersion, RepoRef


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str
    batches: tuple[FileChunks, ...]

    @property
    def texts(self) -> list[str]:
        seen: dict[str, str] = {}
        for batch in self.batches:
            for chunk in batch.chunks:
                seen.setdefault(chunk.content_hash, chunk.text)
        return list(seen.values())


@contextmanager
def corpus_root(path: Path) -> Iterator[Path]:
    """A folder, or a source distribution (.tar.gz) unpacked into a scratch folder."""
    if path.is_dir():
        yield path
        return
    if not tarfile.is_tarfile(path):
        raise typer.BadParameter(f"{path}: neither a folder nor a .tar.gz archive")
    scratch = Path(tempfile.mkdtemp(prefix="quarry-corpus-"))
    try:
        with tarfile.open(path) as archive:
            archive.extractall(scratch, filter="data")
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_corpus(root: Path, repo: RepoRef, limit_files: int | None) -> Corpus:
    counter = model_token_counter()
    selection = select_files(root)
    batches: list[FileChunks] = []
    for rel in selection.files[:limit_files]:
        data = (root / rel).read_bytes()
        analysis = analyze_file(rel, data, counter=counter)
        if not isinstance(analysis, FileAnalysis) or not analysis.chunks:
            continue
        version = FileVersion(
            rel, hashlib.sha256(data).hexdigest(), analysis.source.language, len(data)
        )
        batches.append(FileChunks(None, repo, version, analysis.chunks))
    return Corpus(root.name, tuple(batches))
