"""Graph extraction per language: definitions, calls, imports, containment, inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.analysis.extraction import extract_graph, module_name
from pipeline.analysis.imports import RepoPaths, resolve_import
from pipeline.analysis.languages import detect_language
from pipeline.analysis.parsing import parse
from pipeline.analysis.resolution import resolve_across_files
from pipeline.models import Edge, EdgeKind, FileExtraction, SymbolKind

FIXTURES = Path(__file__).resolve().parents[2] / "tests/fixtures/languages"
FIXTURE_PATHS = RepoPaths(
    p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()
)

M, C, F, MOD = SymbolKind.METHOD, SymbolKind.CLASS, SymbolKind.FUNCTION, SymbolKind.MODULE


def extract(path: str, repo: RepoPaths | None = FIXTURE_PATHS) -> FileExtraction:
    text = (FIXTURES / path).read_text("utf-8")
    language = detect_language(path, text[:256])
    return extract_graph(path, language, text, parse(text.encode(), language, 5.0), repo)


def edges(extraction: FileExtraction, kind: EdgeKind) -> set[tuple[str, str, bool]]:
    return {(e.source, e.target, e.resolved) for e in extraction.edges if e.kind is kind}


# path, expected symbols (a subset), a resolved call, an inheritance edge (or None)
LANGUAGE_CASES = [
    (
        "sample.py",
        {("sample.Dog", C), ("sample.Dog.speak", M), ("sample.Dog.fetch", M), ("sample.bark", F)},
        ("sample.Dog.speak", "sample.bark"),
        ("sample.Dog", "sample.Animal"),
    ),
    (
        "sample.js",
        {("sample.Dog", C), ("sample.Dog.speak", M), ("sample.bark", F), ("sample.wag", F)},
        ("sample.wag", "sample.bark"),
        ("sample.Dog", "sample.Animal"),
    ),
    (
        "sample.ts",
        {("sample.Speaker", C), ("sample.Animal.speak", M), ("sample.bark", F)},
        ("sample.Dog.speak", "sample.bark"),
        ("sample.Animal", "sample.Speaker"),
    ),
    (
        "sample.tsx",
        {("sample.Banner", C), ("sample.Banner.render", M), ("sample.Greeting", F)},
        ("sample.Greeting", "sample.format"),
        None,
    ),
    (
        "sample.go",
        {("sample.Dog", C), ("sample.Dog.Speak", M), ("sample.bark", F)},
        ("sample.Dog.Speak", "sample.bark"),
        None,
    ),
    (
        "sample.rs",
        {("sample.Dog", C), ("sample.Speak", C), ("sample.Dog.speak", M), ("sample.bark", F)},
        ("sample.Dog.speak", "sample.bark"),
        ("sample.Dog", "sample.Speak"),
    ),
    (
        "Sample.java",
        {("Sample.Dog", C), ("Sample.Dog.speak", M), ("Sample.Dog.bark", M)},
        ("Sample.Dog.speak", "Sample.Dog.bark"),
        ("Sample.Dog", "Sample.Animal"),
    ),
    (
        "sample.c",
        {("sample.dog", C), ("sample.bark", F), ("sample.speak", F)},
        ("sample.speak", "sample.bark"),
        None,
    ),
    (
        "sample.cpp",
        {("sample.zoo", MOD), ("sample.zoo.Dog", C), ("sample.zoo.Dog.speak", M)},
        ("sample.zoo.Dog.speak", "sample.zoo.bark"),
        ("sample.zoo.Dog", "sample.zoo.Animal"),
    ),
    (
        "Sample.cs",
        {("Sample.Zoo", MOD), ("Sample.Zoo.Dog", C), ("Sample.Zoo.Dog.Bark", M)},
        ("Sample.Zoo.Dog.Speak", "Sample.Zoo.Dog.Bark"),
        ("Sample.Zoo.Dog", "Sample.Zoo.Animal"),
    ),
    (
        "sample.rb",
        {("sample.Zoo", MOD), ("sample.Zoo.Dog", C), ("sample.Zoo.Dog.bark", M)},
        None,
        ("sample.Zoo.Dog", "sample.Zoo.Animal"),
    ),
    (
        "sample.php",
        {("sample.Dog", C), ("sample.Dog.bark", M), ("sample.helper", F)},
        ("sample.Dog.speak", "sample.Dog.bark"),
        ("sample.Dog", "sample.Animal"),
    ),
    (
        "sample.kt",
        {("sample.Dog", C), ("sample.Dog.bark", M), ("sample.helper", F)},
        ("sample.Dog.speak", "sample.Dog.bark"),
        ("sample.Dog", "sample.Animal"),
    ),
    (
        "sample.sh",
        {("sample.bark", F), ("sample.speak", F)},
        ("sample.speak", "sample.bark"),
        None,
    ),
    ("script", {("script.main", F)}, ("script", "script.main"), None),
]


@pytest.mark.parametrize(
    ("path", "symbols", "call", "inherits"), LANGUAGE_CASES, ids=[c[0] for c in LANGUAGE_CASES]
)
def test_language_definitions_calls_and_inheritance(
    path: str,
    symbols: set[tuple[str, SymbolKind]],
    call: tuple[str, str] | None,
    inherits: tuple[str, str] | None,
) -> None:
    extraction = extract(path)
    found = {(s.qualified_name, s.kind) for s in extraction.symbols}
    assert symbols <= found
    assert (extraction.module, SymbolKind.MODULE) in found
    if call is not None:
        assert (*call, True) in edges(extraction, EdgeKind.CALLS)
    if inherits is not None:
        assert (*inherits, True) in edges(extraction, EdgeKind.INHERITS)
    defined = {target for _, target, _ in edges(extraction, EdgeKind.DEFINES)}
    assert defined == {s.qualified_name for s in extraction.symbols}
    assert not extraction.parse_failed


def test_containment_links_file_module_class_and_method() -> None:
    contains = edges(extract("sample.py"), EdgeKind.CONTAINS)
    assert ("sample.py", "sample", True) in contains
    assert ("sample", "sample.Dog", True) in contains
    assert ("sample.Dog", "sample.Dog.fetch", True) in contains


def test_ambiguous_call_stays_unresolved_by_name() -> None:
    # Animal.speak and Dog.speak: `self.speak()` cannot be decided by name alone.
    assert ("sample.Dog.fetch", "speak", False) in edges(extract("sample.py"), EdgeKind.CALLS)


def test_unknown_base_stays_unresolved_with_its_written_name() -> None:
    assert ("Sample.Dog", "Comparable<Dog>", False) in edges(
        extract("Sample.java"), EdgeKind.INHERITS
    )


@pytest.mark.parametrize(
    ("path", "target", "resolved"),
    [
        ("pyproj/app.py", "pyproj/pkg/helpers.py", True),
        ("sample.py", "os", False),
        ("sample.js", "util.js", True),
        ("sample.js", "fs", False),
        ("sample.ts", "util.js", True),
        ("sample.c", "util.h", True),
        ("sample.c", "stdio.h", False),
        ("sample.rs", "std::fmt", False),
    ],
)
def test_imports_resolve_to_repo_files_where_possible(
    path: str, target: str, resolved: bool
) -> None:
    assert (path, target, resolved) in edges(extract(path), EdgeKind.IMPORTS)


def test_imports_without_repo_paths_stay_unresolved() -> None:
    imports = edges(extract("pyproj/app.py", repo=None), EdgeKind.IMPORTS)
    assert imports
    assert not any(resolved for _, _, resolved in imports)


@pytest.mark.parametrize(
    ("language", "importer", "module", "name", "paths", "expected"),
    [
        ("python", "a/b/c.py", "..x", None, ["a/x.py"], "a/x.py"),
        ("python", "a/b/c.py", ".", "y", ["a/b/y/__init__.py"], "a/b/y/__init__.py"),
        ("python", "a/c.py", "pkg.mod", None, ["src/pkg/mod.py"], "src/pkg/mod.py"),
        ("python", "a/c.py", "pkg.mod", None, ["x/pkg/mod.py", "y/pkg/mod.py"], None),
        ("javascript", "src/a.js", "./lib", None, ["src/lib/index.js"], "src/lib/index.js"),
        ("typescript", "src/a.ts", "../b", None, ["b.tsx"], "b.tsx"),
        ("go", "cmd/main.go", '"example.com/m/pkg/util"', None, ["pkg/util/u.go"], "pkg/util/u.go"),
        ("rust", "src/main.rs", "crate::net::tcp::Conn", None, ["src/net/tcp.rs"],
         "src/net/tcp.rs"),
        ("rust", "src/lib.rs", "parser", None, ["src/parser/mod.rs"], "src/parser/mod.rs"),
        ("java", "A.java", "com.x.Util", None, ["src/main/java/com/x/Util.java"],
         "src/main/java/com/x/Util.java"),
        ("ruby", "lib/a.rb", "b", None, ["lib/b.rb"], "lib/b.rb"),
        ("php", "src/a.php", "App\\Models\\User", None, ["src/App/Models/User.php"],
         "src/App/Models/User.php"),
        ("csharp", "A.cs", "System.Text", None, ["System/Text.cs"], None),
    ],
)  # fmt: skip
def test_resolve_import_table(
    language: str,
    importer: str,
    module: str,
    name: str | None,
    paths: list[str],
    expected: str | None,
) -> None:
    assert resolve_import(language, importer, module, name, RepoPaths(paths)) == expected


def test_cross_file_resolution_prefers_imported_files() -> None:
    files = ["pyproj/app.py", "pyproj/pkg/helpers.py", "sample.py"]
    resolved = {e.path: e for e in resolve_across_files([extract(p) for p in files])}
    assert resolved
    all_edges: list[Edge] = [
        edge for extraction in resolve_across_files([extract(p) for p in files])
        for edge in extraction.edges
    ]  # fmt: skip
    calls = {(e.source, e.target, e.resolved) for e in all_edges if e.kind is EdgeKind.CALLS}
    # `shout` is defined only in helpers.py, which app.py imports.
    assert ("pyproj.app.Greeter.greet", "pyproj.pkg.helpers.shout", True) in calls
    assert ("pyproj.app.main", "print", False) in calls


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pkg/mod.py", "pkg.mod"),
        ("pkg/__init__.py", "pkg"),
        ("src/index.js", "src"),
        ("src/net/mod.rs", "src.net"),
        ("src/mod.py", "src.mod"),
        ("README.md", "README"),
    ],
)
def test_module_name_from_path(path: str, expected: str) -> None:
    assert module_name(path) == expected


def test_file_without_grammar_has_only_its_module() -> None:
    extraction = extract_graph("notes.txt", "text", "hello\n", None)
    assert [s.kind for s in extraction.symbols] == [SymbolKind.MODULE]
    assert not extraction.parse_failed


@pytest.mark.parametrize(
    ("candidates", "paths", "expected"),
    [
        (["util.h"], ["include/util.h"], "include/util.h"),
        (["util.h"], ["a/util.h", "b/util.h"], None),
        (["pkg/__init__.py"], ["src/pkg/__init__.py", "src/other/__init__.py"],
         "src/pkg/__init__.py"),
        (["x/pkg/mod.py", "pkg/mod.py"], ["pkg/mod.py"], "pkg/mod.py"),
        (["../outside.py"], ["outside.py"], None),
    ],
)  # fmt: skip
def test_repo_paths_find_exact_then_unique_suffix(
    candidates: list[str], paths: list[str], expected: str | None
) -> None:
    assert RepoPaths(paths).find(candidates) == expected


@pytest.mark.parametrize(
    "language",
    ["python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp",
     "csharp", "ruby", "php", "kotlin", "bash"],
)  # fmt: skip
def test_every_language_with_a_graph_finds_its_query_file(language: str) -> None:
    """A query file left out of the package (or a moved one) would silently give files
    without symbols; each language's query must load."""
    from pipeline.analysis.extraction import _query

    assert _query(language) is not None
