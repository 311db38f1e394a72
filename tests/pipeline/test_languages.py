"""Language detection from file extension, file name and shebang."""

from __future__ import annotations

import pytest

from pipeline.analysis.languages import TEXT, detect_language, grammar

CASES = [
    ("a.py", "", "python"),
    ("a.PY", "", "python"),
    ("a.js", "", "javascript"),
    ("a.mjs", "", "javascript"),
    ("a.ts", "", "typescript"),
    ("a.tsx", "", "tsx"),
    ("a.go", "", "go"),
    ("a.rs", "", "rust"),
    ("A.java", "", "java"),
    ("a.c", "", "c"),
    ("a.h", "", "c"),
    ("a.cpp", "", "cpp"),
    ("a.hpp", "", "cpp"),
    ("A.cs", "", "csharp"),
    ("a.rb", "", "ruby"),
    ("Rakefile", "", "ruby"),
    ("a.php", "", "php"),
    ("a.kt", "", "kotlin"),
    ("a.sh", "", "bash"),
    ("README.md", "", "markdown"),
    ("notes.txt", "", TEXT),
    ("bin/tool", "#!/usr/bin/env python3\nprint(1)\n", "python"),
    ("bin/tool", "#!/usr/bin/python3.11\n", "python"),
    ("bin/run", "#!/bin/bash\necho\n", "bash"),
    ("bin/run", "#!/usr/bin/env -S node --harmony\n", "javascript"),
    ("bin/run", "#!/usr/bin/env ruby\n", "ruby"),
    ("bin/run", "#!/usr/bin/env perl\n", TEXT),
    ("Makefile", "all:\n", TEXT),
    ("data.unknownext", "", TEXT),
]


@pytest.mark.parametrize(("path", "head", "expected"), CASES)
def test_detect_language(path: str, head: str, expected: str) -> None:
    assert detect_language(path, head) == expected


@pytest.mark.parametrize(
    "language",
    ["python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "csharp",
     "ruby", "php", "kotlin", "bash", "markdown"],
)  # fmt: skip
def test_required_languages_have_a_grammar(language: str) -> None:
    assert grammar(language) is not None


def test_text_has_no_grammar() -> None:
    assert grammar(TEXT) is None
