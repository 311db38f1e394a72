"""Token counting for the embedding model's budget, never below the real count.

Owns the :class:`TokenCounter` protocol and two counters for BERT-style WordPiece
models (all-MiniLM-L6-v2):

* :class:`CharBoundTokenCounter`, the default, needs no vocabulary. Every WordPiece
  token, ``[UNK]`` included, consumes at least one character of the normalized text,
  and whitespace and removed control characters become no token; so the number of
  normalized non-whitespace characters bounds the count from above. Normalization
  (lower case, accents stripped) can change a character's length, so each non-ASCII
  character is counted as the length of its normalized form, at least 1.
* :class:`WordPieceTokenCounter` takes the vocabulary (injected: this module reads no
  files) and counts printable-ASCII lines exactly as BERT's basic tokenizer plus greedy
  longest-match WordPiece does; any other line falls back to the character bound.

Both are additive over lines: a newline is whitespace, and BERT splits words there.
Must not import: celery, tasks/, workers/, api/, cli/, torch, tokenizers, or any driver.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Protocol

# BERT's pre-tokenizer splits on whitespace and punctuation; every ASCII character that
# is not a letter or digit is punctuation to it, so words are runs of [a-z0-9].
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_PRINTABLE_ASCII_LINE = re.compile(r"[\x20-\x7e\t\r]*")
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
# WordPiece maps longer words to a single [UNK].
_MAX_CHARS_PER_WORD = 100
_CONTINUATION = "##"
# Source repeats many lines (blank, closing braces, `return None`); a bounded cache of
# line counts keeps memory flat in long-running workers.
_MAX_CACHED_LINES = 200_000


class TokenCounter(Protocol):
    """Counts the model tokens of a text, excluding special tokens such as [CLS]."""

    def count(self, text: str) -> int: ...


def _char_bound(char: str) -> int:
    if char.isspace():
        return 0
    lowered = char.lower()
    forms = (
        unicodedata.normalize("NFD", lowered),
        "".join(unicodedata.normalize("NFD", c) for c in lowered).lower(),
    )
    stripped = max(sum(1 for c in form if unicodedata.category(c) != "Mn") for form in forms)
    return max(1, stripped)


class CharBoundTokenCounter:
    """Upper bound for any WordPiece vocabulary: normalized non-whitespace characters."""

    def __init__(self) -> None:
        self._non_ascii: dict[str, int] = {}

    def count(self, text: str) -> int:
        if text.isascii():
            whitespace = sum(text.count(c) for c in _ASCII_WHITESPACE)
            return len(text) - whitespace
        total = 0
        cache = self._non_ascii
        for char in text:
            if char.isascii():
                total += 0 if char in _ASCII_WHITESPACE else 1
                continue
            bound = cache.get(char)
            if bound is None:
                bound = cache[char] = _char_bound(char)
            total += bound
        return total


class WordPieceTokenCounter:
    """Exact WordPiece count for printable-ASCII lines, character bound for the rest."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self._vocab = frozenset(vocabulary)
        self._words: dict[str, int] = {}
        self._lines: dict[str, int] = {}
        self._fallback = CharBoundTokenCounter()

    def count(self, text: str) -> int:
        total = 0
        lines = self._lines
        for line in text.split("\n"):
            tokens = lines.get(line)
            if tokens is None:
                if len(lines) >= _MAX_CACHED_LINES:
                    lines.clear()
                tokens = lines[line] = self._count_line(line)
            total += tokens
        return total

    def _count_line(self, line: str) -> int:
        if not line.isascii() or _PRINTABLE_ASCII_LINE.fullmatch(line) is None:
            return self._fallback.count(line)
        words = _ASCII_WORD.findall(line.lower())
        non_space = len(line) - line.count(" ") - line.count("\t") - line.count("\r")
        punctuation = non_space - sum(map(len, words))
        cache = self._words
        total = punctuation
        for word in words:
            pieces = cache.get(word)
            if pieces is None:
                pieces = cache[word] = self._wordpiece(word)
            total += pieces
        return total

    def _wordpiece(self, word: str) -> int:
        if len(word) > _MAX_CHARS_PER_WORD:
            return 1
        vocab = self._vocab
        pieces = 0
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else _CONTINUATION + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            if end == start:
                return 1  # no piece matches: the whole word becomes [UNK]
            pieces += 1
            start = end
        return pieces


DEFAULT_COUNTER: TokenCounter = CharBoundTokenCounter()
