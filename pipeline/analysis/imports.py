"""Resolve an import as written in source to a file of the same repository.

Owns the per-language rules that turn ``from .pkg import x``, ``"./util"``,
``crate::util::shout`` or ``#include "util.h"`` into candidate repo paths, and
:class:`RepoPaths`, the path index that answers exact and unique-suffix lookups.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable

_JS_EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts")


class RepoPaths:
    """Repo-relative POSIX paths, indexed by file name for suffix lookups."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = frozenset(paths)
        # Keyed by the last two path parts: `__init__.py` alone would match thousands.
        self._by_tail: dict[str, list[str]] = {}
        self._folders: dict[str, dict[str, list[str]]] = {}
        for path in sorted(self.paths):
            self._by_tail.setdefault(_tail(path), []).append(path)
            self._by_tail.setdefault(posixpath.basename(path), []).append(path)

    def find(self, candidates: Iterable[str]) -> str | None:
        """First candidate that is a path; else the first with exactly one path ending in it."""
        ordered = [posixpath.normpath(c) for c in candidates if c]
        for candidate in ordered:
            if candidate in self.paths:
                return candidate
        for candidate in ordered:
            if candidate.startswith("../"):
                continue
            suffix = "/" + candidate
            hits = [p for p in self._by_tail.get(_tail(candidate), ()) if p.endswith(suffix)]
            if len(hits) == 1:
                return hits[0]
        return None

    def in_directory(self, import_path: str, extension: str) -> str | None:
        """First file with ``extension`` in the longest folder that ``import_path`` ends with.

        Go imports name a folder by its module path (``example.com/m/pkg/util``); the
        repository holds it as ``pkg/util``, so the folder is a suffix of the import.
        """
        folders = self._folders.get(extension)
        if folders is None:
            folders = self._folders[extension] = {}
            for path in sorted(self.paths):
                if path.endswith(extension) and not path.endswith("_test" + extension):
                    folders.setdefault(posixpath.dirname(path), []).append(path)
        parts = import_path.strip("/").split("/")
        for first in range(len(parts)):
            files = folders.get("/".join(parts[first:]))
            if files:
                return files[0]
        return None


def _tail(path: str) -> str:
    return "/".join(path.rsplit("/", 2)[-2:])


def resolve_import(
    language: str, importer: str, module: str, name: str | None, repo: RepoPaths
) -> str | None:
    """Repo path that ``module`` (and ``name`` imported from it) refers to, or None."""
    module = module.strip().strip("\"'`<>")
    if not module:
        return None
    if language == "go":
        return repo.in_directory(module, ".go")
    rule = _RULES.get(language)
    if rule is None:
        return None
    return repo.find(rule(posixpath.dirname(importer), module, name))


def _python(directory: str, module: str, name: str | None) -> list[str]:
    dots = len(module) - len(module.lstrip("."))
    rest = module[dots:].replace(".", "/")
    base = directory
    if dots:
        for _ in range(dots - 1):
            base = posixpath.dirname(base)
    targets = [f"{rest}/{name}" if rest else name] if name else []
    targets.append(rest)
    candidates: list[str] = []
    for target in targets:
        if not target:
            continue
        stem = posixpath.join(base, target) if dots else target
        candidates += [stem + ".py", stem + "/__init__.py", stem + ".pyi"]
    return candidates


def _javascript(directory: str, module: str, _name: str | None) -> list[str]:
    if not module.startswith("."):
        return []
    stem = posixpath.normpath(posixpath.join(directory, module))
    return [
        stem,
        *(stem + ext for ext in _JS_EXTENSIONS),
        *(stem + "/index" + ext for ext in _JS_EXTENSIONS),
    ]


def _rust(directory: str, module: str, _name: str | None) -> list[str]:
    parts = [p for p in module.split("{", 1)[0].split("::") if p]
    if len(parts) == 1 and parts[0].isidentifier():
        # `mod name;` declares a sibling file.
        return [posixpath.join(directory, parts[0] + ".rs"), f"{directory}/{parts[0]}/mod.rs"]
    if parts and parts[0] == "super":
        directory = posixpath.dirname(directory)
    parts = [p for p in parts if p not in {"crate", "self", "super"}]
    candidates: list[str] = []
    while parts:
        stem = "/".join(parts)
        candidates += [stem + ".rs", stem + "/mod.rs"]
        parts.pop()
    return candidates


def _dotted(extensions: tuple[str, ...]) -> Callable[[str, str, str | None], list[str]]:
    def rule(_directory: str, module: str, _name: str | None) -> list[str]:
        parts = module.replace("\\", ".").replace("::", ".").split(".")
        candidates: list[str] = []
        while parts:
            candidates += ["/".join(parts) + ext for ext in extensions]
            parts.pop()
        return candidates

    return rule


def _relative_file(extensions: tuple[str, ...]) -> Callable[[str, str, str | None], list[str]]:
    def rule(directory: str, module: str, _name: str | None) -> list[str]:
        stems = [posixpath.join(directory, module), module]
        return [stem + ext for stem in stems for ext in ("", *extensions)]

    return rule


def _php(directory: str, module: str, name: str | None) -> list[str]:
    if module.endswith(".php") or "/" in module:
        return _relative_file(())(directory, module, name)
    return _dotted((".php",))(directory, module.lstrip("\\"), name)


_RULES: dict[str, Callable[[str, str, str | None], list[str]]] = {
    "python": _python,
    "javascript": _javascript,
    "typescript": _javascript,
    "tsx": _javascript,
    "rust": _rust,
    "java": _dotted((".java",)),
    "kotlin": _dotted((".kt", ".kts", ".java")),
    "c": _relative_file(()),
    "cpp": _relative_file(()),
    "ruby": _relative_file((".rb",)),
    "php": _php,
    "bash": _relative_file((".sh", ".bash")),
}
