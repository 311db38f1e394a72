"""What a search asks for: the checked request, its filters, and the lexical query text.

Owns the limits of a request (query length, k, modes, expansions, filters), the errors
that name the bad field, the translation of a path glob into SQL ``LIKE`` patterns, and
the words of the full-text query (``pipeline.search.lexical`` on the query, as on the chunks,
minus English stop words). Pure: no I/O.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pipeline.analysis.language_names import LANGUAGES
from pipeline.errors import InvalidInputError
from pipeline.jobs import check_tenant
from pipeline.models import ChunkKind
from pipeline.refs import check_commit_prefix, check_ref_name
from pipeline.search.lexical import lexical_text

MODES = ("hybrid", "vector", "lexical")
RETRIEVERS = ("vector", "lexical")
EXPANSIONS = ("callers", "callees", "container")
KINDS = tuple(kind.value for kind in ChunkKind)
MAX_QUERY_CHARS = 1000
MAX_K = 1000
MAX_REPOS = 50
MAX_TERMS = 32
MAX_GLOB_CHARS = 500

# Words that carry no meaning for finding code. The index keeps them (the 'simple'
# configuration); only the query drops them, and only when other words remain.
STOP_WORDS = frozenset(
    re.findall(
        r"[a-z]+",
        """a about above after again all also am an and any are as at be been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself
    just me more most my no nor not now of off on once only or other our out over own same
    she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who
    whom why will with would you your given using used use""",
    )
)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Which chunks may be found: languages, a path glob, chunk kinds (empty: all)."""

    languages: tuple[str, ...] = ()
    path_glob: str = ""
    kinds: tuple[str, ...] = ()

    @property
    def path_patterns(self) -> tuple[str, ...]:
        return glob_patterns(self.path_glob) if self.path_glob else ()


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One search of one tenant's index; ``repos`` empty means all its repositories."""

    tenant: str
    query: str
    repos: tuple[str, ...] = ()
    filters: SearchFilters = field(default_factory=SearchFilters)
    k: int = 10
    mode: str = "hybrid"
    expand: tuple[str, ...] = ()
    ref: str | None = None  # None: each repository's default ref (pipeline/refs.py)
    commit: str | None = None  # as of this commit (a prefix), when a ref holds it

    @property
    def retrievers(self) -> tuple[str, ...]:
        return RETRIEVERS if self.mode == "hybrid" else (self.mode,)


def check_request(request: SearchRequest) -> SearchRequest:
    """The request as given, or an InvalidInputError naming the first bad field."""
    check_tenant(request.tenant)
    query = request.query
    if not query.strip():
        raise InvalidInputError("q: the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"q: the query is {len(query)} characters long; at most {MAX_QUERY_CHARS}"
        )
    if "\x00" in query:
        raise InvalidInputError("q: the query holds a NUL character")
    if not 1 <= request.k <= MAX_K:
        raise InvalidInputError(f"k: must be between 1 and {MAX_K}, got {request.k}")
    _one_of("mode", [request.mode], MODES)
    _one_of("expand", request.expand, EXPANSIONS)
    _one_of("kind", request.filters.kinds, KINDS)
    for language in request.filters.languages:
        if language not in LANGUAGES:
            raise InvalidInputError(
                f"lang: {language[:50]!r} is not a language Quarry knows; one of"
                f" {', '.join(sorted(LANGUAGES))}"
            )
    glob = request.filters.path_glob
    if len(glob) > MAX_GLOB_CHARS or "\x00" in glob:
        raise InvalidInputError(
            f"path: a glob of at most {MAX_GLOB_CHARS} characters without NUL, got"
            f" {len(glob)} characters"
        )
    if len(request.repos) > MAX_REPOS:
        raise InvalidInputError(f"repo: at most {MAX_REPOS} repositories, got {len(request.repos)}")
    for repo in request.repos:
        if not repo or len(repo) > 200 or "\x00" in repo:
            raise InvalidInputError(f"repo: {repo[:50]!r} is not a repository name")
    if request.ref is not None:
        check_ref_name(request.ref)
    if request.commit is not None:
        request = replace(request, commit=check_commit_prefix(request.commit))  # lower case
    return request


def _one_of(name: str, values: Iterable[str], allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise InvalidInputError(f"{name}: {value[:50]!r} is not one of {', '.join(allowed)}")


def glob_patterns(glob: str) -> tuple[str, ...]:
    """SQL ``LIKE`` patterns (escape ``\\``) of a path glob.

    ``*`` matches any characters, ``/`` included (so ``**/`` is the same as ``*``: any
    folders, or none); ``?`` matches one. A glob without
    wildcards names a file or a folder: ``src/app`` matches ``src/app`` and everything
    under ``src/app/``. A leading ``./`` or ``/`` is ignored.
    """
    glob = glob.strip()
    while glob.startswith(("./", "/")):
        glob = glob[2:] if glob.startswith("./") else glob[1:]
    glob = glob.replace("**/", "*").replace("**", "*")  # `*` already crosses folders
    if not glob:
        return ("%",)
    like = "".join(_like_char(c) for c in glob)
    if "*" in glob or "?" in glob:
        return (like,)
    stem = like.rstrip("/")
    return (stem, f"{stem}/%")


def _like_char(char: str) -> str:
    if char == "*":
        return "%"
    if char == "?":
        return "_"
    if char in "\\%_":
        return "\\" + char
    return char


def like_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches a ``LIKE`` pattern of :func:`glob_patterns` (for fakes)."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(out), text, flags=re.DOTALL) is not None


def lexical_terms(query: str) -> list[str]:
    """The full-text words of a query: identifiers whole and split, as the index has
    them; stop words dropped unless nothing else is left; at most :data:`MAX_TERMS`."""
    words = list(dict.fromkeys(lexical_text(query).split()))
    kept = [w for w in words if w not in STOP_WORDS] or words
    return kept[:MAX_TERMS]
