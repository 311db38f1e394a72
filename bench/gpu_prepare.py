"""Packs what ``bench/gpu.sh`` needs on a bare GPU machine into one carried folder.

Runs here, on the CPU machine with the full venv, before a device session: (1) the
bundled model with its float weights rounded to fp16 (the fp32 file, 87 MiB, alone
exceeds the 64 MiB that travels; the GPU path runs ``model.half()`` anyway, so the GPU
computes with exactly these values), its config asking for float32 so a CPU load
upcasts them; (2) the distinct chunk texts of a real corpus, chunked here by the real
chunker (tree-sitter does not travel); (3) the fp32 CPU reference vectors of a
parity sample, computed here with the original fp32 weights. The folder is
git-ignored (``.gpu/``) and named in the run call's ``carry``.

Must not import: api/, workers/, tasks/.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root, load_corpus
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    resolve_model_path,
)
from pipeline.models import RepoRef

BUDGET_BYTES = 64 * 2**20
MODEL_SKIP = ("model.safetensors", "README.md", "data_config.json", ".gitattributes")
_FLOAT_DTYPES = ("float32", "float64")


def fp16_model(source: Path, dest: Path) -> None:
    """``source``'s model with its float tensors in fp16 and a config that loads as fp32."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*MODEL_SKIP))
    tensors = load_file(str(source / "model.safetensors"))
    halved = {
        name: (t.to(torch.float16) if str(t.dtype).removeprefix("torch.") in _FLOAT_DTYPES else t)
        for name, t in tensors.items()
    }
    save_file(
        {k: v.contiguous() for k, v in halved.items()},
        str(dest / "model.safetensors"),
        metadata={"format": "pt"},
    )
    config_path = dest / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # transformers 5 loads a checkpoint in its own dtype unless the config names one.
    config["dtype"] = config["torch_dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def parity_sample(texts: list[str], count: int) -> list[int]:
    """``count`` indices spread evenly over the texts sorted by length (short to full)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    if count >= len(order):
        return sorted(order)
    step = len(order) / count
    return sorted(order[int(k * step)] for k in range(count))


def reference_vectors(texts: list[str], batch: int = 64) -> np.ndarray:
    """fp32 CPU vectors from the original (fp32) bundled model, through the adapter."""
    embedder = SentenceTransformerEmbedder(
        resolve_model_path(BUNDLED_MODEL), model_id=BUNDLED_MODEL, device="cpu"
    )
    rows = [embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    return np.concatenate(rows)


def tree_bytes(repo: Path) -> int:
    """Bytes of the files that travel besides the carried paths (tracked + untracked)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    names = [n for n in listing.stdout.decode().split("\0") if n]
    return sum((repo / n).stat().st_size for n in names if (repo / n).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prepare(
    corpus: Path, dest: Path, limit_files: int | None, parity_chunks: int
) -> dict[str, object]:
    started = time.perf_counter()
    dest.mkdir(parents=True, exist_ok=True)
    fp16_model(resolve_model_path(BUNDLED_MODEL), dest / "model")
    with corpus_root(corpus) as root:
        loaded = load_corpus(root, RepoRef("bench", corpus.name), limit_files)
    texts = loaded.texts
    payload = {"corpus": corpus.name, "files": len(loaded.batches), "texts": texts}
    with gzip.open(dest / "chunks.json.gz", "wt", encoding="utf-8") as out:
        json.dump(payload, out)
    indices = parity_sample(texts, parity_chunks)
    vectors = reference_vectors([texts[i] for i in indices])
    np.savez_compressed(dest / "parity_ref.npz", indices=np.array(indices), vectors=vectors)
    repo = Path(__file__).resolve().parents[1]
    manifest: dict[str, object] = {
        "corpus": corpus.name,
        "files": len(loaded.batches),
        "chunks": len(texts),
        "chunk_text_bytes": sum(len(t.encode()) for t in texts),
        "parity_chunks": len(indices),
        "reference": "fp32 CPU, original bundled weights, adapter embed(), batches of 64",
        "model_sha256": hashlib.sha256(
            (dest / "model" / "model.safetensors").read_bytes()
        ).hexdigest(),
        "prepare_s": round(time.perf_counter() - started, 1),
    }
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    carried, tree = folder_bytes(dest), tree_bytes(repo)
    manifest.update(
        carried_bytes=carried,
        tree_bytes=tree,
        total_mib=round((carried + tree) / 2**20, 1),
        within_64_mib=carried + tree <= BUDGET_BYTES,
    )
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder or .tar.gz sdist")
    parser.add_argument("--dest", type=Path, default=Path(".gpu"))
    parser.add_argument("--limit-files", type=int, default=None)
    parser.add_argument("--parity-chunks", type=int, default=1024)
    args = parser.parse_args()
    manifest = prepare(args.corpus, args.dest, args.limit_files, args.parity_chunks)
    print(json.dumps(manifest, indent=2))
    if not manifest["within_64_mib"]:
        raise SystemExit("over the 64 MiB that travels: use --limit-files or a smaller corpus")


if __name__ == "__main__":
    main()
