"""Hand-written deep nesting: 5,000 levels in each language never crash the process and
give chunks in proportion to the text, not to the depth.

The crash test runs the analysis in a child process: a grammar that overruns its state
buffer (tree-sitter's markdown and yaml scanners did, past ~250 open blocks) kills the
child, and the test says at which file, instead of taking the test session down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.parse_limits import MAX_BLOCK_PREFIX_COLUMNS, MAX_PARSE_LINE_CHARS
from tests.reliability.chunk_worker import COUNTER, OPTIONS, write

pytestmark = pytest.mark.timeout(120)


DEPTH = 5_000
NESTED: dict[str, str] = {
    "brackets.py": "x = " + "[\n" * DEPTH + "]\n" * DEPTH,
    "ifs.py": "".join(" " * i + "if x:\n" for i in range(1_000)) + " " * 1_000 + "pass\n",
    "calls.js": "f(\n" * DEPTH + ")\n" * DEPTH,
    "blocks.go": "package main\nfunc f() {\n" + "{\n" * DEPTH + "}\n" * DEPTH + "}\n",
    "mods.rs": "mod a {\n" * DEPTH + "}\n" * DEPTH,
    "ifs.c": "int f() {\n" + "if (x) {\n" * DEPTH + "}\n" * DEPTH + "}\n",
    "arrays.json": "[\n" * DEPTH + "]\n" * DEPTH,
    "quotes.md": "".join(">" * i + " q\n" for i in range(1, 400)),
    "lists.md": "".join("  " * i + "- a\n" for i in range(400)),
    "maps.yaml": "".join("  " * i + "a:\n" for i in range(400)) + "  " * 400 + "b: 1\n",
    "seqs.yaml": "".join(" " * i + "-\n" for i in range(400)) + " " * 400 + "x\n",
    "tags.html": "<div>\n" * DEPTH + "</div>\n" * DEPTH,
}
_CHILD = """
import json, sys
from pipeline.analysis.analyze import analyze_file
from pipeline.analysis.chunking import ChunkingOptions
for path in sys.argv[2:]:
    print("analysing", path, flush=True)
    data = open(sys.argv[1] + "/" + path, "rb").read()
    result = analyze_file(path, data, options=ChunkingOptions(parse_timeout_s=5.0),
                          check_content=False)
    print(json.dumps({"path": path, "chunks": len(result.chunks),
                      "unparsed": result.unparsed_reason,
                      "timed_out": result.parse_timed_out}), flush=True)
"""


def test_5000_levels_of_nesting_in_each_language_never_crash_the_process(
    tmp_path: Path,
) -> None:
    for name, text in NESTED.items():
        write(tmp_path, name, text.encode())
    repo_root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), *NESTED],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=repo_root,
        env={"PYTHONPATH": str(repo_root), "PATH": os.defpath},
        check=False,
    )
    last = child.stdout.strip().splitlines()[-1:] or ["nothing"]
    assert child.returncode == 0, f"child died ({child.returncode}) at {last}: {child.stderr}"
    results = {
        r["path"]: r
        for r in (json.loads(line) for line in child.stdout.splitlines() if line.startswith("{"))
    }
    assert set(results) == set(NESTED)
    for name, result in results.items():
        assert result["chunks"] > 0, name
        deep_block_grammar = name.endswith((".md", ".yaml"))
        assert (result["unparsed"] is not None) is deep_block_grammar, result


@pytest.mark.parametrize("name", ["brackets.py", "calls.js", "blocks.go", "ifs.c", "arrays.json"])
def test_5000_levels_of_nesting_give_chunks_in_proportion_to_the_text_not_the_depth(
    name: str,
) -> None:
    data = NESTED[name].encode()
    result = analyze_file(name, data, options=OPTIONS, counter=COUNTER, check_content=False)
    assert isinstance(result, FileAnalysis) and not result.parse_timed_out
    # One chunk per closing bracket (10,000) before the split depth was bounded.
    assert len(result.chunks) <= 300
    lines = NESTED[name].count("\n")
    covered = sorted(
        n for c in result.chunks for n in range(c.span.start_line, c.span.end_line + 1)
    )
    assert covered == list(range(1, lines + 1))  # the chunks still tile the file


def test_block_nesting_the_grammars_parse_safely_is_still_parsed() -> None:
    shallow = "".join(">" * i + " q\n" for i in range(1, MAX_BLOCK_PREFIX_COLUMNS))
    result = analyze_file("a.md", shallow.encode(), options=OPTIONS, check_content=False)
    assert isinstance(result, FileAnalysis)
    assert result.unparsed_reason is None and not result.parse_timed_out
    deep = shallow + ">" * (MAX_BLOCK_PREFIX_COLUMNS + 1) + " q\n"
    result = analyze_file("a.md", deep.encode(), options=OPTIONS, check_content=False)
    assert isinstance(result, FileAnalysis) and result.chunks
    assert result.unparsed_reason is not None and "markdown" in result.unparsed_reason
    # A carriage return alone also starts a line for the grammar's scanner.
    cr_only = "\r".join(">" * i + " q" for i in range(1, 300)).encode()
    result = analyze_file("b.md", cr_only, options=OPTIONS, check_content=False)
    assert isinstance(result, FileAnalysis) and result.unparsed_reason is not None


def test_a_very_long_line_of_non_ascii_identifiers_is_not_parsed(tmp_path: Path) -> None:
    # The scala grammar lexed this in 22 s and 6.7 GB; in UTF-16 the content checks,
    # which look at byte lines, let it through. The child gets 2 GiB of address space.
    text = "object A {\n" + "\u626f\u656a\u7463\u4120" * 17_000 + "\n}\n"
    write(tmp_path, "wide.scala", text.encode("utf-16"))
    write(tmp_path, "wide_utf8.scala", text.encode("utf-8"))
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", limit + _CHILD, str(tmp_path), "wide.scala", "wide_utf8.scala"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": os.defpath},
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert time.monotonic() - started < 20  # 35 s before the guard
    results = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2
    for result in results:
        assert result["chunks"] > 0 and not result["timed_out"]
        assert f"longer than the {MAX_PARSE_LINE_CHARS} characters" in result["unparsed"]


SCALA_DEEP = {
    "unclosed_new.scala": "new A {\n" * 20_000,
    "arrows.scala": "x =>\n" * 20_000,
    "closed_objects.scala": "object A {\n" * 10_000 + "}\n" * 10_000,
    "indented.scala": "".join(" " * i + f"object A{i}:\n" for i in range(1_000)),
}


def test_scala_nested_past_its_memory_bound_is_not_parsed(tmp_path: Path) -> None:
    # Each of these took the scala grammar from 340 MB to 4.6 GB; the child gets 2 GiB.
    for name, text in SCALA_DEEP.items():
        write(tmp_path, name, text.encode())
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    child = subprocess.run(
        [sys.executable, "-c", limit + _CHILD, str(tmp_path), *SCALA_DEEP],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": os.defpath},
        check=False,
    )
    assert child.returncode == 0, child.stderr
    results = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert {r["path"] for r in results} == set(SCALA_DEEP)
    for result in results:
        assert result["chunks"] > 0 and "scala grammar" in result["unparsed"], result


def test_ordinary_scala_with_lambdas_and_matches_is_still_parsed() -> None:
    body = "\n".join(
        f"  def f{i}(xs: List[Int]): Int = xs.map {{ x =>\n    x match {{\n"
        f"      case 0 =>\n        1\n      case n =>\n        n * {i}\n    }}\n  }}.sum"
        for i in range(300)
    )
    text = f"object Big {{\n{body}\n}}\n"
    result = analyze_file("Big.scala", text.encode(), options=OPTIONS, counter=COUNTER)
    assert isinstance(result, FileAnalysis)
    assert result.unparsed_reason is None and not result.parse_timed_out
