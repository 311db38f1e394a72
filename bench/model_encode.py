"""Raw encode speed of two sentence-transformers folders on the same texts (issue 21 item 4).

    python -m bench.model_encode BASE_FOLDER OTHER_FOLDER CORPUS [--texts N] [--rounds R]

The texts are the functions of CORPUS as ``quarry model train`` mines them (header and
code, doc comments blanked). Each round encodes all of them with one model, then the
other (alternating which goes first), one torch thread, batch 32; the JSON gives each
model's chunks/s per round and median, whether the two tokenizers cut the texts into the
same word-pieces (then the same chunks cost the same), and each folder's sizes.

Must not import: drivers. Imports torch (a benchmark, not the API).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from cli.train_pairs import mine_folder


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = [p.code for p in mine_folder(args.corpus)][: args.texts]
    models = {
        name: SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        for name, folder in (("base", args.base), ("other", args.other))
    }
    ids = {
        name: model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        for name, model in models.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(args.rounds):
        order = list(models) if round_ % 2 == 0 else list(reversed(models))
        for name in order:
            started = time.perf_counter()
            models[name].encode(texts, batch_size=32)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    report = {
        "texts": len(texts),
        "corpus": args.corpus.name,
        "chunks_per_s": {n: [round(r, 1) for r in v] for n, v in rates.items()},
        "median_chunks_per_s": {n: round(statistics.median(v), 1) for n, v in rates.items()},
        "same_word_pieces": ids["base"] == ids["other"],
        "word_pieces": sum(len(x) for x in ids["base"]),
        "max_seq_length": {n: m.max_seq_length for n, m in models.items()},
        "weights_bytes": {
            "base": (args.base / "model.safetensors").stat().st_size,
            "other": (args.other / "model.safetensors").stat().st_size,
        },
        "folder_bytes": {"base": _size(args.base), "other": _size(args.other)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
