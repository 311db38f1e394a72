"""What a search may ask for: request checks, path globs as LIKE patterns, query words.

Pure: table-driven tests of :mod:`pipeline.search.query`, no services.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.analysis.language_names import LANGUAGES
from pipeline.errors import InvalidInputError
from pipeline.search.query import (
    MAX_TERMS,
    STOP_WORDS,
    SearchFilters,
    SearchRequest,
    check_request,
    glob_patterns,
    lexical_terms,
    like_matches,
)

GOOD = SearchRequest(tenant="acme", query="parse the http header")


def changed(**kwargs: object) -> SearchRequest:
    return replace(GOOD, **kwargs)  # type: ignore[arg-type]


def filtered(**kwargs: object) -> SearchRequest:
    return replace(GOOD, filters=SearchFilters(**kwargs))  # type: ignore[arg-type]


# --- check_request --------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        GOOD,
        changed(query="x" * 1000),
        changed(k=1),
        changed(k=1000),
        changed(mode="vector"),
        changed(mode="lexical"),
        changed(expand=("callers", "callees", "container")),
        changed(repos=tuple(f"r{i}" for i in range(50))),
        changed(repos=("x" * 200,)),
        filtered(kinds=("function", "method", "class", "module", "other")),
        filtered(languages=("python", "cpp", "csharp", "tsx", "text", "markdown")),
        filtered(languages=tuple(sorted(LANGUAGES))),
        filtered(path_glob="p" * 500),
    ],
)
def test_a_good_request_is_returned_as_given(request_: SearchRequest) -> None:
    assert check_request(request_) is request_


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (changed(tenant="Not A Tenant"), "tenant"),
        (changed(query=""), "q"),
        (changed(query="  \n\t "), "q"),
        (changed(query="x" * 1001), "q"),
        (changed(query="find\x00me"), "q"),
        (changed(query="\x00"), "q"),
        (changed(k=0), "k"),
        (changed(k=-3), "k"),
        (changed(k=1001), "k"),
        (changed(mode="fuzzy"), "mode"),
        (changed(mode="Hybrid"), "mode"),
        (changed(expand=("callers", "siblings")), "expand"),
        (filtered(kinds=("function", "lambda")), "kind"),
        (filtered(languages=("Python",)), "lang"),
        (filtered(languages=("",)), "lang"),
        (filtered(languages=("py thon",)), "lang"),
        (filtered(languages=("-python",)), "lang"),
        (filtered(languages=("a" * 41,)), "lang"),
        (filtered(languages=("klingon",)), "lang"),
        (filtered(languages=("python", "c++")), "lang"),
        (filtered(languages=("python\n",)), "lang"),
        (filtered(path_glob="p" * 501), "path"),
        (filtered(path_glob="src/\x00"), "path"),
        (changed(repos=tuple(f"r{i}" for i in range(51))), "repo"),
        (changed(repos=("app", "")), "repo"),
        (changed(repos=("x" * 201,)), "repo"),
        (changed(repos=("a\x00b",)), "repo"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(request_: SearchRequest, field: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"^{field}\b"):
        check_request(request_)


def test_the_messages_say_what_was_wrong() -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"^lang: 'klingon' is not a language Quarry knows; one of bash, c, ",
    ):
        check_request(filtered(languages=("klingon",)))
    with pytest.raises(InvalidInputError, match=r"^q: the query is 1001 characters long; at most"):
        check_request(changed(query="x" * 1001))
    with pytest.raises(InvalidInputError, match=r"^k: must be between 1 and 1000, got 0$"):
        check_request(changed(k=0))
    with pytest.raises(InvalidInputError, match=r"^mode: 'fuzzy' is not one of hybrid,"):
        check_request(changed(mode="fuzzy"))
    with pytest.raises(InvalidInputError, match=r"^repo: at most 50 repositories, got 51$"):
        check_request(changed(repos=tuple(f"r{i}" for i in range(51))))
    with pytest.raises(InvalidInputError, match=r"^expand: 'siblings' is not one of"):
        check_request(changed(expand=("siblings",)))


def test_the_first_bad_field_is_the_one_named() -> None:
    both = changed(query="", k=0, mode="nope")
    with pytest.raises(InvalidInputError, match=r"^q:"):
        check_request(both)
    with pytest.raises(InvalidInputError, match=r"^k:"):
        check_request(replace(both, query="ok"))


def test_a_long_bad_value_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_request(changed(mode="m" * 5000))
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("mode", "retrievers"),
    [("hybrid", ("vector", "lexical")), ("vector", ("vector",)), ("lexical", ("lexical",))],
)
def test_the_mode_picks_the_retrievers(mode: str, retrievers: tuple[str, ...]) -> None:
    assert changed(mode=mode).retrievers == retrievers


def test_request_defaults() -> None:
    request = SearchRequest(tenant="acme", query="q")
    assert (request.k, request.mode, request.repos, request.expand) == (10, "hybrid", (), ())
    assert request.filters == SearchFilters()
    assert request.filters.path_patterns == ()


# --- path globs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "patterns"),
    [
        ("src/app", ("src/app", "src/app/%")),
        ("src/app/", ("src/app", "src/app/%")),
        ("src/app//", ("src/app", "src/app/%")),
        ("./src/app", ("src/app", "src/app/%")),
        ("/src/app", ("src/app", "src/app/%")),
        (".//src", ("src", "src/%")),
        ("  src  ", ("src", "src/%")),
        ("*.py", ("%.py",)),
        ("src/*/x.py", ("src/%/x.py",)),
        ("src/?.py", ("src/_.py",)),
        ("./src/*", ("src/%",)),
        ("docs/guide_1%.md", (r"docs/guide\_1\%.md", r"docs/guide\_1\%.md/%")),
        ("a\\b*", (r"a\\b%",)),
        ("my_*", (r"my\_%",)),
        ("", ("%",)),
        ("./", ("%",)),
        ("/", ("%",)),
        ("   ", ("%",)),
    ],
)
def test_glob_patterns(glob: str, patterns: tuple[str, ...]) -> None:
    assert glob_patterns(glob) == patterns


def test_filters_give_the_patterns_of_their_glob() -> None:
    assert SearchFilters(path_glob="./lib").path_patterns == ("lib", "lib/%")
    assert SearchFilters(path_glob="").path_patterns == ()


@pytest.mark.parametrize(
    ("glob", "path", "found"),
    [
        ("src/app", "src/app", True),
        ("src/app", "src/app/main.py", True),
        ("src/app", "src/app/deep/er/x.py", True),
        ("src/app", "src/application.py", False),
        ("src/app", "src/ap", False),
        ("src/app", "lib/src/app/x.py", False),
        ("src/app/", "src/app/x.py", True),
        ("./src/app", "src/app/x.py", True),
        ("*.py", "x.py", True),
        ("*.py", "src/deep/x.py", True),
        ("*.py", "x.pyc", False),
        ("src/*.py", "src/a/b.py", True),
        ("src/?.py", "src/a.py", True),
        ("src/?.py", "src/ab.py", False),
        ("src/?.py", "src/.py", False),
        ("guide_1%.md", "guide_1%.md", True),
        ("guide_1%.md", "guideX1%.md", False),
        ("guide_1%.md", "guide_1abc.md", False),
        ("a\\b", "a\\b", True),
        ("a\\b", "ab", False),
        ("a.c", "abc", False),
        ("(x)+[y]", "(x)+[y]", True),
        ("SRC", "src", False),
        ("a*b", "a\nb", True),
        ("", "anything/at/all.py", True),
    ],
)
def test_glob_patterns_match_as_a_glob_would(glob: str, path: str, found: bool) -> None:
    assert any(like_matches(p, path) for p in glob_patterns(glob)) is found


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("%", "", True),
        ("%", "anything", True),
        ("_", "a", True),
        ("_", "", False),
        ("_", "ab", False),
        ("a%z", "a/b/z", True),
        (r"a\%", "a%", True),
        (r"a\%", "ab", False),
        (r"a\_", "a_", True),
        (r"a\_", "ab", False),
        (r"a\\", "a\\", True),
        ("a.c", "a.c", True),
        ("a.c", "abc", False),
        ("a$", "a$", True),
        ("abc", "abcd", False),
        ("bcd", "abcd", False),
    ],
)
def test_like_matches(pattern: str, text: str, found: bool) -> None:
    assert like_matches(pattern, text) is found


# --- query words ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("parse the http header", ["parse", "http", "header"]),
        ("getUserName", ["getusername", "get", "user", "name"]),
        ("parse_http_header", ["parse_http_header", "parse", "http", "header"]),
        ("HTTPServer", ["httpserver", "http", "server"]),
        ("How do I open a pool?", ["open", "pool"]),
        ("HTTP http Http", ["http"]),
        ("header the parse header", ["header", "parse"]),
        ("get_the_value", ["get_the_value", "get", "value"]),
        ("os.path.join(a, b)", ["os", "path", "join", "b"]),
        ("the of", ["the", "of"]),
        ("how to use it", ["how", "to", "use", "it"]),
        ("The THE the", ["the"]),
        ("", []),
        ("!!! ??? ...", []),
        ("__init__", ["init"]),
    ],
)
def test_lexical_terms(query: str, terms: list[str]) -> None:
    assert lexical_terms(query) == terms


def test_lexical_terms_keep_at_most_max_terms_in_query_order() -> None:
    words = [f"w{i}" for i in range(MAX_TERMS + 8)]
    assert MAX_TERMS == 32
    assert lexical_terms(" ".join(words)) == words[:MAX_TERMS]


def test_lexical_terms_count_the_limit_after_dropping_stop_words() -> None:
    stop = sorted(STOP_WORDS)[:40]
    words = [f"w{i}" for i in range(MAX_TERMS)]
    query = " ".join(w for pair in zip(stop, words, strict=False) for w in pair)
    assert lexical_terms(query) == words


def test_stop_words_are_lower_case_words() -> None:
    assert {"the", "a", "of", "how", "using"} <= STOP_WORDS
    assert all(w.isalpha() and w.islower() for w in STOP_WORDS)
    assert "parse" not in STOP_WORDS


@pytest.mark.parametrize(
    ("path", "matched"),
    [("setup.py", True), ("src/app/main.py", True), ("src/app/main.pyc", False)],
)
def test_a_double_star_glob_reaches_files_at_the_root_and_below(path: str, matched: bool) -> None:
    (pattern,) = glob_patterns("**/*.py")
    assert like_matches(pattern, path) is matched
