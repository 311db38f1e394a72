"""Lexical text splits identifiers into words and keeps each identifier whole too."""

from __future__ import annotations

import pytest

from pipeline.search.lexical import identifier_parts, lexical_text

CASES = [
    ("getUserName", "getusername get user name"),
    ("parse_http_header", "parse_http_header parse http header"),
    ("HTTPServer", "httpserver http server"),
    ("XMLHttpRequest", "xmlhttprequest xml http request"),
    ("HTTP2Server", "http2server http2 server"),
    ("utf8Decode", "utf8decode utf8 decode"),
    ("x86_64", "x86_64 x86 64"),
    ("PARSE_HTTP", "parse_http parse http"),
    ("MAX_RETRIES_2", "max_retries_2 max retries 2"),
    ("__init__", "init"),
    ("_private_name", "private_name private name"),
    ("simple", "simple"),
    ("Simple", "simple"),
    ("ABC", "abc"),
    ("v2", "v2"),
    ("42", "42"),
    ("_", ""),
    ("größe_berechnen", "größe_berechnen größe berechnen"),
    ("django/utils/text.py", "django utils text py"),
    ("os.path.join(a, b)", "os path join a b"),
    ("self.getUserName()", "self getusername get user name"),
    ("user@example.com 1.5 v1.2.3", "user example com 1 5 v1 2 3"),
    ("a-b c--d", "a b c d"),
    ("", ""),
    ("  \n\t ", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_identifiers_are_kept_whole_and_split_into_words(text: str, expected: str) -> None:
    assert lexical_text(text) == expected


@pytest.mark.parametrize(
    ("identifier", "parts"),
    [
        ("getUserName", ["get", "user", "name"]),
        ("HTTPServer", ["http", "server"]),
        ("parseHTTP", ["parse", "http"]),
        ("snake_case_name", ["snake", "case", "name"]),
        ("IPv4Address", ["i", "pv4", "address"]),
        ("naïveCase", ["naïvecase"]),
    ],
)
def test_identifier_parts_follow_case_underscores_and_digits(
    identifier: str, parts: list[str]
) -> None:
    assert identifier_parts(identifier) == parts


def test_a_query_and_a_chunk_meet_on_the_same_words() -> None:
    chunk = lexical_text("def parse_http_header(raw):\n    return HTTPHeader.fromRaw(raw)")
    query = lexical_text("httpHeader parse")
    assert set(query.split()) - {"httpheader"} <= set(chunk.split())
    assert "httpheader" in chunk.split()


def test_output_is_lower_case_words_separated_by_single_spaces() -> None:
    text = lexical_text("class FooBar(Base):\n\tdef __call__(self, *args): ...  # TODO!")
    assert text == text.lower()
    assert "  " not in text and text == text.strip()
    assert all(word.replace("_", "").isalnum() for word in text.split())
