"""A CodeSearchNet-style retrieval evaluation of a Python repository.

Owns the evaluation set, the relevance rule and the figures:

- **Set.** For every function or method (nested ones included) with a docstring, the
  query is the docstring's first sentence and the target is the function's lines,
  decorators included. Queries under ``MIN_QUERY_WORDS`` words are skipped. Every
  docstring (module, class, function) is replaced by ``""`` in the copy that gets
  indexed, keeping every line number, so the query text is not in the index.
- **Files.** The Python files Quarry itself would index (``pipeline.analysis.selection``: ignore
  files, default excludes, size, generated-file checks) less tests, docs and examples
  (``EXCLUDED_DIRS``, ``test_*.py``, ``*_test.py``), ``setup.py``, ``conftest.py`` and
  hidden folders; the same rule fits a repository root and an unpacked sdist.
  Files that are not valid UTF-8 Python 3 are left out (listed in ``unparsable``).
- **Duplicates.** A query text shared by two or more functions (overloads, a property's
  getter and setter, copy-pasted helpers) has no single right answer: keeping one
  target would score a hit on its twin as a miss. Every copy is dropped (counted in
  ``ambiguous``) rather than keeping the first.
- **Relevance.** A result is relevant when it is in the target's file and its line span
  overlaps the target function's span. A query's rank is that of its first relevant
  result.
- **Figures.** Recall@1/5/10 and MRR@10 over the ranks, the mean result size in lines,
  and a paired bootstrap interval of an MRR@10 difference.

Reads files from a folder; writes nothing. Must not import: celery, tasks/, workers/,
api/, cli/, or any driver.
"""

from __future__ import annotations

import ast
import random
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.analysis.selection import select_files

MIN_QUERY_WORDS = 3
KS = (1, 5, 10)
MRR_CUTOFF = 10
BOOTSTRAP_SAMPLES = 10_000
EXCLUDED_DIRS = frozenset(
    {"tests", "test", "testing", "docs", "doc", "examples", "example", "site-packages"}
)
EXCLUDED_FILES = frozenset({"setup.py", "conftest.py"})

Ranks = Sequence[int | None]
Hit = tuple[str, int, int]  # path, start_line, end_line of one search result


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """One docstring-derived query and the function it should retrieve (1-based lines)."""

    text: str
    path: str
    start_line: int
    end_line: int
    name: str


@dataclass(frozen=True, slots=True)
class EvalSet:
    """The queries and the docstring-blanked files to index, keyed by relative POSIX path."""

    queries: tuple[EvalQuery, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    ambiguous: int = 0
    unparsable: tuple[str, ...] = ()


def source_files(root: Path) -> list[Path]:
    """The Python files of ``root`` worth evaluating (see the module docstring), sorted."""
    root = root.resolve()
    return [root / rel for rel in select_files(root).files if _is_source(rel)]


def _is_source(rel: str) -> bool:
    path = PurePosixPath(rel)
    name = path.name
    if path.suffix != ".py" or name in EXCLUDED_FILES:
        return False
    if name.startswith("test_") or name.endswith("_test.py"):
        return False
    return not any(p in EXCLUDED_DIRS or p.startswith(".") for p in path.parts[:-1])


def build_set(
    root: Path, files: Sequence[Path] | None = None, *, drop_ambiguous: bool = True
) -> EvalSet:
    """The evaluation set of ``files`` (default: :func:`source_files`) under ``root``.

    Paths are relative to ``root``. ``drop_ambiguous=False`` keeps shared query texts
    (the benchmarks did, and keep doing so for comparable figures).
    """
    root = root.resolve()
    queries: list[EvalQuery] = []
    blanked: dict[str, bytes] = {}
    unparsable: list[str] = []
    for file in source_files(root) if files is None else files:
        rel = file.resolve().relative_to(root).as_posix()
        data = file.read_bytes()
        tree = _parse(data)
        out = None if tree is None else blank_docstrings(data, tree)
        if tree is None or out is None or _parse(out) is None:
            unparsable.append(rel)
            continue
        queries += _queries(rel, tree)
        blanked[rel] = out
    ambiguous = 0
    if drop_ambiguous:
        counts = Counter(q.text for q in queries)
        ambiguous = sum(n for n in counts.values() if n > 1)
        queries = [q for q in queries if counts[q.text] == 1]
    return EvalSet(tuple(queries), blanked, ambiguous, tuple(unparsable))


def _parse(data: bytes) -> ast.Module | None:
    try:
        data.decode("utf-8")
        with warnings.catch_warnings():
            # Invalid escapes in old code warn at compile time; the file is still usable.
            warnings.simplefilter("ignore")
            return ast.parse(data)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes; UnicodeDecodeError is one
        return None


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, whitespace flattened."""
    paragraph = doc.strip().split("\n\n", 1)[0]
    flat = " ".join(paragraph.split())
    match = re.match(r"(.+?[.!?])(\s|$)", flat)
    return match.group(1) if match else flat


def _docstring_nodes(tree: ast.Module) -> list[ast.Constant]:
    owners: list[ast.AST] = [tree]
    owners += [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    out: list[ast.Constant] = []
    for owner in owners:
        body = getattr(owner, "body", [])
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            out.append(body[0].value)
    return out


def blank_docstrings(source: bytes, tree: ast.Module) -> bytes:
    """``source`` with every docstring replaced by ``""``, the same number of lines."""
    lines = source.split(b"\n")
    # Bottom-up so earlier offsets stay valid; ast column offsets are UTF-8 byte offsets.
    nodes = sorted(_docstring_nodes(tree), key=lambda n: (n.lineno, n.col_offset), reverse=True)
    for node in nodes:
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        prefix = lines[first][: node.col_offset]
        suffix = lines[last][node.end_col_offset or 0 :]
        lines[first : last + 1] = [prefix + b'""' + suffix] + [b""] * (last - first)
    return b"\n".join(lines)


def _queries(rel: str, tree: ast.Module) -> list[EvalQuery]:
    out: list[EvalQuery] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        text = first_sentence(doc)
        if len(text.split()) < MIN_QUERY_WORDS:
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        out.append(EvalQuery(text, rel, start, node.end_lineno or node.lineno, node.name))
    return out


def default_name(root: Path) -> str:
    """The repository name an evaluation indexes under: ``eval-<folder name>``."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-.") or "repo"
    return f"eval-{folder}"


def is_relevant(query: EvalQuery, path: str, start_line: int, end_line: int) -> bool:
    """Same file, and the result's lines overlap the target function's lines."""
    return path == query.path and start_line <= query.end_line and query.start_line <= end_line


def first_relevant_rank(query: EvalQuery, hits: Iterable[Hit], k: int = MRR_CUTOFF) -> int | None:
    """The 1-based rank of the first relevant hit among the first ``k``, or None."""
    for position, (path, start_line, end_line) in enumerate(hits, start=1):
        if position > k:
            break
        if is_relevant(query, path, start_line, end_line):
            return position
    return None


def reciprocal_rank(rank: int | None) -> float:
    """``1 / rank`` within the MRR cut-off, else 0."""
    return 1.0 / rank if rank is not None and rank <= MRR_CUTOFF else 0.0


def metrics(ranks: Ranks) -> dict[str, float]:
    """``recall@1``, ``recall@5``, ``recall@10`` and ``mrr@10`` of one rank per query."""
    if not ranks:
        raise ValueError("metrics need at least one query")
    n = len(ranks)
    figures = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in KS}
    figures[f"mrr@{MRR_CUTOFF}"] = sum(reciprocal_rank(r) for r in ranks) / n
    return figures


def mean_lines(hits: Iterable[Hit]) -> float:
    """The mean size of the results in lines (both ends counted); 0 when there are none."""
    sizes = [end - start + 1 for _, start, end in hits]
    return sum(sizes) / len(sizes) if sizes else 0.0


def score(
    queries: Sequence[EvalQuery], hits_per_query: Sequence[Sequence[Hit]]
) -> dict[str, float]:
    """One retrieval mode's figures: :func:`metrics` plus ``mean_lines`` of every hit."""
    if len(queries) != len(hits_per_query):
        raise ValueError(f"{len(queries)} queries but {len(hits_per_query)} result lists")
    ranks = [first_relevant_rank(q, hits) for q, hits in zip(queries, hits_per_query, strict=True)]
    figures = metrics(ranks)
    figures["mean_lines"] = mean_lines(h for hits in hits_per_query for h in hits)
    return figures


def hybrid_beats_single(figures: Mapping[str, Mapping[str, float]]) -> bool:
    """Whether ``hybrid`` has a higher MRR@10 than ``vector`` and than ``lexical``."""
    key = f"mrr@{MRR_CUTOFF}"
    best_single = max(figures["vector"][key], figures["lexical"][key])
    return figures["hybrid"][key] > best_single


def bootstrap_mrr_diff(
    a: Ranks, b: Ranks, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Paired bootstrap 95% interval of MRR@10(a) - MRR@10(b), resampling queries."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired ranks need equal, non-zero lengths ({len(a)} and {len(b)})")
    rng = random.Random(seed)  # noqa: S311 - a reproducible resample, not a secret
    n = len(a)
    ra = [reciprocal_rank(r) for r in a]
    rb = [reciprocal_rank(r) for r in b]
    diffs = []
    for _ in range(samples):
        picks = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(ra[i] - rb[i] for i in picks) / n)
    diffs.sort()
    return diffs[int(0.025 * samples)], diffs[int(0.975 * samples) - 1]
