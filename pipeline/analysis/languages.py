"""Which language a file is in, and which tree-sitter grammar reads it.

Owns the extension and shebang tables and the grammar names. Languages without a
grammar (``text``) are still chunked, by line windows.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import functools
import re
from pathlib import PurePosixPath

from tree_sitter import Language
from tree_sitter_language_pack import SupportedLanguage, get_language

TEXT = "text"

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".ipp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".sh": "bash",
    ".bash": "bash",
    ".zsh": "bash",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".scala": "scala",
    ".swift": "swift",
    ".lua": "lua",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".sql": "sql",
    ".txt": TEXT,
    ".rst": TEXT,
}

_FILENAMES: dict[str, str] = {
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "Vagrantfile": "ruby",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".profile": "bash",
    ".zshrc": "bash",
}

_SHEBANG_INTERPRETERS: dict[str, str] = {
    "python": "python",
    "node": "javascript",
    "deno": "typescript",
    "ruby": "ruby",
    "php": "php",
    "sh": "bash",
    "bash": "bash",
    "zsh": "bash",
    "dash": "bash",
    "ksh": "bash",
}

_SHEBANG = re.compile(r"#!\s*(?:\S*/)?(?:env\s+(?:-\S+\s+)*)?([A-Za-z]+)")

# Languages that get a syntax tree; the value is the grammar's name in the language pack.
_GRAMMARS: dict[str, SupportedLanguage] = {
    "python": "python",
    "javascript": "javascript",
    "typescript": "typescript",
    "tsx": "tsx",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "csharp": "csharp",
    "ruby": "ruby",
    "php": "php",
    "kotlin": "kotlin",
    "bash": "bash",
    "markdown": "markdown",
    "scala": "scala",
    "swift": "swift",
    "lua": "lua",
    "json": "json",
    "yaml": "yaml",
    "toml": "toml",
    "html": "html",
    "css": "css",
    "sql": "sql",
}

CODE_LANGUAGES: frozenset[str] = frozenset(_GRAMMARS) - {
    "markdown",
    "json",
    "yaml",
    "toml",
    "html",
    "css",
}


def detect_language(path: str, head: str = "") -> str:
    """Language of ``path``: by extension, then file name, then a shebang in ``head``."""
    pure = PurePosixPath(path)
    language = _EXTENSIONS.get(pure.suffix.lower()) or _FILENAMES.get(pure.name)
    if language is not None:
        return language
    if head.startswith("#!"):
        match = _SHEBANG.match(head.split("\n", 1)[0])
        if match is not None:
            interpreter = match.group(1).rstrip("0123456789")
            return _SHEBANG_INTERPRETERS.get(interpreter, TEXT)
    return TEXT


def known_extensions() -> frozenset[str]:
    """Extensions with a known language (lower case, with the dot)."""
    return frozenset(_EXTENSIONS)


def has_grammar(language: str) -> bool:
    return language in _GRAMMARS


@functools.cache
def grammar(language: str) -> Language | None:
    """The tree-sitter language for ``language``, or None when it has no grammar."""
    name = _GRAMMARS.get(language)
    if name is None:
        return None
    try:
        return get_language(name)
    except LookupError:
        return None
