"""Which texts the tree-sitter grammars cannot be trusted with, and why.

Owns :func:`unsafe_to_parse`: the reason a text must not reach the parser (it then gets
line windows), or None. Each rule answers a measured failure of a grammar on hostile
input, one that the parser's time limit cannot stop, since that limit is checked
between tokens and only bounds time:

* **Crashes.** The external scanners of the markdown and yaml grammars keep a stack of
  open blocks (block quotes, list items, indentation levels) and write it, unchecked,
  into the parser's 1 KiB state buffer: from about 250 open levels on (measured:
  markdown 255, yaml 253) a parse overruns it and the process dies with SIGSEGV. Each
  level needs at least one column of a line's prefix of blanks and block markers
  (``>``, ``- ``, ``1. ``, ``? ``, ``: ``), two levels at most per column: a prefix
  wider than ``MAX_BLOCK_PREFIX_COLUMNS`` (tabs count 4) is refused.
* **One token without end.** The scala grammar lexes an identifier of non-ASCII
  letters in quadratic time and memory (32,000 characters: 4 s and 1.5 GB; 68,000:
  22 s and 6.7 GB), inside one token. No identifier spans lines, so no line may be
  longer than ``MAX_PARSE_LINE_CHARS``. The content checks skip such lines in a UTF-8
  file's head, but not after it, nor in UTF-16 or UTF-32 text, whose byte lines are not
  its lines.
* **Memory that grows with the square of the depth.** The scala grammar needs about
  740 MB for 10,000 nested ``object A {`` (closed), 4.6 GB within 5 s for 20,000
  unclosed ``new A {``, 980 MB for 20,000 lines ending in ``=>``, 340 MB for 1,000
  indentation levels. Real Scala nests a few dozen levels: a bracket depth, counting
  each line that ends in ``=>`` until its bracket closes, past ``MAX_SCALA_NESTING``
  (about 45 MB) or an indentation past ``MAX_SCALA_INDENT_COLUMNS`` is refused.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import re

MAX_PARSE_LINE_CHARS = 5_000  # as the content checks' longest line
MAX_BLOCK_PREFIX_COLUMNS = 100
MAX_SCALA_NESTING = 1_000
MAX_SCALA_INDENT_COLUMNS = 400
_TAB_COLUMNS = 4

_LONG_LINE = re.compile(rf"[^\n\r]{{{MAX_PARSE_LINE_CHARS + 1}}}")
_LINE_START = r"(?<![^\n\r\x85\u2028\u2029])"  # after \n, \r or a Unicode line break
_BLOCK_PREFIX = re.compile(
    _LINE_START + r"(?:[ \t]|>|[-+*?:](?=[ \t\n\r]|\Z)|[0-9]{1,9}[.)](?=[ \t\n\r]|\Z))+"
)
_INDENT = re.compile(_LINE_START + r"[ \t]+")
_SCALA_NESTERS = re.compile(r"[{(\[})\]]|=>[ \t]*(?=[\r\n]|\Z)")
_BLOCK_STACK_GRAMMARS = frozenset({"markdown", "yaml"})


def unsafe_to_parse(language: str, text: str) -> str | None:
    """Why the ``language`` grammar must not parse ``text``, or None when it may."""
    if _LONG_LINE.search(text):
        return f"a line is longer than the {MAX_PARSE_LINE_CHARS} characters the parser is given"
    if language in _BLOCK_STACK_GRAMMARS:
        widest = _widest(_BLOCK_PREFIX, text)
        if widest > MAX_BLOCK_PREFIX_COLUMNS:
            return (
                f"a line nests {widest} columns of blocks, past the "
                f"{MAX_BLOCK_PREFIX_COLUMNS} that the {language} grammar parses safely"
            )
    if language == "scala":
        depth, indent = _scala_nesting(text), _widest(_INDENT, text)
        if depth > MAX_SCALA_NESTING or indent > MAX_SCALA_INDENT_COLUMNS:
            return (
                f"nested {depth} levels deep and indented {indent} columns, past the "
                f"{MAX_SCALA_NESTING} and {MAX_SCALA_INDENT_COLUMNS} that the scala "
                "grammar parses in bounded memory"
            )
    return None


def _widest(prefix: re.Pattern[str], text: str) -> int:
    widest = 0
    for match in prefix.finditer(text):
        found = match.group()
        widest = max(widest, len(found) + (_TAB_COLUMNS - 1) * found.count("\t"))
    return widest


def _scala_nesting(text: str) -> int:
    """The deepest bracket nesting, where a line ending in ``=>`` (a lambda or a case
    body follows) counts one level until the bracket around it closes."""
    arrows = [0]  # per open bracket, the lines ending in "=>" inside it
    open_arrows = deepest = 0
    for match in _SCALA_NESTERS.finditer(text):
        mark = match.group()[0]
        if mark in "{([":
            arrows.append(0)
        elif mark in "})]":
            if len(arrows) > 1:
                open_arrows -= arrows.pop()
        else:
            arrows[-1] += 1
            open_arrows += 1
        deepest = max(deepest, len(arrows) - 1 + open_arrows)
    return deepest
