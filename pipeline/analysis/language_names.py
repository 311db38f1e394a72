"""Which language a file is in: the extension, file-name and shebang tables, and the
names a file's language can have (what a search's ``lang`` filter may name).

Pure and light: the API validates filters with it without loading tree-sitter
(pipeline/analysis/languages.py adds the grammars).
Must not import: celery, tasks/, workers/, api/, cli/, tree-sitter, or any driver.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

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


LANGUAGES: frozenset[str] = frozenset(
    {TEXT, *_EXTENSIONS.values(), *_FILENAMES.values(), *_SHEBANG_INTERPRETERS.values()}
)
"""Every language a file can be given."""
