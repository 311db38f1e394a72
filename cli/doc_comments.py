"""Doc comments of Go, TypeScript/JavaScript, Java, Rust, C#, Kotlin, PHP and C/C++:
read them, blank them.

The pure half of the multi-language evaluation set (``cli.evaluation`` keeps Python's
docstrings, read with ``ast``). For one file's bytes and language:

- **Documented functions.** A function's doc comment is the language's doc comment
  placed directly above it, no blank line between (decorators and attributes may sit
  between comment and function, and then belong to the function's lines):

  ========== =================================================== =========================
  language   doc comment                                         functions
  ========== =================================================== =========================
  Go         the ``//`` (or ``/* */``) block above it             ``func``, methods
  TS / JS    the closest ``/** ... */`` (JSDoc)                   function declarations,
                                                                  methods, ``const f =``
                                                                  arrow/function values,
                                                                  ``x.f = function``
  Java       the closest ``/** ... */`` (Javadoc)                 methods, constructors
  Rust       ``///`` lines or ``/** */`` (outer doc comments)     ``fn`` with a body
  C#         ``///`` lines (XML doc) or ``/** */``                methods, constructors
  Kotlin     the closest ``/** ... */`` (KDoc)                    ``fun`` with a body
  PHP        the closest ``/** ... */`` (PHPDoc)                  functions, methods
  C / C++    Doxygen: ``///``, ``//!`` lines, ``/** */``, ``/*!`` function definitions
  ========== =================================================== =========================

  Signatures without a body (interface methods, trait items, TS overloads, abstract
  methods) are no targets: there is no code to find.
- **Doc text.** Markers (``//``, ``///``, ``/**``, leading ``*``) are stripped; the text
  stops at the first block tag (``@param``, ``@return``, Doxygen's ``\\param``; a leading
  ``@brief`` is dropped, C#'s text is its ``<summary>``); Javadoc/JSDoc inline tags keep
  their words (``{@code x}`` -> ``x``, ``{@link A#b label}`` -> ``label``), HTML tags
  go (C#'s ``<see cref="X"/>`` -> ``X``), Markdown links and code spans keep their text
  (``[`Vec`](x)`` -> ``Vec``). Go
  directives (``//go:generate``, ``//nolint``) are not doc text.
- **Blanking.** Every doc comment of the file (not only those of functions: also types,
  fields, packages, modules) is replaced by one space and its newlines, so every line
  number stays and no two tokens join. Go's doc comments are the comment blocks directly
  above a declaration (package, type, func, var, const, field, interface method); the
  other languages' are doc comments by their syntax (``/**``; Rust's, C/C++'s ``///``,
  ``//!``, ``/**``, ``/*!``; C#'s ``///`` and ``/**``). Ordinary comments stay: they
  are code's own words, not the query's.
- **Query cleaning** (:func:`drop_name`): the tokens that are exactly the function's
  name are removed (``ParseHeader parses a header`` -> ``parses a header``), also
  written as a call, a qualified name or in backticks (``Foo.bar()``, ```bar```). Only
  exact, case-sensitive tokens go: the words an identifier splits into ("parse",
  "header") stay, since they are the natural words a user types and dropping them would
  leave broken sentences; dropping the identifier itself stops the query naming the
  symbol, which the lexical retriever would otherwise match on the definition line.

Reads nothing, writes nothing. Must not import: celery, tasks/, workers/, api/, or any
driver.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tree_sitter import Node, Parser

from pipeline.analysis.languages import grammar

DOC_LANGUAGES = frozenset(
    {"go", "javascript", "typescript", "tsx", "java", "rust", "csharp", "kotlin", "php", "c", "cpp"}
)
# Languages whose doc comment may be a run of ``///`` lines (the others: one ``/** */``).
_LINE_DOCS = frozenset({"rust", "csharp", "c", "cpp"})

_COMMENTS = frozenset({"comment", "line_comment", "block_comment", "multiline_comment"})
# Nodes that may sit between a doc comment and its function, and belong to the function.
_PREFIXES = frozenset({"decorator", "attribute_item"})
_GO_DECLARATIONS = frozenset(
    {
        "package_clause", "function_declaration", "method_declaration", "type_declaration",
        "const_declaration", "var_declaration", "type_spec", "const_spec", "var_spec",
        "field_declaration", "method_elem", "method_spec", "type_alias",
    }
)  # fmt: skip
# Function nodes (with a ``body`` field) per language; TS/JS: _JS_FUNCTIONS and values.
_FUNCTIONS = {
    "go": frozenset({"function_declaration", "method_declaration"}),
    "java": frozenset({"method_declaration", "constructor_declaration"}),
    "rust": frozenset({"function_item"}),
    "csharp": frozenset({"method_declaration", "constructor_declaration"}),
    "kotlin": frozenset({"function_declaration"}),
    "php": frozenset({"function_definition", "method_declaration"}),
    "c": frozenset({"function_definition"}),
    "cpp": frozenset({"function_definition"}),
}
# The declarator chain of a C/C++ function definition down to its name.
_DECLARATORS = frozenset(
    {
        "function_declarator",
        "pointer_declarator",
        "reference_declarator",
        "parenthesized_declarator",
    }
)
_JS_FUNCTIONS = frozenset(
    {"function_declaration", "generator_function_declaration", "method_definition"}
)
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_QUALIFIED = re.compile(r"^.*(?:\.|#|::)")
# Lower case only: ``Vec<A>`` and ``Map<K, B>`` are types, not tags.
_HTML_TAG = re.compile(
    r"</?(?:p|code|b|i|em|strong|pre|a|br|ul|ol|li|tt|blockquote|h[1-6]|table|tr|td|th|div"
    r"|span|sup|sub|var|kbd|samp|dl|dt|dd|c|para|summary|see|list|item|description|term)"
    r"(?=[\s/>])[^>]*>",
)
_PUNCTUATION = "`'\"()[]{}<>:;,.!?*"


@dataclass(frozen=True, slots=True)
class DocFunction:
    """A documented function: its name, doc text and 1-based lines (prefixes included)."""

    name: str
    doc: str
    start_line: int
    end_line: int


@dataclass(frozen=True, slots=True)
class DocFile:
    """What one file gives the evaluation: its documented functions and its blanked bytes."""

    functions: tuple[DocFunction, ...]
    blanked: bytes


def read_doc_file(source: bytes, language: str) -> DocFile | None:
    """The documented functions of ``source`` and the source with its doc comments
    blanked; None when ``source`` is not UTF-8 or does not parse cleanly (a tree with
    errors may misplace comments). ValueError for a language not in DOC_LANGUAGES."""
    if language not in DOC_LANGUAGES:
        raise ValueError(f"no doc-comment reader for {language!r}")
    lang = grammar(language)
    if lang is None:
        return None
    try:
        source.decode("utf-8")
    except UnicodeDecodeError:
        return None
    root = Parser(lang).parse(source).root_node
    if root.has_error:
        return None
    functions = tuple(_functions(root, language))
    blanked = blank_ranges(
        source, [(n.start_byte, n.end_byte) for n in _doc_comments(root, language)]
    )
    return DocFile(functions, blanked)


def blank_ranges(source: bytes, ranges: list[tuple[int, int]]) -> bytes:
    """``source`` with each byte range replaced by one space plus the newlines it held."""
    out = bytearray()
    at = 0
    for start, end in sorted(ranges):
        if start < at:  # nested or repeated: already blanked
            continue
        out += source[at:start] + b" " + b"\n" * source.count(b"\n", start, end)
        at = end
    out += source[at:]
    return bytes(out)


# --- walking --------------------------------------------------------------------------


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _last_row(node: Node) -> int:
    """The node's last 0-based row (a Rust line comment ends after its own newline)."""
    end_row, end_col = node.end_point
    return end_row - 1 if end_col == 0 and end_row > node.start_point[0] else end_row


def _text(node: Node | None) -> str:
    return "" if node is None or node.text is None else node.text.decode("utf-8")


def _is_doc_comment(node: Node, language: str) -> bool:
    """Whether a comment node is a doc comment by its syntax (Go: any comment)."""
    text = _text(node)
    if language == "go":
        return True
    javadoc = text.startswith("/**") and not text.startswith("/***") and text != "/**/"
    triple_slash = text.startswith("///") and not text.startswith("////")
    if language in {"rust", "c", "cpp"}:
        return triple_slash or javadoc or text.startswith(("//!", "/*!"))
    if language == "csharp":
        return triple_slash or javadoc
    return javadoc


def _trailing_comment(node: Node | None) -> Node | None:
    """``node``, or the comment that ends it: the Kotlin grammar hangs a comment after an
    import or package line on that line's node, not beside the function below it."""
    if node is None or node.type not in {"import_list", "import_header", "package_header"}:
        return node
    last = node
    while last.children and last.type not in _COMMENTS:
        last = last.children[-1]
    return last if last.type in _COMMENTS else node


def _run_above(anchor: Node) -> list[Node]:
    """The comments and prefixes directly above ``anchor``, top to bottom, no blank line
    between any two of them (nor between the last and ``anchor``)."""
    run: list[Node] = []
    below = anchor
    node = _trailing_comment(anchor.prev_sibling)
    while node is not None and (node.type in _COMMENTS or node.type in _PREFIXES):
        if _last_row(node) < below.start_point[0] - 1:
            break
        run.append(node)
        below = node
        node = node.prev_sibling
    run.reverse()
    return run


def _doc_comments(root: Node, language: str) -> list[Node]:
    """Every doc comment of the file (see the module docstring)."""
    if language != "go":
        return [n for n in _walk(root) if n.type in _COMMENTS and _is_doc_comment(n, language)]
    return [
        comment
        for n in _walk(root)
        if n.type in _GO_DECLARATIONS
        for comment in _run_above(n)
        if comment.type in _COMMENTS
    ]


# --- documented functions ---------------------------------------------------------------


def _functions(root: Node, language: str) -> Iterator[DocFunction]:
    for node in _walk(root):
        target = _target(node, language)
        if target is None:
            continue
        name, anchor = target
        run = _run_above(anchor)
        doc = _doc_of(run, language)
        if not doc:
            continue
        prefixes = [n for n in run if n.type in _PREFIXES]
        start = min([anchor.start_point[0]] + [n.start_point[0] for n in prefixes])
        yield DocFunction(name, doc, start + 1, _last_row(anchor) + 1)


def _target(node: Node, language: str) -> tuple[str, Node] | None:
    """(name, the node the doc comment sits above) when ``node`` is a function with a
    body; None otherwise."""
    if language in _FUNCTIONS:
        if node.type in _FUNCTIONS[language] and _has_body(node):
            return _name_of(node), _exported(node)
        return None
    if node.type in _JS_FUNCTIONS:
        has_body = node.child_by_field_name("body") is not None
        return (_text(node.child_by_field_name("name")), _exported(node)) if has_body else None
    if node.type == "variable_declarator":
        return _js_declared(node)
    if node.type == "assignment_expression":
        return _js_assigned(node)
    return None


def _has_body(node: Node) -> bool:
    if node.child_by_field_name("body") is not None:
        return True
    return any(child.type == "function_body" for child in node.children)  # Kotlin


def _name_of(node: Node) -> str:
    """A function's name: its ``name`` field, Kotlin's identifier, or the innermost name
    of a C/C++ declarator (``C::n`` -> ``n``, ``~C`` -> ``~C``)."""
    name = node.child_by_field_name("name")
    if name is not None:
        return _text(name)
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type in _DECLARATORS:
        declarator = declarator.child_by_field_name("declarator")
    if declarator is not None:
        inner = declarator.child_by_field_name("name")
        return _text(inner if inner is not None else declarator)
    for child in node.children:
        if child.type == "simple_identifier":
            return _text(child)
    return ""


def _js_declared(node: Node) -> tuple[str, Node] | None:
    """``const f = () => ...`` (one declarator: with several, whose doc would it be?)."""
    value = node.child_by_field_name("value")
    declaration = node.parent
    if value is None or value.type not in _FUNCTION_VALUES or declaration is None:
        return None
    if declaration.named_child_count != 1:
        return None
    return _text(node.child_by_field_name("name")), _exported(declaration)


def _js_assigned(node: Node) -> tuple[str, Node] | None:
    """``exports.f = function ...`` as a statement of its own."""
    value = node.child_by_field_name("right")
    left = node.child_by_field_name("left")
    statement = node.parent
    if value is None or value.type not in _FUNCTION_VALUES or left is None:
        return None
    if statement is None or statement.type != "expression_statement":
        return None
    name = left.child_by_field_name("property") if left.type == "member_expression" else left
    return _text(name), statement


def _exported(node: Node) -> Node:
    """The node the doc comment sits above: ``node``, or the ``export`` statement or C++
    ``template <...>`` declaration around it."""
    parent = node.parent
    wraps = parent is not None and parent.type in {"export_statement", "template_declaration"}
    return parent if wraps and parent is not None else node


def _doc_of(run: list[Node], language: str) -> str:
    comments = [n for n in run if n.type in _COMMENTS]
    if language == "go":
        return _clean("\n".join(_go_lines(n) for n in comments))
    docs = [n for n in comments if _is_doc_comment(n, language)]
    if language == "rust":  # //! and /*! document the enclosing module
        docs = [n for n in docs if not _text(n).startswith(("//!", "/*!"))]
    if language in _LINE_DOCS:
        return _clean("\n".join(_strip_markers(_text(n)) for n in docs))
    return _clean(_strip_markers(_text(docs[-1]))) if docs else ""


def _go_lines(node: Node) -> str:
    lines = [
        line
        for line in _strip_markers(_text(node)).split("\n")
        if not re.match(r"^(go|nolint|lint|\+build|export|line)[:\s]", line.strip() + " ")
        or " " in line.strip().split(":", 1)[0]
    ]
    return "\n".join(lines)


def _strip_markers(comment: str) -> str:
    """A comment's text without ``//``/``///``/``//!`` or ``/** */`` and leading ``*``."""
    text = comment.strip()
    if text.startswith("/*"):
        text = re.sub(r"^/\*[*!]?", "", text)
        text = re.sub(r"\*/$", "", text)
        lines = [re.sub(r"^\s*\*( |$)?", "", line) for line in text.split("\n")]
        return "\n".join(lines)
    return "\n".join(re.sub(r"^\s*//[/!]?", "", line) for line in text.split("\n"))


def _clean(text: str) -> str:
    """Doc text up to the first block tag, inline markup reduced to its words."""
    summary = re.search(r"<summary>(.*?)(?:</summary>|$)", text, re.DOTALL)
    if summary:
        text = summary.group(1)
    text = re.sub(r"^\s*[@\\]brief\s+", "", text)
    kept: list[str] = []
    for line in text.split("\n"):
        if re.match(r"\s*(@|\\[a-z]+\b)", line):
            break
        kept.append(line)
    out = "\n".join(kept)
    out = re.sub(r'<(?:see|seealso|paramref|typeparamref)\s+\w+="(?:\w:)?([^"]*)"\s*/>', r"\1", out)
    out = re.sub(r"\{@(?:link|linkplain)\s+[^\s}]+\s+([^}]+)\}", r"\1", out)
    out = re.sub(r"\{@\w+\s+([^}]*)\}", r"\1", out)
    out = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", out)  # [text](url)
    out = re.sub(r"\[(`[^`\]]+`)\](?:\[[^\]]*\])?", r"\1", out)  # [`Vec`] and [`Vec`][x]
    out = _HTML_TAG.sub("", out)
    out = out.replace("`", "")
    return out.strip()


def drop_name(text: str, name: str) -> str:
    """``text`` without the tokens that are exactly ``name`` (see the module docstring)."""
    if not name:
        return text
    kept = [token for token in text.split() if not _names(token, name)]
    return " ".join(kept)


def _names(token: str, name: str) -> bool:
    bare = token.strip(_PUNCTUATION)
    if bare.endswith("()"):
        bare = bare[:-2]
    bare = re.sub(r"\(.*\)$", "", bare).strip(_PUNCTUATION)
    return bare == name or _QUALIFIED.sub("", bare) == name
