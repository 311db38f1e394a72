"""Training pairs for ``quarry model train``: (doc comment → code) mined from source folders.

The pure half of the command. A pair is made exactly as ``quarry eval`` makes a query
and its target (``cli.evaluation.build_set``, so every language with a doc-comment
reader, the same file rule, the same duplicate rule):

- **query**: the doc comment's first sentence without the function's own name
  (``cli.doc_comments.drop_name``), at least ``MIN_QUERY_WORDS`` words;
- **code**: the function's lines (decorators, attributes included) from the copy with
  every doc comment blanked, under the header the chunker puts on every indexed chunk
  (``pipeline.analysis.chunking.header_text``: path and symbol), so the model learns
  the text it will embed at index time, not a cleaner one.

Query texts shared by two functions are dropped (no single right answer), and so is a
pair whose code text is already taken (by another source too): in-batch negatives must
never be the positive's twin. Pairs come back in a fixed order (source, path, line), so
a seed alone decides the training order (:func:`shuffled_batches`).

Reads files from folders; writes nothing. Must not import: torch, celery, tasks/,
workers/, api/, or any driver.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.evaluation import build_set
from pipeline.analysis.chunking import ChunkingOptions, header_text
from pipeline.analysis.tokens import DEFAULT_COUNTER


@dataclass(frozen=True, slots=True)
class TrainPair:
    """One (query, code) pair and where it came from (1-based lines of ``path``)."""

    query: str
    code: str
    language: str
    source: str
    path: str
    start_line: int
    end_line: int


class NoPairsError(ValueError):
    """A source folder (or all of them) gave no usable pair."""


def mine_folder(root: Path, source: str | None = None) -> list[TrainPair]:
    """The pairs of one folder (a repository or an unpacked source package), in file and
    line order. ``source`` names it in the pairs (default: the folder's name).
    FileNotFoundError naming the folder when it is not one."""
    if not root.is_dir():
        raise FileNotFoundError(f"training source {str(root)!r}: no such folder")
    name = source or root.resolve().name
    evalset = build_set(root)
    reserve = ChunkingOptions().header_reserve_tokens
    pairs = []
    for query in evalset.queries:
        lines = evalset.files[query.path].decode("utf-8").split("\n")
        body = "\n".join(lines[query.start_line - 1 : query.end_line]).strip("\n")
        if not body.strip():
            continue
        header = header_text(query.path, query.name, DEFAULT_COUNTER, reserve)
        pairs.append(
            TrainPair(
                query=query.text,
                code=header + body,
                language=query.language,
                source=name,
                path=query.path,
                start_line=query.start_line,
                end_line=query.end_line,
            )
        )
    return pairs


def mine(roots: Sequence[Path]) -> list[TrainPair]:
    """The pairs of every folder, a code text kept once (the first source's), in the
    order given. NoPairsError naming the folders when none gave a pair."""
    if not roots:
        raise NoPairsError("no training source folders given")
    seen: set[str] = set()
    out: list[TrainPair] = []
    for root in roots:
        for pair in mine_folder(root):
            if pair.code in seen:
                continue
            seen.add(pair.code)
            out.append(pair)
    if not out:
        names = ", ".join(repr(str(r)) for r in roots)
        raise NoPairsError(
            f"no (doc comment, function) pairs found in {names}: training needs functions"
            " with doc comments in Python, Go, TypeScript/JavaScript, Java, Rust, C#, Kotlin,"
            " PHP or C/C++, outside tests, docs and examples"
        )
    return out


def counts(pairs: Iterable[TrainPair], key: str = "language") -> dict[str, int]:
    """Pairs per ``language`` (or per ``source``), sorted by name."""
    tally = Counter(getattr(p, key) for p in pairs)
    return dict(sorted(tally.items()))


def shuffled_batches(
    pairs: Sequence[TrainPair], batch_size: int, seed: int
) -> list[list[TrainPair]]:
    """``pairs`` shuffled by ``seed`` and cut into batches of ``batch_size``; a last batch
    of fewer than two pairs is dropped (in-batch negatives need a second pair), unless it
    is the only one. Pure: the same pairs and seed give the same batches."""
    if batch_size < 2:
        raise ValueError(f"batch_size={batch_size}: in-batch negatives need at least 2")
    order = list(pairs)
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible order, not a secret
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches
