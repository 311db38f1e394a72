"""Split a source file into chunks that fit the embedding model (the cAST method).

Owns split-then-merge over the syntax tree: a node that fits the token budget is one
chunk; a larger node is split into its children, recursively (an explicit stack, never
Python recursion, so 5,000-level nesting is fine); adjacent small siblings are merged
greedily up to the budget, the last children of a split node with what follows it; deeper
than ``MAX_SPLIT_DEPTH`` split levels a node is cut into line windows instead.

Definitions stay whole where they can (``_Definitions``): no merge joins part of a
definition with code outside it, and a definition's lead (decorators, the comments just
above it) and signature go with the first chunk of its body, never at the end of the
chunk before. The budget is the window less the file's longest header, so chunks come
close to the model's 256 tokens. ``CHUNKER_VERSION`` names the shape.

Boundaries fall on whole lines, so chunks tile the file: each
non-blank line is in exactly one chunk. Only a single line longer than the budget is cut
inside the line. Files without a grammar, or whose parse timed out, get line windows.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tree_sitter import Node, Tree

from pipeline.analysis.languages import CODE_LANGUAGES
from pipeline.analysis.tokens import DEFAULT_COUNTER, TokenCounter
from pipeline.errors import ConfigError
from pipeline.models import Chunk, ChunkKind, Span, Symbol

_MIN_BODY_TOKENS = 16
# Bumped with every change to chunk shape (boundaries, header, text): files chunked by
# an older version count as changed on the next job, so an index never mixes shapes.
CHUNKER_VERSION = 2
# Real code splits at most ~20 levels deep (Django, the standard library). Deeper, a
# node too large is cut into line windows: 5,000 nested brackets would otherwise give a
# chunk per closing bracket (the last children of a split node never merge on).
MAX_SPLIT_DEPTH = 64
# Definitions nested deeper than this are plain code to the chunk shape rules, so that a
# hostile file of 20,000 nested functions costs linear time (each line's enclosing
# definitions are kept, and each merge checks them).
MAX_DEFINITION_NESTING = 32


@dataclass(frozen=True, slots=True)
class ChunkingOptions:
    """Budget and limits. ``max_tokens`` is the model's maximum sequence length."""

    max_tokens: int = 256
    special_tokens: int = 2  # [CLS] and [SEP]
    header_reserve_tokens: int = 32
    include_header: bool = True
    max_file_bytes: int = 1_000_000
    parse_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.body_tokens < _MIN_BODY_TOKENS:
            raise ConfigError(
                f"max_tokens={self.max_tokens} leaves {self.body_tokens} tokens for text "
                f"after {self.special_tokens} special and {self.header_reserve_tokens} "
                f"header tokens; need at least {_MIN_BODY_TOKENS}"
            )
        if self.parse_timeout_s <= 0:
            raise ConfigError(f"parse_timeout_s={self.parse_timeout_s} must be positive")

    @property
    def body_tokens(self) -> int:
        """Tokens left for a chunk's own text; chunk boundaries never depend on the header."""
        return self.max_tokens - self.special_tokens - self.header_reserve_tokens


@dataclass(slots=True)
class _Segment:
    lo: int
    hi: int
    nodes: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class _Lines:
    """Byte offsets of line starts and running token sums, so any line range costs O(1)."""

    starts: list[int]
    prefix: list[int]
    texts: list[str]
    size: int

    @classmethod
    def of(cls, text: str, counter: TokenCounter) -> _Lines:
        texts = text.split("\n")
        if len(texts) > 1 and texts[-1] == "":
            texts.pop()
        starts = [0]
        for line in texts:
            starts.append(starts[-1] + len(line.encode("utf-8")) + 1)
        prefix = [0, *itertools.accumulate(counter.count(line) for line in texts)]
        return cls(starts, prefix, texts, len(text.encode("utf-8")))

    def tokens(self, lo: int, hi: int) -> int:
        return self.prefix[hi + 1] - self.prefix[lo]

    def end_byte(self, line: int) -> int:
        return min(self.starts[line + 1], self.size)


def chunk_source(
    path: str,
    language: str,
    text: str,
    *,
    tree: Tree | None = None,
    symbols: Sequence[Symbol] = (),
    module: str = "",
    options: ChunkingOptions | None = None,
    counter: TokenCounter | None = None,
) -> tuple[Chunk, ...]:
    """Chunks of ``text`` in file order. ``tree`` None means line windows.

    ``counter`` must be additive over lines (a newline separates words), as both
    counters in :mod:`pipeline.analysis.tokens` are.
    """
    opts = options or ChunkingOptions()
    count = counter or DEFAULT_COUNTER
    data = text.encode("utf-8")
    if not data.strip():  # blank means ASCII whitespace only, as in the byte-level trimming
        return ()
    lines = _Lines.of(text, count)
    budget = opts.body_tokens
    if opts.include_header:
        # Boundaries never depend on a chunk's own header, only on the file's longest
        # (at most the reserve; a name far longer than that is taken to reach it, so
        # 20,000 nested names are not each counted).
        reserve = opts.header_reserve_tokens
        longest = 0
        for name in {module, *(s.qualified_name for s in symbols)}:
            if len(path) + len(name) > 8 * reserve:
                longest = reserve
            else:
                header = header_text(path, name, count, reserve, module)
                longest = max(longest, count.count(header))
            if longest >= reserve:
                break
        budget += reserve - longest
    else:
        budget += opts.header_reserve_tokens
    if tree is None:
        ranges = list(_line_windows(lines, 0, len(lines.texts) - 1, budget, count))
    else:
        defs = _Definitions.of(tree.root_node, symbols, module, lines)
        ranges = _split_merge(tree.root_node, lines, budget, count, defs)
    lead = defs.lead if tree is not None else {}
    namer = _Namer(symbols, module, tree is not None and language in CODE_LANGUAGES, lead)
    chunks: list[Chunk] = []
    for raw_start, raw_end, tokens in ranges:
        start, end = _trim(data, raw_start, raw_end)
        if start >= end:
            continue
        chunks.append(
            _make_chunk(
                path=path,
                language=language,
                data=data,
                lines=lines,
                span=(start, end, tokens),
                namer=namer,
                opts=opts,
                counter=count,
            )
        )
    return tuple(chunks)


def _split_merge(
    root: Node, lines: _Lines, budget: int, counter: TokenCounter, defs: _Definitions
) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    last = len(lines.texts) - 1
    stack: list[tuple[Iterator[_Segment], list[_Segment]]] = [(iter(_tile([root], 0, last)), [])]
    while stack:
        segments, pending = stack[-1]
        seg = next(segments, None)
        if seg is None:
            stack.pop()
            if stack:  # the last children merge on with what follows the split node
                stack[-1][1][:] = pending
            else:
                _flush(pending, lines, out)
            continue
        children = [c for n in seg.nodes for c in n.children]
        splittable = seg.lo < seg.hi and bool(children) and len(stack) < MAX_SPLIT_DEPTH
        # A definition's head (signature, decorators) that cannot take all of the next
        # node takes its first part: that node is split instead.
        head_first = (
            splittable
            and bool(pending)
            and lines.tokens(pending[0].lo, seg.hi) > budget
            and defs.opens(pending[0].lo, pending[0].hi)
        )
        if lines.tokens(seg.lo, seg.hi) <= budget and not head_first:
            _add(pending, seg, (lines, budget, defs), out)
            continue
        if splittable:
            # What precedes a split node may merge with its first children (a class
            # header with its first members, a signature with the start of its body)
            # where no definition is cut: ``_add`` checks each merge.
            stack.append((iter(_tile(children, seg.lo, seg.hi)), pending[:]))
            pending.clear()
        else:
            lo = seg.lo
            if pending and defs.whole_or_inside(pending[0].lo, seg.hi, strict=True):
                lo = pending.pop().lo  # the line windows start with the pending head
            _flush(pending, lines, out)
            windows = list(_line_windows(lines, lo, seg.hi, budget, counter))
            last_start = windows[-1][0] if windows else -1
            first_line = bisect.bisect_left(lines.starts, last_start)
            if (
                first_line < len(lines.texts)
                and lines.starts[first_line] == last_start
                and windows[-1][2] == lines.tokens(first_line, seg.hi)
            ):
                # The last window (whole lines) stays open: what follows may join it.
                out.extend(windows[:-1])
                pending.append(_Segment(first_line, seg.hi))
            else:
                out.extend(windows)
    return out


def _add(
    pending: list[_Segment],
    seg: _Segment,
    shape: tuple[_Lines, int, _Definitions],
    out: list[tuple[int, int, int]],
) -> None:
    """Merge ``seg`` (within budget) into the pending chunk, or start a new one with it.

    A merge must fit the budget and cut no definition (``_Definitions.whole_or_inside``).
    When it does not, the comments, decorators and blank lines that lead a definition
    starting in ``seg`` leave the pending chunk and go with it.
    """
    lines, budget, defs = shape
    if not pending:
        pending.append(seg)
        return
    head = pending[0]
    if lines.tokens(head.lo, seg.hi) <= budget and defs.whole_or_inside(head.lo, seg.hi):
        head.hi = seg.hi
        return
    cut = defs.leading_start(head.lo, seg.lo)
    if cut is not None and lines.tokens(cut, seg.hi) <= budget:
        pending[0] = _Segment(head.lo, cut - 1)
        _flush(pending, lines, out)
        pending.append(_Segment(cut, seg.hi))
        return
    _flush(pending, lines, out)
    pending.append(seg)


def _flush(pending: list[_Segment], lines: _Lines, out: list[tuple[int, int, int]]) -> None:
    if pending:
        seg = pending.pop()
        out.append((lines.starts[seg.lo], lines.end_byte(seg.hi), lines.tokens(seg.lo, seg.hi)))


def _tile(nodes: Sequence[Node], lo: int, hi: int) -> list[_Segment]:
    """Segments that cover lines lo..hi exactly; a line shared by two nodes goes to the first."""
    segments: list[_Segment] = []
    cursor = lo
    for node in nodes:
        end_row = node.end_point.row
        if node.end_point.column == 0 and end_row > node.start_point.row:
            end_row -= 1
        end_row = min(end_row, hi)
        if end_row < cursor:
            if segments:
                segments[-1].nodes.append(node)
            continue
        segments.append(_Segment(cursor, end_row, [node]))
        cursor = end_row + 1
        if cursor > hi:
            break
    if cursor <= hi:
        if segments:
            segments[-1].hi = hi
        else:
            segments.append(_Segment(lo, hi))
    return segments


def _line_windows(
    lines: _Lines, lo: int, hi: int, budget: int, counter: TokenCounter
) -> Iterator[tuple[int, int, int]]:
    start = lo
    while start <= hi:
        if lines.tokens(start, start) > budget:
            yield from _split_line(lines, start, budget, counter)
            start += 1
            continue
        end = start
        while end < hi and lines.tokens(start, end + 1) <= budget:
            end += 1
        yield lines.starts[start], lines.end_byte(end), lines.tokens(start, end)
        start = end + 1


def _split_line(
    lines: _Lines, index: int, budget: int, counter: TokenCounter
) -> Iterator[tuple[int, int, int]]:
    """Cut one over-long line into pieces within budget, preferring whitespace."""
    line = lines.texts[index]
    offset = lines.starts[index]
    pos = 0
    width = budget * 4
    while pos < len(line):
        width = max(1, width)
        piece = line[pos : pos + width]
        tokens = counter.count(piece)
        if tokens > budget and len(piece) > 1:
            width = max(1, min(len(piece) - 1, len(piece) * budget // tokens))
            continue
        cut = piece.rfind(" ", len(piece) // 2) if pos + len(piece) < len(line) else -1
        if cut > 0:
            piece = piece[:cut]
            tokens = counter.count(piece)
        size = len(piece.encode("utf-8"))
        yield offset, offset + size, tokens
        offset += size
        pos += len(piece)
        width = budget * 4


def _trim(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Drop blank lines at both ends, keeping the first line's indentation."""
    body = data[start:end]
    stripped = body.lstrip()
    if not stripped:
        return end, end
    first = end - len(stripped)
    start = max(start, data.rfind(b"\n", 0, first) + 1)
    return start, start + len(data[start:end].rstrip())


def _last_row(node: Node) -> int:
    """The node's last row; a node that ends at column 0 (a Rust line comment takes its
    newline) ends on the row before."""
    row: int = node.end_point.row
    if node.end_point.column == 0 and row > node.start_point.row:
        row -= 1
    return row


_LEADING_TYPES = frozenset(
    {
        "comment",
        "line_comment",
        "block_comment",
        "doc_comment",
        "decorator",
        "attribute_item",
        "annotation",
        "marker_annotation",
    }
)


class _Definitions:
    """Line ranges of the file's definitions, each widened to the comments, decorators
    and blank lines that lead it, so a merge can tell whether it would cut one."""

    def __init__(self, ranges: list[tuple[int, int]], last: int) -> None:
        self._ranges = ranges
        self._lead_starts = [start for start, _ in ranges]
        # (start byte, end byte) of a symbol -> the byte its lead (comments, decorators,
        # blank lines) starts at, for naming a chunk that starts with that lead.
        self.lead: dict[tuple[int, int], int] = {}
        # Per range, the line its code starts at (after its lead).
        self.code: list[int] = [start for start, _ in ranges]
        cover: list[tuple[int, ...]] = []
        order = sorted(range(len(ranges)), key=lambda i: (ranges[i][0], -ranges[i][1]))
        open_defs: list[int] = []
        current: tuple[int, ...] = ()
        cursor = 0
        for line in range(last + 1):
            changed = False
            while open_defs and ranges[open_defs[-1]][1] < line:
                open_defs.pop()
                changed = True
            while cursor < len(order) and ranges[order[cursor]][0] == line:
                if len(open_defs) < MAX_DEFINITION_NESTING:
                    open_defs.append(order[cursor])
                    changed = True
                cursor += 1
            if changed:
                current = tuple(open_defs)
            cover.append(current)
        self._cover = cover

    @classmethod
    def of(cls, root: Node, symbols: Sequence[Symbol], module: str, lines: _Lines) -> _Definitions:
        last = len(lines.texts) - 1
        ranges: list[tuple[int, int]] = []
        codes: list[int] = []
        lead: dict[tuple[int, int], int] = {}
        nesting: list[int] = []  # end bytes of the definitions open at this one
        for symbol in sorted(symbols, key=lambda s: (s.span.start_byte, -s.span.end_byte)):
            if symbol.qualified_name == module:
                continue
            while nesting and nesting[-1] <= symbol.span.start_byte:
                nesting.pop()
            nesting.append(symbol.span.end_byte)
            if len(nesting) > MAX_DEFINITION_NESTING:
                continue  # plain code to the shape rules: no tree walk for it
            node = root.descendant_for_byte_range(symbol.span.start_byte, symbol.span.end_byte)
            if node is None:
                continue
            code = node.start_point.row
            while node.parent is not None and "decorated" in node.parent.type:
                node = node.parent
            start = node.start_point.row
            prev = node.prev_sibling
            while prev is not None and prev.type in _LEADING_TYPES:
                if _last_row(prev) < start - 1:
                    break
                before = prev.prev_sibling
                if before is not None and _last_row(before) >= prev.start_point.row:
                    break  # a comment after code on its line belongs to that code
                start = prev.start_point.row
                prev = before
            while start > 0 and not lines.texts[start - 1].strip():
                start -= 1
            end = symbol.span.end_line - 1
            if node.end_point.column == 0 and node.end_point.row > node.start_point.row:
                end = min(end, node.end_point.row - 1)
            start, end = min(start, last), min(end, last)
            if start <= end:
                ranges.append((start, end))
                codes.append(max(start, min(code, end)))
                lead[symbol.span.start_byte, symbol.span.end_byte] = lines.starts[start]
        made = cls(ranges, last)
        made.code = codes
        made.lead = lead
        return made

    def whole_or_inside(self, lo: int, hi: int, *, strict: bool = False) -> bool:
        """No definition's code is cut by lines lo..hi unless they all lie inside it (a
        range may end inside the lead of the next definition: ``leading_start`` moves
        that lead on when the definition does not follow). ``strict``: nor its lead."""
        ranges = self._ranges
        code = self._lead_starts if strict else self.code
        for index in self._cover[lo]:
            start, end = ranges[index]
            if start < lo and code[index] < lo and end < hi:
                return False
        for index in self._cover[hi]:
            start, end = ranges[index]
            if start > lo and code[index] <= hi and end > hi:
                return False
        return True

    def opens(self, lo: int, hi: int) -> bool:
        """A definition starts in lines lo..hi and goes on after them."""
        return any(lo <= self._ranges[i][0] and self._ranges[i][1] > hi for i in self._cover[hi])

    def leading_start(self, lo: int, seg_lo: int) -> int | None:
        """Where the lead of a definition that covers line seg_lo begins, if after lo."""
        starts = [
            self._ranges[i][0] for i in self._cover[seg_lo] if lo < self._ranges[i][0] < seg_lo
        ]
        return min(starts) if starts else None


class _Namer:
    """Finds a chunk's symbol and kind from the file's definitions.

    The symbol is the one definition the chunk holds whole, if exactly one (directly
    under the enclosing definition); otherwise the innermost definition that encloses
    the chunk; otherwise the module. A definition starts where its lead (decorators,
    comments above it) starts.
    """

    def __init__(
        self,
        symbols: Sequence[Symbol],
        module: str,
        is_code: bool,
        lead: dict[tuple[int, int], int] | None = None,
    ) -> None:
        leads = lead or {}

        def start_of(s: Symbol) -> int:
            return leads.get((s.span.start_byte, s.span.end_byte), s.span.start_byte)

        self._defs = sorted(
            (s for s in symbols if s.qualified_name != module),
            key=lambda s: (start_of(s), -s.span.end_byte),
        )
        self._starts = [start_of(s) for s in self._defs]
        self._code_starts = [s.span.start_byte for s in self._defs]
        self._parents: list[int] = []
        open_defs: list[int] = []
        for index, symbol in enumerate(self._defs):
            while open_defs and self._defs[open_defs[-1]].span.end_byte < symbol.span.end_byte:
                open_defs.pop()
            self._parents.append(open_defs[-1] if open_defs else -1)
            open_defs.append(index)
        self._module = module
        self._is_code = is_code

    @property
    def module(self) -> str:
        return self._module

    def name(self, start: int, end: int) -> tuple[str, ChunkKind]:
        defs = self._defs
        enclosing = bisect.bisect_right(self._starts, start) - 1
        while enclosing >= 0 and defs[enclosing].span.end_byte < end:
            enclosing = self._parents[enclosing]
        # Whole: its code (not necessarily its lead) lies in the chunk.
        first = bisect.bisect_left(self._code_starts, start)
        last = bisect.bisect_left(self._code_starts, end)
        whole = [
            i
            for i in range(first, last)
            if self._parents[i] == enclosing and defs[i].span.end_byte <= end
        ]
        if len(whole) == 1:
            symbol = defs[whole[0]]
            return symbol.qualified_name, ChunkKind(symbol.kind.value)
        if enclosing >= 0:
            symbol = defs[enclosing]
            return symbol.qualified_name, ChunkKind(symbol.kind.value)
        return self._module, ChunkKind.MODULE if self._is_code else ChunkKind.OTHER


def header_text(
    path: str, symbol: str, counter: TokenCounter, reserve_tokens: int, module: str = ""
) -> str:
    """``path`` and ``symbol`` on top of the chunk, shortened to fit ``reserve_tokens``.

    The symbol is written relative to ``module`` (the path already names it), and left
    out when it is the module itself.
    """
    if module and symbol.startswith(module + "."):
        symbol = symbol[len(module) + 1 :]
    elif module and symbol == module:
        symbol = ""
    candidates = (
        f"{path}\n{symbol}\n\n" if symbol else f"{path}\n\n",
        f"{path}\n{symbol.rsplit('.', 2)[-1] if symbol else ''}\n\n",
        f"{path.rsplit('/', 1)[-1]}\n{symbol.rsplit('.', 1)[-1] if symbol else ''}\n\n",
    )
    for candidate in candidates:
        if counter.count(candidate) <= reserve_tokens:
            return candidate
    short = candidates[-1]
    while short and counter.count(short) > reserve_tokens:
        short = short[: len(short) // 2]
    return short.rstrip("\n") + "\n\n" if short.strip() else ""


def _make_chunk(
    *,
    path: str,
    language: str,
    data: bytes,
    lines: _Lines,
    span: tuple[int, int, int],
    namer: _Namer,
    opts: ChunkingOptions,
    counter: TokenCounter,
) -> Chunk:
    start, end, tokens = span
    body = data[start:end].decode("utf-8")
    symbol, kind = namer.name(end - len(data[start:end].lstrip()), end)
    text = body
    if opts.include_header:
        header = header_text(path, symbol, counter, opts.header_reserve_tokens, namer.module)
        text = header + body
        tokens += counter.count(header)
    start_line = bisect.bisect_right(lines.starts, start)
    end_line = bisect.bisect_right(lines.starts, end - 1)
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    identity = f"{path}\x00{start}\x00{end}\x00{content_hash}"
    chunk_id = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    return Chunk(
        chunk_id=chunk_id,
        path=path,
        language=language,
        span=Span(start_line, end_line, start, end),
        symbol=symbol,
        kind=kind,
        content_hash=content_hash,
        tokens=tokens,
        text=text,
    )
