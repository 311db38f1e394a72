"""Make pipeline/adapters/models/calibration_texts.json.gz: the int8-smooth export's
calibration chunks (pipeline.adapters.models.smoothquant).

Usage: .venv/bin/python bench/calibration_texts.py [--count 256] [--seed 7]

The chunks are Quarry's own Python sources under pipeline/ as they stood when the file
was made (so no evaluation set and no third-party code is in it), cut by the real
chunker with headers, in a seeded order. The file is committed: every host's export
calibrates on the same texts. Remaking it changes the recipe's digest, so exports made
before are not reused.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

from pipeline.adapters.models.smoothquant import CALIBRATION_FILE
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.analyze import analyze_file
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.models import SkippedFile

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    counter = model_token_counter()
    texts: list[str] = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        result = analyze_file(rel, path.read_bytes(), options=ChunkingOptions(), counter=counter)
        if not isinstance(result, SkippedFile):
            texts += [c.text for c in result.chunks]
    random.Random(args.seed).shuffle(texts)
    chosen = texts[: args.count]
    data = json.dumps(chosen, ensure_ascii=False, indent=0).encode("utf-8")
    CALIBRATION_FILE.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    size = CALIBRATION_FILE.stat().st_size
    print(f"{CALIBRATION_FILE}: {len(chosen)} of {len(texts)} chunks, {size} bytes")


if __name__ == "__main__":
    main()
