"""What a sentence-transformers BERT folder's ONNX graph takes for a batch of texts.

One definition for the embedder (pipeline.adapters.models.onnx_embedder) and the export's
calibration (pipeline.adapters.models.smoothquant), so both tokenise as
sentence-transformers does: the folder's ``tokenizer.json``, lower-cased first where its
``sentence_bert_config.json`` says so, truncated at the model's window and padded to the
batch's longest with the tokenizer's own pad token; the graph takes the token ids' rows of
the word table (``inputs_embeds``), the attention mask and the token types.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Encoding, Tokenizer

from pipeline.adapters.models.word_table import WordTable

Feed = dict[str, npt.NDArray[Any]]


def window_and_case(config: Mapping[str, Any], st_config: Mapping[str, Any]) -> tuple[int, bool]:
    """The most tokens a text keeps, and whether texts are lower-cased first, from the
    folder's ``config.json`` and ``sentence_bert_config.json`` (``{}`` when absent)."""
    window = int(config.get("max_position_embeddings", 512))
    return min(int(st_config.get("max_seq_length", window)), window), bool(
        st_config.get("do_lower_case", False)
    )


def load_tokenizer(model_path: Path, max_tokens: int | None) -> Tokenizer:
    """The folder's tokenizer: with ``max_tokens``, truncating there and padding to the
    batch's longest (as sentence-transformers embeds); without, neither (to count).
    Raises what ``tokenizers`` raises for a file that does not load."""
    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    padding = tokenizer.padding or {}
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if max_tokens is not None:
        tokenizer.enable_truncation(max_length=max_tokens)
        pad_keys = ("pad_id", "pad_type_id", "pad_token")
        tokenizer.enable_padding(**{k: padding[k] for k in pad_keys if k in padding})
    return tokenizer


def prepared(texts: Sequence[str], lower_case: bool) -> list[str]:
    """``texts`` as the tokenizer takes them."""
    return [t.lower() for t in texts] if lower_case else list(texts)


def model_feed(
    encodings: Sequence[Encoding], words: WordTable, names: Iterable[str]
) -> tuple[Feed, npt.NDArray[np.int64]]:
    """The graph's inputs ``names`` for a padded batch, and its attention mask."""
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    columns: Feed = {
        "inputs_embeds": words.vectors(ids),
        "attention_mask": mask,
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    return {name: columns[name] for name in names}, mask
