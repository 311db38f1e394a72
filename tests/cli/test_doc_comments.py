"""Doc comments per language (cli.doc_comments) and the multi-language set built on them.

The snippets are cut down from real code: gorilla/mux, spf13/cobra (Go), luxon and
commander (JavaScript), rxjs (TypeScript), Apache Commons CLI (Java), smallvec (Rust).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.doc_comments import DocFunction, blank_ranges, drop_name, read_doc_file
from cli.evaluation import build_set, query_text, source_files

GO = b"""// Package mux implements a request router and dispatcher.
package mux

// Router registers routes to be matched and dispatches a handler.
type Router struct {
\t// Routes to be matched, in order.
\troutes []*Route // not a doc comment: a trailing one
}

// NewRouter returns a new router instance.
func NewRouter() *Router {
\t// an ordinary comment stays
\treturn &Router{}
}

// ServeHTTP dispatches the handler registered in the matched route.
//
// When there is a match, the route variables can be retrieved calling
// mux.Vars(request).
//
//go:noinline
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
}

// A comment separated by a blank line documents nothing.

func lonely() {}
"""

JS = b"""/**
 * A DateTime is an immutable data structure representing a specific date and time.
 */
export default class DateTime {
  /**
   * Create a DateTime for the current instant, in the system's time zone.
   * @example DateTime.now().toISO()
   * @return {DateTime}
   */
  static now() {
    return new DateTime({});
  }

  /** Get the {@link DateTime#year year} of this instant, please. */
  get year() {
    return this.c.year;
  }
}

/**
 * Returns whether `x` is a DateTime instance or not.
 */
export const isDateTime = (x) => x instanceof DateTime;

/**
 * Parse an integer option value from the command line.
 */
exports.parseInt = function parseInt(value) {
  return Number(value); /** an inline JSDoc */
};
"""

TS = b"""/**
 * Converts the arguments to an observable sequence.
 */
export function of<T>(...args: T[]): Observable<T>;
export function of<T>(...args: Array<T>): Observable<T> {
  return from(args);
}

export class Subscriber<T> {
  /**
   * The {@link Observer} callback to receive notifications of type `next` from
   * the Observable, with a value.
   */
  @bound
  next(value: T): void {
    this._next(value);
  }
}
"""

JAVA = b"""package org.apache.commons.cli;

/**
 * Describes a single command-line option.
 */
public class Option {
    /**
     * Gets the display name for the argument value.
     *
     * @return the display name for the argument value.
     */
    @Override
    public String getArgName() {
        return argName;
    }

    /** Constructs a new {@code Option} with the given short name. */
    public Option(final String option) {
    }

    /* An ordinary block comment, not Javadoc. */
    void plain() {}
}
"""

RUST = b"""//! Small vectors in various sizes.

/// Creates a [`SmallVec`] containing the arguments.
#[macro_export]
macro_rules! smallvec { () => {} }

impl<A: Array> SmallVec<A> {
    /// Construct a new `SmallVec` from a `Vec<A::Item>`.
    ///
    /// Elements will be copied to the inline buffer if `vec.capacity() <= Self::inline_capacity()`.
    #[inline]
    pub fn from_vec(mut vec: Vec<A::Item>) -> SmallVec<A> {
        todo!()
    }

    //// Four slashes: an ordinary comment.
    fn spilled(&self) -> bool { false }
}

pub trait Array {
    /// Returns the number of items the array can hold.
    fn size() -> usize;
}
"""


def _by_name(source: bytes, language: str) -> dict[str, DocFunction]:
    doc_file = read_doc_file(source, language)
    assert doc_file is not None
    return {f.name: f for f in doc_file.functions}


def _same_lines(original: bytes, blanked: bytes) -> None:
    assert blanked.count(b"\n") == original.count(b"\n")


def test_go_doc_is_the_comment_block_directly_above_func_and_methods() -> None:
    found = _by_name(GO, "go")
    assert sorted(found) == ["NewRouter", "ServeHTTP"]
    assert found["NewRouter"] == DocFunction(
        "NewRouter", "NewRouter returns a new router instance.", 11, 14
    )
    serve = found["ServeHTTP"]
    assert serve.doc.startswith("ServeHTTP dispatches the handler registered in the matched")
    assert "go:noinline" not in serve.doc
    assert (serve.start_line, serve.end_line) == (22, 23)


def test_go_blanking_removes_declaration_docs_and_keeps_ordinary_comments() -> None:
    doc_file = read_doc_file(GO, "go")
    assert doc_file is not None
    out = doc_file.blanked
    _same_lines(GO, out)
    for gone in (b"implements a request", b"registers routes", b"Routes to be", b"returns a new"):
        assert gone not in out
    for kept in (b"an ordinary comment stays", b"a trailing one", b"documents nothing"):
        assert kept in out
    assert read_doc_file(out, "go") is not None  # still parses


def test_jsdoc_on_methods_getters_arrow_consts_and_assigned_functions() -> None:
    found = _by_name(JS, "javascript")
    assert sorted(found) == ["isDateTime", "now", "parseInt", "year"]
    assert (
        found["now"].doc == "Create a DateTime for the current instant, in the system's time zone."
    )
    assert (found["now"].start_line, found["now"].end_line) == (10, 12)
    assert found["year"].doc == "Get the year of this instant, please."
    assert found["isDateTime"].doc == "Returns whether x is a DateTime instance or not."
    assert (found["isDateTime"].start_line, found["isDateTime"].end_line) == (23, 23)
    assert (found["parseInt"].start_line, found["parseInt"].end_line) == (28, 30)


def test_jsdoc_blanking_removes_every_jsdoc_block_even_inline_ones() -> None:
    doc_file = read_doc_file(JS, "javascript")
    assert doc_file is not None
    _same_lines(JS, doc_file.blanked)
    assert b"/**" not in doc_file.blanked
    assert b"return Number(value);  \n" in doc_file.blanked


def test_typescript_skips_overload_signatures_and_keeps_decorators_in_the_span() -> None:
    found = _by_name(TS, "typescript")
    # The JSDoc sits above the overload signature, which has no body: no target.
    assert sorted(found) == ["next"]
    assert found["next"].doc.startswith("The Observer callback to receive notifications")
    assert (found["next"].start_line, found["next"].end_line) == (14, 17)


def test_javadoc_on_methods_and_constructors_stops_at_block_tags() -> None:
    found = _by_name(JAVA, "java")
    assert sorted(found) == ["Option", "getArgName"]
    assert found["getArgName"].doc == "Gets the display name for the argument value."
    assert (found["getArgName"].start_line, found["getArgName"].end_line) == (12, 15)
    assert found["Option"].doc == "Constructs a new Option with the given short name."
    doc_file = read_doc_file(JAVA, "java")
    assert doc_file is not None
    _same_lines(JAVA, doc_file.blanked)
    assert b"/**" not in doc_file.blanked
    assert b"An ordinary block comment" in doc_file.blanked


def test_rust_outer_docs_with_attributes_between_and_no_bodiless_trait_items() -> None:
    found = _by_name(RUST, "rust")
    assert sorted(found) == ["from_vec"]
    assert found["from_vec"].doc.startswith("Construct a new SmallVec from a Vec<A::Item>.")
    assert (found["from_vec"].start_line, found["from_vec"].end_line) == (11, 14)
    doc_file = read_doc_file(RUST, "rust")
    assert doc_file is not None
    out = doc_file.blanked
    _same_lines(RUST, out)
    for gone in (b"Small vectors", b"Creates a", b"Construct a new", b"Returns the number"):
        assert gone not in out
    assert b"//// Four slashes" in out
    assert read_doc_file(out, "rust") is not None


def test_a_file_that_does_not_parse_cleanly_or_is_not_utf8_is_refused() -> None:
    assert read_doc_file(b"func (\n", "go") is None
    assert read_doc_file(b"// \xff\xfe\npackage x\n", "go") is None
    with pytest.raises(ValueError, match="no doc-comment reader"):
        read_doc_file(b"", "cobol")


def test_blank_ranges_keeps_newlines_and_separates_tokens() -> None:
    assert blank_ranges(b"a/**x\ny*/b", [(1, 9)]) == b"a \nb"
    assert blank_ranges(b"abc", [(0, 1), (0, 1)]) == b" bc"


@pytest.mark.parametrize(
    ("text", "name", "query"),
    [
        ("ServeHTTP dispatches the handler.", "ServeHTTP", "dispatches the handler."),
        ("Calls `Router.ServeHTTP()` first.", "ServeHTTP", "Calls first."),
        ("See Option#getArgName for the name.", "getArgName", "See for the name."),
        ("Parses a header with parseHeader.", "parseHeader", "Parses a header with"),
        # split words and other cases are natural language: they stay
        ("Parse the header field.", "parseHeader", "Parse the header field."),
        ("Start the engine.", "start", "Start the engine."),
        ("Build a mux router.", "", "Build a mux router."),
    ],
)
def test_drop_name_removes_only_the_exact_identifier(text: str, name: str, query: str) -> None:
    assert drop_name(text, name) == query


def test_a_query_left_under_three_words_by_the_name_is_skipped() -> None:
    assert query_text("Close closes it.", "Close") is None
    assert query_text("NewRouter returns a new router.", "NewRouter") == "returns a new router."


def test_build_set_reads_every_language_and_leaves_out_tests_and_vendored_code(
    tmp_path: Path,
) -> None:
    files = {
        "mux.go": GO, "lib/datetime.js": JS, "src/Subscriber.ts": TS,
        "src/main/java/Option.java": JAVA, "src/lib.rs": RUST,
        "mux_test.go": GO, "vendor/x/mux.go": GO, "testdata/a.go": GO,
        "src/datetime.test.ts": TS, "src/a.spec.js": JS, "types/index.d.ts": TS,
        "src/test/java/OptionTest.java": JAVA, "benches/b.rs": RUST, "__tests__/a.js": JS,
        "dist/datetime.js": JS, "versioneer.py": b"", "README.md": b"# x\n",
        "src/tests.rs": RUST, "src/map/tests.rs": RUST,
    }  # fmt: skip
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    rels = [p.relative_to(tmp_path).as_posix() for p in source_files(tmp_path)]
    assert rels == [
        "lib/datetime.js", "mux.go", "src/Subscriber.ts", "src/lib.rs", "src/main/java/Option.java",
    ]  # fmt: skip
    eval_set = build_set(tmp_path)
    by_name = {q.name: q for q in eval_set.queries}
    assert by_name["NewRouter"].text == "returns a new router instance."
    assert by_name["NewRouter"].language == "go"
    assert by_name["now"].language == "javascript"
    assert by_name["next"].language == "typescript"
    assert by_name["getArgName"].language == "java"
    assert by_name["from_vec"].language == "rust"
    assert sorted(eval_set.files) == rels
    assert eval_set.unparsable == ()


CSHARP = b"""namespace Newtonsoft.Json
{
    /// <summary>
    /// Represents a reader that provides fast, non-cached, forward-only access to JSON data.
    /// </summary>
    public class JsonTextReader
    {
        /// <summary>
        /// Reads the next JSON token from the underlying <see cref="TextReader"/>.
        /// </summary>
        /// <returns><c>true</c> if the next token was read successfully.</returns>
        [DebuggerStepThrough]
        public override bool Read()
        {
            return true;
        }

        // An ordinary comment.
        private void Skip() { }
    }
}
"""

KOTLIN = b"""package kotlinx.coroutines

import kotlin.coroutines.CoroutineContext

/**
 * Launches a new coroutine without blocking the current thread.
 *
 * @param context additional to [CoroutineScope.coroutineContext] context.
 */
@ExperimentalStdlibApi
public fun CoroutineScope.launch(context: CoroutineContext): Job {
    return job
}

/** Returns the job of this scope, if any. */
public fun jobOf(): Job? = null
"""

PHP = b"""<?php

namespace Illuminate\\Support;

class Str
{
    /**
     * Return the remainder of a string after the first occurrence of a given value.
     *
     * @param  string  $subject
     * @return string
     */
    public static function after($subject, $search)
    {
        return $subject;
    }
}
"""

C = b"""/* An ordinary file header. */
#include <stdlib.h>

/**
 * @brief Create a new sds string with the content specified by the init pointer.
 * \\param init the initial content
 */
sds sdsnewlen(const void *init, size_t initlen) {
    return NULL;
}

/// Free an sds string, doing nothing if s is NULL.
void sdsfree(sds s) {
}
"""

CPP = b"""namespace fmt {
/// Formats arguments according to the specifications in the format string.
template <typename... T>
auto format(format_string<T...> fmt, T&&... args) -> std::string {
  return {};
}

/** Returns the number of characters written to the output buffer. */
size_t memory_buffer::size() const { return size_; }
}
"""


def test_csharp_xml_doc_keeps_the_summary_and_the_attribute_in_the_span() -> None:
    found = _by_name(CSHARP, "csharp")
    assert sorted(found) == ["Read"]
    assert found["Read"].doc == "Reads the next JSON token from the underlying TextReader."
    assert (found["Read"].start_line, found["Read"].end_line) == (12, 16)
    doc_file = read_doc_file(CSHARP, "csharp")
    assert doc_file is not None
    _same_lines(CSHARP, doc_file.blanked)
    assert b"///" not in doc_file.blanked
    assert b"An ordinary comment" in doc_file.blanked


def test_kotlin_kdoc_on_functions_with_block_and_expression_bodies() -> None:
    found = _by_name(KOTLIN, "kotlin")
    assert sorted(found) == ["jobOf", "launch"]
    assert found["launch"].doc == "Launches a new coroutine without blocking the current thread."
    assert (found["launch"].start_line, found["launch"].end_line) == (10, 13)
    assert found["jobOf"].doc == "Returns the job of this scope, if any."


def test_php_doc_on_methods() -> None:
    found = _by_name(PHP, "php")
    assert sorted(found) == ["after"]
    assert found["after"].doc.startswith("Return the remainder of a string after the first")
    assert (found["after"].start_line, found["after"].end_line) == (13, 16)


def test_c_and_cpp_doxygen_with_brief_qualified_names_and_templates() -> None:
    found = _by_name(C, "c")
    assert sorted(found) == ["sdsfree", "sdsnewlen"]
    assert found["sdsnewlen"].doc == (
        "Create a new sds string with the content specified by the init pointer."
    )
    doc_file = read_doc_file(C, "c")
    assert doc_file is not None
    assert b"An ordinary file header" in doc_file.blanked
    assert b"Create a new" not in doc_file.blanked and b"Free an sds" not in doc_file.blanked
    cpp = _by_name(CPP, "cpp")
    assert sorted(cpp) == ["format", "size"]
    assert cpp["size"].doc == "Returns the number of characters written to the output buffer."
    assert (cpp["format"].start_line, cpp["format"].end_line) == (3, 6)


def test_generic_type_parameters_are_not_taken_for_html_tags() -> None:
    source = b"/// Build a Vec<A> from a Map<K, B> and keep <b>order</b>.\nfn f() {}\n"
    assert _by_name(source, "rust")["f"].doc == ("Build a Vec<A> from a Map<K, B> and keep order.")


def test_build_set_leaves_out_the_tests_of_the_other_languages_too(tmp_path: Path) -> None:
    files = {
        "src/JsonTextReader.cs": CSHARP, "tests/JsonTextReaderTests.cs": CSHARP,
        "src/Launch.kt": KOTLIN, "src/LaunchTest.kt": KOTLIN,
        "src/Str.php": PHP, "src/StrTest.php": PHP,
        "src/sds.c": C, "src/test_sds.c": C, "src/fmt.cc": CPP, "src/fmt_test.cc": CPP,
        "src/fmt_unittest.cpp": CPP,
    }  # fmt: skip
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    eval_set = build_set(tmp_path)
    assert sorted(eval_set.files) == [
        "src/JsonTextReader.cs", "src/Launch.kt", "src/Str.php", "src/fmt.cc", "src/sds.c",
    ]  # fmt: skip
    languages = {q.name: q.language for q in eval_set.queries}
    assert languages == {
        "Read": "csharp", "launch": "kotlin", "jobOf": "kotlin", "after": "php",
        "sdsnewlen": "c", "sdsfree": "c", "format": "cpp", "size": "cpp",
    }  # fmt: skip


def test_keep_names_leaves_the_name_in_the_query_as_older_sets_did(tmp_path: Path) -> None:
    (tmp_path / "mux.go").write_bytes(GO)
    by_name = {q.name: q.text for q in build_set(tmp_path, keep_names=True).queries}
    assert by_name["NewRouter"] == "NewRouter returns a new router instance."
    assert {q.name: q.text for q in build_set(tmp_path).queries}["NewRouter"] == (
        "returns a new router instance."
    )
