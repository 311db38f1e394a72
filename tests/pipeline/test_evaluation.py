"""The evaluation set (file choice, blanking, queries, duplicates) and its figures."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cli.evaluation import (
    EvalQuery,
    blank_docstrings,
    bootstrap_mrr_diff,
    build_set,
    default_name,
    first_relevant_rank,
    first_sentence,
    hybrid_beats_single,
    is_relevant,
    mean_lines,
    metrics,
    score,
    source_files,
)

CORE = '''"""The core module: its docstring goes too."""

import functools


class Engine:
    """An engine with a class docstring."""

    @functools.cache
    @staticmethod
    def start(fuel: int) -> int:
        """Start the engine with some fuel.

        More words that are not part of the query.
        """
        return fuel

    async def stop(self) -> None:
        """Stop the engine right away!"""


def outer() -> int:
    """Build the inner helper and call it. Then return."""

    def inner() -> int:
        """Return a constant answer for everyone."""
        return 42

    return inner()


def short() -> None:
    """Too short."""


def été() -> str: """Ça marche très bien ici."""; return "é"
'''

TWINS = '''def get_a():
    """Send a GET request."""


def get_b():
    """Send a GET request."""
'''


def _write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj-1.0"
    _write(root, "src/proj/core.py", CORE)
    _write(root, "src/proj/twins.py", TWINS)
    _write(root, "src/proj/old.py", 'print "python 2"\n')
    _write(root, "src/proj/notes.txt", "not python\n")
    _write(root, "src/proj/test_core.py", 'def t():\n    """A test helper function."""\n')
    _write(root, "src/proj/core_test.py", 'def t():\n    """A test helper function."""\n')
    for rel in (
        "tests/test_x.py", "src/proj/tests/helpers.py", "docs/conf.py", "examples/demo.py",
        "setup.py", "conftest.py", ".hidden/tool.py", "venv/lib/mod.py", "node_modules/a.py",
    ):  # fmt: skip
        _write(root, rel, 'def f():\n    """Left out of the set."""\n')
    _write(root, "venv/pyvenv.cfg", "home = /usr\n")
    return root


def test_source_files_keep_package_code_and_leave_out_tests_docs_and_tooling(tree: Path) -> None:
    rels = [p.relative_to(tree).as_posix() for p in source_files(tree)]
    assert rels == ["src/proj/core.py", "src/proj/old.py", "src/proj/twins.py"]


def test_queries_cover_methods_nested_and_async_functions_with_decorated_spans(
    tree: Path,
) -> None:
    eval_set = build_set(tree)
    found = {q.name: q for q in eval_set.queries}
    assert sorted(found) == ["inner", "outer", "start", "stop", "été"]
    assert found["start"] == EvalQuery(
        "Start the engine with some fuel.", "src/proj/core.py", 9, 16, "start"
    )
    assert found["stop"].text == "Stop the engine right away!"
    assert (found["outer"].start_line, found["outer"].end_line) == (22, 29)
    assert (found["inner"].start_line, found["inner"].end_line) == (25, 27)
    assert found["outer"].text == "Build the inner helper and call it."


def test_queries_under_three_words_are_skipped(tree: Path) -> None:
    assert "short" not in {q.name for q in build_set(tree).queries}


def test_a_text_shared_by_two_functions_drops_both_unless_asked_to_keep_them(tree: Path) -> None:
    eval_set = build_set(tree)
    assert eval_set.ambiguous == 2
    assert not any(q.path.endswith("twins.py") for q in eval_set.queries)
    kept = build_set(tree, drop_ambiguous=False)
    assert kept.ambiguous == 0
    assert [q.name for q in kept.queries if q.path.endswith("twins.py")] == ["get_a", "get_b"]
    assert "src/proj/twins.py" in eval_set.files  # still part of the haystack


def test_a_file_that_is_not_python_3_is_left_out_and_listed(tree: Path) -> None:
    eval_set = build_set(tree)
    assert eval_set.unparsable == ("src/proj/old.py",)
    assert sorted(eval_set.files) == ["src/proj/core.py", "src/proj/twins.py"]


def _def_lines(source: bytes) -> dict[str, tuple[int, int | None]]:
    defs = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    tree = ast.parse(source)
    return {n.name: (n.lineno, n.end_lineno) for n in ast.walk(tree) if isinstance(n, defs)}


def test_blanking_keeps_every_line_number_and_no_docstring_text(tree: Path) -> None:
    original = (tree / "src/proj/core.py").read_bytes()
    blanked = build_set(tree).files["src/proj/core.py"]
    assert blanked.count(b"\n") == original.count(b"\n")
    for word in (b"core module", b"class docstring", b"Start the", b"More words", b"constant"):
        assert word not in blanked
    before, after = _def_lines(original), _def_lines(blanked)
    assert before == after
    assert 'def été() -> str: ""; return "é"'.encode() in blanked  # UTF-8 byte offsets


def test_blanking_a_multi_line_docstring_leaves_empty_lines_in_its_place() -> None:
    source = b'def f():\n    """One.\n\n    Two.\n    """\n    return 1\n'
    assert blank_docstrings(source, ast.parse(source)) == (
        b'def f():\n    ""\n\n\n\n    return 1\n'
    )


def test_blanking_keeps_crlf_files_parseable_with_the_same_line_count() -> None:
    source = b'def f():\r\n    """A docstring over\r\n    two lines."""\r\n    return 1\r\n'
    out = blank_docstrings(source, ast.parse(source))
    assert out.count(b"\n") == source.count(b"\n")
    assert ast.parse(out).body[0].body[1].lineno == 4  # type: ignore[attr-defined]


def test_explicit_file_list_is_used_as_given(tree: Path) -> None:
    eval_set = build_set(tree, [tree / "src/proj/test_core.py"])
    assert [q.name for q in eval_set.queries] == ["t"]
    assert list(eval_set.files) == ["src/proj/test_core.py"]


@pytest.mark.parametrize(
    ("doc", "sentence"),
    [
        ("Return the value.", "Return the value."),
        ("Return the value. Then more.", "Return the value."),
        ("Return the\n    value over lines.\n\nSecond paragraph.", "Return the value over lines."),
        ("No full stop here", "No full stop here"),
        ("Is it e.g. fine?  Yes.", "Is it e.g."),
        ("Version 1.2 is out! Now.", "Version 1.2 is out!"),
    ],
)
def test_first_sentence(doc: str, sentence: str) -> None:
    assert first_sentence(doc) == sentence


QUERY = EvalQuery("Do the thing well.", "a/b.py", 10, 20, "thing")


@pytest.mark.parametrize(
    ("path", "start", "end", "relevant"),
    [
        ("a/b.py", 10, 20, True),
        ("a/b.py", 1, 10, True),  # touches the first line
        ("a/b.py", 20, 30, True),  # touches the last line
        ("a/b.py", 12, 14, True),  # inside
        ("a/b.py", 1, 40, True),  # around
        ("a/b.py", 1, 9, False),
        ("a/b.py", 21, 30, False),
        ("a/c.py", 10, 20, False),
    ],
)
def test_relevance_is_same_file_and_overlapping_lines(
    path: str, start: int, end: int, relevant: bool
) -> None:
    assert is_relevant(QUERY, path, start, end) is relevant


def test_rank_is_the_first_relevant_hit_within_the_cut_off() -> None:
    miss, hit = ("a/c.py", 10, 20), ("a/b.py", 15, 16)
    assert first_relevant_rank(QUERY, [miss, hit, hit]) == 2
    assert first_relevant_rank(QUERY, [miss] * 10 + [hit]) is None
    assert first_relevant_rank(QUERY, [miss] * 10 + [hit], k=11) == 11
    assert first_relevant_rank(QUERY, []) is None


def test_metrics_on_known_ranks() -> None:
    figures = metrics([1, 2, None, 6, 11])
    assert figures == pytest.approx(
        {"recall@1": 0.2, "recall@5": 0.4, "recall@10": 0.6, "mrr@10": (1 + 1 / 2 + 1 / 6) / 5}
    )


def test_metrics_refuse_an_empty_set() -> None:
    with pytest.raises(ValueError, match="at least one"):
        metrics([])


def test_mean_lines_counts_both_ends() -> None:
    assert mean_lines([("a", 1, 1), ("b", 1, 10)]) == 5.5
    assert mean_lines([]) == 0.0


def test_score_ranks_each_query_and_averages_result_sizes() -> None:
    other = EvalQuery("Do another thing.", "a/b.py", 30, 40, "other")
    hits = [[("a/b.py", 10, 19)], [("a/b.py", 1, 5), ("a/b.py", 35, 40)]]
    figures = score([QUERY, other], hits)
    assert figures == pytest.approx(
        {"recall@1": 0.5, "recall@5": 1.0, "recall@10": 1.0, "mrr@10": 0.75, "mean_lines": 7.0}
    )
    with pytest.raises(ValueError, match="2 queries but 1 result lists"):
        score([QUERY, other], hits[:1])


@pytest.mark.parametrize(
    ("vector", "lexical", "hybrid", "beats"),
    [(0.5, 0.4, 0.6, True), (0.5, 0.4, 0.5, False), (0.3, 0.7, 0.6, False)],
)
def test_hybrid_must_beat_both_single_modes_on_mrr(
    vector: float, lexical: float, hybrid: float, beats: bool
) -> None:
    figures = {"vector": {"mrr@10": vector}, "lexical": {"mrr@10": lexical},
               "hybrid": {"mrr@10": hybrid}}  # fmt: skip
    assert hybrid_beats_single(figures) is beats


def test_bootstrap_interval_is_reproducible_and_brackets_the_difference() -> None:
    a = [1, 1, 2, None, 1, 3, 1, None, 1, 2] * 3
    b = [2, None, 2, None, 4, 3, 1, None, 5, 2] * 3
    lo, hi = bootstrap_mrr_diff(a, b, samples=2_000)
    diff = metrics(a)["mrr@10"] - metrics(b)["mrr@10"]
    assert 0 < lo < diff < hi
    assert bootstrap_mrr_diff(a, b, samples=2_000) == (lo, hi)
    assert bootstrap_mrr_diff(a, a, samples=200) == (0.0, 0.0)
    with pytest.raises(ValueError, match="equal"):
        bootstrap_mrr_diff(a, b[:-1])


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("requests-2.32.3", "eval-requests-2.32.3"),
        ("my repo!", "eval-my-repo"),
        ("---", "eval-repo"),
    ],
)
def test_default_name_is_eval_and_a_safe_folder_name(
    tmp_path: Path, folder: str, name: str
) -> None:
    assert default_name(tmp_path / folder) == name
