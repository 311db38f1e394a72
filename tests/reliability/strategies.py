"""Hypothesis strategies for hostile input: file bytes, file names and trees.

File bytes mix plausible code of a language (its brackets, keywords, strings, comments)
with what breaks readers: NUL and control bytes, byte order marks, every newline
convention, invalid and overlong UTF-8, UTF-8-encoded surrogates, very long lines and
deep nesting (up to 5,000 levels of a language's own brackets, blocks or indentation).

Must not import: anything of the product; this is test data.
"""

from __future__ import annotations

import codecs

from hypothesis import strategies as st

# Extension of each language the chunk worker parses (a grammar each), plus plain text.
EXTENSIONS: dict[str, str] = {
    "python": ".py",
    "javascript": ".js",
    "typescript": ".ts",
    "tsx": ".tsx",
    "go": ".go",
    "rust": ".rs",
    "c": ".c",
    "cpp": ".cpp",
    "java": ".java",
    "csharp": ".cs",
    "ruby": ".rb",
    "php": ".php",
    "kotlin": ".kt",
    "bash": ".sh",
    "scala": ".scala",
    "swift": ".swift",
    "lua": ".lua",
    "json": ".json",
    "yaml": ".yaml",
    "toml": ".toml",
    "html": ".html",
    "css": ".css",
    "sql": ".sql",
    "markdown": ".md",
    "text": ".txt",
}

_COMMON = [
    "{", "}", "(", ")", "[", "]", "<", ">", ";", ",", ".", ":", "=", "+", "-", "*", "/",
    '"', "'", "`", "\\", "#", "//", "/*", "*/", "<!--", "-->", "${", "#{", "@", "$", "%",
    "    ", "\t", " ", "x", "foo", "0", "1.5e309", "0x", "\u00e9", "\u4e2d", "\U0001f600",
]  # fmt: skip
TOKENS: dict[str, list[str]] = {
    "python": ["def f(x):", "class A:", "if x:", "elif", "else:", "lambda", "f'{", "'''",
               '"""', "@dec", "import os", "from . import", "async def", "yield", "pass"],
    "javascript": ["function f(){", "class A{", "=>", "${", "`", "/re/g", "import x from",
                   "export default", "<div>", "</div>", "async", "await", "?.", "??"],
    "go": ["package main", "func f() {", "type T struct {", "interface{", "go ", "chan",
           "select {", "case", "`raw`", "import (", "defer"],
    "rust": ["fn f() {", "impl A {", "mod m {", "r#\"", "\"#", "'a", "macro_rules! m {",
             "unsafe {", "match x {", "=>", "#[derive(", "::<"],
    "c": ["#include <x.h>", "#define X", "#if 0", "#endif", "int f(void) {", "struct s {",
          "typedef", "/*", "*/", "??/", "R\"(", ")\""],
    "json": ['{"a":', "[", "]", "{", "}", ",", "null", "true", '"\\u0000"', '"\\ud800"',
             "1e999", "-0", '"'],
    "yaml": ["a:", "- ", "? ", ": ", "|", ">", "&a", "*a", "!!str", "---", "...", "  ",
             "[", "{", "#"],
    "markdown": ["# ", "> ", "- ", "1. ", "```", "~~~", "    ", "|a|b|", "---", "<div>",
                 "[x]: ", "*", "_", "\\"],
    "html": ["<div>", "</div>", "<script>", "</script>", "<!--", "-->", "<p>", "&amp;",
             "<![CDATA[", "<style>", "<x-a b='", "'>"],
    "ruby": ["def f", "end", "class A", "<<~E", "E", '"#{', "}", "do |x|", "%w[", "=begin"],
    "bash": ["if true; then", "fi", "<<EOF", "EOF", "$(", ")", "case x in", "esac", "${x:-"],
}  # fmt: skip

# (opener, closer) pairs a language nests; a line break may follow each opener.
NESTERS: dict[str, list[tuple[str, str]]] = {
    "python": [("[", "]"), ("(", ")"), ("{", "}")],
    "javascript": [("{", "}"), ("(", ")"), ("[", "]"), ("`${", "}`"), ("function f(){", "}")],
    "typescript": [("A<", ">"), ("{", "}"), ("(", ")")],
    "tsx": [("<div>", "</div>"), ("{", "}")],
    "go": [("{", "}"), ("if x {", "}"), ("(", ")")],
    "rust": [("{", "}"), ("mod a {", "}"), ("(", ")"), ("[", "]")],
    "c": [("{", "}"), ("if (x) {", "}"), ("#if A\n", "#endif\n"), ("(", ")")],
    "cpp": [("namespace a {", "}"), ("A<", ">"), ("{", "}")],
    "java": [("class A {", "}"), ("{", "}")],
    "csharp": [("namespace A {", "}"), ("{", "}")],
    "ruby": [("def f\n", "end\n"), ('"#{', '}"'), ("[", "]")],
    "php": [("if ($x) {", "}"), ("[", "]")],
    "kotlin": [("fun f() {", "}"), ("(", ")")],
    "bash": [("if true; then\n", "fi\n"), ('"$(', ')"'), ("{ ", "; }")],
    "scala": [("object A {", "}"), ("(", ")")],
    "swift": [("func f() {", "}"), ("[", "]")],
    "lua": [("function f()\n", "end\n"), ("{", "}")],
    "json": [("[", "]"), ('{"a":', "}")],
    "yaml": [("[", "]"), ("{a: ", "}")],
    "toml": [("[", "]"), ("{a = ", "}")],
    "html": [("<div>", "</div>"), ("<p>", ""), ("<x-y>", "")],
    "css": [("a {", "}"), ("@media x {", "}")],
    "sql": [("(SELECT ", ")"), ("(", ")")],
    "markdown": [("> ", ""), ("- ", ""), ("1. ", ""), ("* ", "")],
    "text": [("(", ")")],
}

NEWLINES = ["\n", "\r\n", "\r", "\n\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", ""]
BOMS = [codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
        codecs.BOM_UTF32_BE]  # fmt: skip
BAD_BYTES = [
    b"\x00", b"\x00\x00\x00", b"\xff", b"\xfe", b"\xc0\x80", b"\xc3", b"\xe2\x82",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80", b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80", b"\x80", b"\xbf", b"\xef\xbf\xbd", b"\x1b[31m", b"\x7f",
    b"\x01\x02\x03", b"\r", b"\xe2\x80\xae",
]  # fmt: skip

languages = st.sampled_from(sorted(EXTENSIONS))


def _nested(language: str) -> st.SearchStrategy[bytes]:
    """Levels of one of the language's nesting pairs: brackets on one line or one per
    line (up to 5,000), indented openers (up to 1,200) or growing prefixes (up to 600)."""

    def flat(pair: tuple[str, str], depth: int, newline: str) -> bytes:
        opener, closer = pair
        return ((opener + newline) * depth + "x" + (closer + newline) * depth).encode()

    def indented(pair: tuple[str, str], depth: int) -> bytes:
        opener, closer = pair
        lines = [" " * level + opener for level in range(depth)]
        return ("\n".join(lines) + "\n" + closer * depth).encode()

    def prefixed(pair: tuple[str, str], depth: int) -> bytes:
        marker = pair[0].strip() or pair[0]
        return "".join(marker * level + " x\n" for level in range(depth)).encode()

    pairs = st.sampled_from(NESTERS[language])
    return st.one_of(
        st.builds(flat, pairs, st.integers(0, 5_000), st.sampled_from(["\n", "", "\r"])),
        st.builds(indented, pairs, st.integers(0, 1_200)),
        st.builds(prefixed, pairs, st.integers(0, 600)),
    )


def _fragment(language: str) -> st.SearchStrategy[bytes]:
    words = TOKENS.get(language, []) + _COMMON
    return st.one_of(
        st.sampled_from(words).map(lambda w: w.encode("utf-8")),
        st.sampled_from(NEWLINES).map(lambda n: n.encode("utf-8")),
        st.sampled_from(BAD_BYTES),
        st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=24),
        st.builds(
            lambda ch, n: ch * n,
            st.sampled_from([b"x", b" ", b"(", b"\t", b"a ", "\u626f".encode(), "\u00e9".encode()]),
            st.integers(1, 12_000),
        ),
    )


def file_bytes(language: str) -> st.SearchStrategy[bytes]:
    """Hostile content for a file of ``language``."""
    mixed = st.lists(_fragment(language), max_size=40).map(b"".join)
    encoded = st.builds(
        lambda text, codec: text.encode(codec, "surrogatepass" if "utf" in codec else "replace"),
        st.text(max_size=300),
        st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "cp1252", "latin-1"]),
    )
    body = st.one_of(mixed, _nested(language), st.binary(max_size=2_000), encoded)
    with_bom = st.tuples(st.sampled_from([b"", b"", *BOMS]), body).map(b"".join)
    return st.one_of(with_bom, st.just(b""), st.sampled_from(BAD_BYTES))


@st.composite
def named_file(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(language, path, bytes) of one hostile file."""
    language = draw(languages)
    stem = draw(st.sampled_from(["a", "my file", "caf\u00e9", "\u4e2d\u6587", "x.min", "-rf",
                                 "a b/c d", ".hidden", "dir/sub/mod", "gen_pb2"]))  # fmt: skip
    return language, stem + EXTENSIONS[language], draw(file_bytes(language))


# File names as bytes (a POSIX name may be any bytes but "/" and NUL).
file_names = st.one_of(
    st.sampled_from([b"a.py", b"with space.py", b"caf\xc3\xa9.md", b"caf\xe9.py", b"\xff\xfe.js",
                     b"-n.go", b"--help.rs", b"..py", b"...", b" lead.c", b"trail .json",
                     b"new\nline.py", b"tab\there.yaml", b"back\\slash.md", b"\xe2\x80\xae.txt",
                     b"x" * 250 + b".py", b"*.py", b"[a].py", b"#x.sh", b"$HOME.sh",
                     b".gitignore", b"package-lock.json", b"a.min.js", b"a.lock"]),
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")),
    st.text(min_size=1, max_size=30).map(
        lambda t: t.encode("utf-8", "surrogateescape").replace(b"/", b"_").replace(b"\0", b"_")
    ),
).filter(lambda n: n not in (b".", b".."))  # fmt: skip

ignore_lines = st.lists(
    st.one_of(
        st.sampled_from(["*.py", "!keep.py", "\\", "!", "[z-a]", "[[:alpha:]]", "**/", "/",
                         "#c", "a/**/b", "\\!x", "*" * 50, "[", "?", "\x00", "\udcff"]),
        st.text(max_size=20),
    ),
    max_size=8,
)  # fmt: skip
