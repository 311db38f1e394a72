"""A CodeSearchNet-style retrieval evaluation of a repository in Python, Go,
TypeScript/JavaScript, Java, Rust, C#, Kotlin, PHP or C/C++.

Owns the evaluation set, the relevance rule and the figures:

- **Set.** For every function or method (nested ones included) with a doc comment
  (Python: its docstring; the other languages: ``cli.doc_comments``), the query is the
  doc comment's first sentence with the function's own name taken out
  (``cli.doc_comments.drop_name``: exact tokens only), and the target is the function's
  lines, decorators (attributes) included. Queries under ``MIN_QUERY_WORDS`` words are
  skipped. Every doc comment (module, class, function) is blanked in the copy that gets
  indexed (Python: replaced by ``""``; the others: by a space and their newlines),
  keeping every line number, so the query text is not in the index.
- **Files.** The files Quarry itself would index (``pipeline.analysis.selection``:
  ignore files, default excludes, size, generated-file checks) in a language with a
  doc-comment reader, less tests, benchmarks, docs, examples, fixtures and vendored code
  (``EXCLUDED_DIRS``, ``test_*.py``, ``*_test.py``, ``*_test.go``, ``*.test.ts``,
  ``*.spec.js``, ``*Test.java``, ``*Tests.cs``, ``*Test.kt``, ``*Test.php``,
  ``*_test.cc``, ``*_unittest.cpp``, ``test_*.c``, Rust's ``tests.rs``, ``*.d.ts``),
  ``setup.py``, ``conftest.py``, versioneer's generated ``versioneer.py`` and
  ``_version.py``, and hidden folders; the same rule fits a repository root and an
  unpacked source package.
  Those files are the indexed copy. Files that are not valid UTF-8 or do not parse
  cleanly are left out (listed in ``unparsable``).
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

from cli.doc_comments import DOC_LANGUAGES, drop_name, read_doc_file
from pipeline.analysis.language_names import detect_language
from pipeline.analysis.selection import select_files

MIN_QUERY_WORDS = 3
KS = (1, 5, 10)
MRR_CUTOFF = 10
BOOTSTRAP_SAMPLES = 10_000
EXCLUDED_DIRS = frozenset(
    {
        "tests", "test", "testing", "docs", "doc", "examples", "example", "site-packages",
        "testdata", "__tests__", "__mocks__", "fixtures", "benches", "bench", "benchmarks",
        "benchmark", "vendor", "third_party", "node_modules", "dist", "generated",
    }
)  # fmt: skip
EXCLUDED_FILES = frozenset({"setup.py", "conftest.py", "versioneer.py", "_version.py"})
_TEST_NAME = re.compile(
    r"^test_.*\.(py|c|cc|cpp)$|_(unit)?test\.(py|go|c|cc|cpp)$|\.(test|spec)\.[cm]?[jt]sx?$"
    r"|Tests?\.(java|cs|kt|php)$|\.d\.[cm]?ts$|^tests?\.rs$"
)

Ranks = Sequence[int | None]
Hit = tuple[str, int, int]  # path, start_line, end_line of one search result


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """One doc-comment-derived query and the function it should retrieve (1-based lines)."""

    text: str
    path: str
    start_line: int
    end_line: int
    name: str
    language: str = "python"


@dataclass(frozen=True, slots=True)
class EvalSet:
    """The queries and the doc-comment-blanked files to index, keyed by relative POSIX path."""

    queries: tuple[EvalQuery, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    ambiguous: int = 0
    unparsable: tuple[str, ...] = ()


EVAL_LANGUAGES = DOC_LANGUAGES | {"python"}


def source_files(root: Path) -> list[Path]:
    """The files of ``root`` worth evaluating (see the module docstring), sorted."""
    root = root.resolve()
    return [root / rel for rel in select_files(root).files if _is_source(rel)]


def _is_source(rel: str) -> bool:
    path = PurePosixPath(rel)
    name = path.name
    if detect_language(rel) not in EVAL_LANGUAGES or name in EXCLUDED_FILES:
        return False
    if _TEST_NAME.search(name):
        return False
    return not any(p in EXCLUDED_DIRS or p.startswith(".") for p in path.parts[:-1])


def build_set(
    root: Path,
    files: Sequence[Path] | None = None,
    *,
    drop_ambiguous: bool = True,
    keep_names: bool = False,
) -> EvalSet:
    """The evaluation set of ``files`` (default: :func:`source_files`) under ``root``.

    Paths are relative to ``root``. ``drop_ambiguous=False`` keeps shared query texts
    (the benchmarks did, and keep doing so for comparable figures). ``keep_names=True``
    leaves the function's own name in its query, as sets made before issue 21 did.
    """
    root = root.resolve()
    queries: list[EvalQuery] = []
    blanked: dict[str, bytes] = {}
    unparsable: list[str] = []
    for file in source_files(root) if files is None else files:
        rel = file.resolve().relative_to(root).as_posix()
        data = file.read_bytes()
        language = detect_language(rel)
        read = (
            _read_python(rel, data, keep_names)
            if language == "python"
            else _read_other(rel, data, language, keep_names)
        )
        if read is None:
            unparsable.append(rel)
            continue
        queries += read[0]
        blanked[rel] = read[1]
    ambiguous = 0
    if drop_ambiguous:
        counts = Counter(q.text for q in queries)
        ambiguous = sum(n for n in counts.values() if n > 1)
        queries = [q for q in queries if counts[q.text] == 1]
    return EvalSet(tuple(queries), blanked, ambiguous, tuple(unparsable))


def _read_python(rel: str, data: bytes, keep_names: bool) -> tuple[list[EvalQuery], bytes] | None:
    tree = _parse(data)
    out = None if tree is None else blank_docstrings(data, tree)
    if tree is None or out is None or _parse(out) is None:
        return None
    return _queries(rel, tree, keep_names), out


def _read_other(
    rel: str, data: bytes, language: str, keep_names: bool
) -> tuple[list[EvalQuery], bytes] | None:
    if language not in DOC_LANGUAGES:
        return None
    doc_file = read_doc_file(data, language)
    if doc_file is None:
        return None
    family = "typescript" if language == "tsx" else language
    queries = []
    for fn in doc_file.functions:
        text = query_text(fn.doc, fn.name, keep_name=keep_names)
        if text is not None:
            queries.append(EvalQuery(text, rel, fn.start_line, fn.end_line, fn.name, family))
    return queries, doc_file.blanked


def query_text(doc: str, name: str, *, keep_name: bool = False) -> str | None:
    """The query a doc comment gives: its first sentence without the function's own name
    (unless ``keep_name``), or None when fewer than ``MIN_QUERY_WORDS`` words are left."""
    text = first_sentence(doc) if keep_name else drop_name(first_sentence(doc), name)
    return text if len(text.split()) >= MIN_QUERY_WORDS else None


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


def _queries(rel: str, tree: ast.Module, keep_names: bool) -> list[EvalQuery]:
    out: list[EvalQuery] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        text = query_text(doc, node.name, keep_name=keep_names)
        if text is None:
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
