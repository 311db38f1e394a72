"""Which language a file is in, and which tree-sitter grammar reads it.

Owns the grammar names (the extension and shebang tables are in language_names,
re-exported here). Languages without a
grammar (``text``) are still chunked, by line windows.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import functools

from tree_sitter import Language
from tree_sitter_language_pack import SupportedLanguage, get_language

from pipeline.analysis.language_names import (
    LANGUAGES,
    TEXT,
    detect_language,
    known_extensions,
)

__all__ = [
    "CODE_LANGUAGES",
    "LANGUAGES",
    "TEXT",
    "detect_language",
    "grammar",
    "has_grammar",
    "known_extensions",
]

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
