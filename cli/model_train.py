"""``quarry model train SOURCE... --out DIR``: a code-adapted embedding model, trained on
your own code.

It mines (doc comment → code) pairs from the source folders (``cli.train_pairs``: as
``quarry eval`` builds its queries), fine-tunes the bundled all-MiniLM-L6-v2 (or
``--base``) on them with in-batch negatives (``pipeline.adapters.models.trainer``), and
writes a sentence-transformers model folder with ``quarry_model.json`` (base model,
sources, pairs per language, hyperparameters, seed, time). ``quarry model export --model
DIR`` where the API runs, then ``quarry model switch DIR`` moves an index to it without
downtime (``QUARRY_EMBED_MODEL=DIR`` for a new, empty index). Never train on the code
you evaluate on. Registered under ``quarry model`` by :mod:`cli.model`.

Must not import: torch at module level, drivers.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer

from cli.console import err
from cli.extras import missing
from pipeline.errors import ConfigError

MANIFEST_FILE = "quarry_model.json"
BUNDLED = "all-MiniLM-L6-v2"


def train(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Source folders (repositories, unpacked source packages) to mine."),
    ],
    out: Annotated[Path, typer.Option("--out", help="The model folder to write (new).")],
    *,
    base: Annotated[
        str, typer.Option(help="Base model: all-MiniLM-L6-v2 or a model folder.")
    ] = BUNDLED,
    sets: Annotated[
        Path | None,
        typer.Option(help="A sets TOML (bench/train_sets.toml) naming the sources' versions."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, max=20)] = 1,
    batch_size: Annotated[int, typer.Option(min=2, max=1024)] = 32,
    # The defaults of pipeline.adapters.models.trainer.TrainOptions (not imported here:
    # it loads torch).
    learning_rate: Annotated[float, typer.Option(min=1e-7, max=1e-2)] = 5e-5,
    max_seq_length: Annotated[
        int, typer.Option(min=32, max=512, help="Word-pieces of each text kept in training.")
    ] = 128,
    max_pairs_per_source: Annotated[
        int | None, typer.Option(min=2, help="Keep at most this many pairs of each folder.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[Literal["cpu", "cuda", "auto"], typer.Option()] = "cpu",
    threads: Annotated[int | None, typer.Option(min=1, max=256, help="CPU threads.")] = None,
) -> None:
    """Fine-tune an embedding model on (doc comment -> code) pairs mined from SOURCES."""
    from cli.train_pairs import NoPairsError, counts, mine, shuffled_batches

    try:
        from pipeline.adapters.models.torch_embedder import resolve_model_path
        from pipeline.adapters.models.trainer import TrainOptions
        from pipeline.adapters.models.trainer import train as run_training
    except ImportError as exc:  # the client alone
        raise typer.Exit(missing("model train", exc)) from None
    if out.exists() and any(out.iterdir()):
        _fail(f"--out {str(out)!r} exists and is not empty: give a new folder")
    known = _load_sets(sets) if sets is not None else {}
    try:
        base_path = resolve_model_path(base)
        pairs = mine(sources)
    except (FileNotFoundError, NoPairsError, ConfigError) as exc:
        _fail(str(exc))
    if max_pairs_per_source is not None:
        pairs = _cap(pairs, max_pairs_per_source, seed)
    per_language = counts(pairs)
    err.print(
        f"{len(pairs)} pairs from {len(sources)} folders: "
        + ", ".join(f"{lang} {n}" for lang, n in per_language.items()),
        markup=False,
    )
    options = TrainOptions(
        learning_rate=learning_rate, max_seq_length=max_seq_length, seed=seed, torch_threads=threads
    )
    batches = [
        [(p.query, p.code) for p in batch]
        for epoch in range(epochs)
        for batch in shuffled_batches(pairs, batch_size, seed + epoch)
    ]
    every = max(1, len(batches) // 50)

    def progress(step: int, steps: int, loss: float) -> None:
        if step in (1, steps) or step % every == 0:
            err.print(f"step {step}/{steps}  loss {loss:.4f}", markup=False)

    err.print(f"training {len(batches)} steps on {device} from {base_path}", markup=False)
    try:
        result = run_training(base_path, out, batches, options, device=device, progress=progress)
    except ConfigError as exc:
        _fail(str(exc))
    per_source = counts(pairs, key="source")
    manifest: dict[str, Any] = {
        "format": 1,
        "base_model": base,
        "base_model_sha256": _weights_sha256(base_path),
        "sources": [_source_entry(path, known, per_source) for path in sources],
        "pairs": len(pairs),
        "pairs_per_language": per_language,
        "hyperparameters": {
            **options.as_dict(),
            "epochs": epochs,
            "batch_size": batch_size,
            "max_pairs_per_source": max_pairs_per_source,
            "loss": "MultipleNegativesRankingLoss (in-batch negatives)",
        },
        "seed": seed,
        "steps": result.steps,
        "train_s": round(result.seconds, 1),
        "device": result.device,
        "loss_first": round(result.first_loss, 4),
        "loss_last": round(result.last_loss, 4),
        "command": " ".join(["quarry", "model", "train", *sys.argv[3:]]),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    err.print(
        f"trained in {result.seconds:.0f} s ({result.steps} steps, loss "
        f"{result.first_loss:.3f} -> {result.last_loss:.3f}): {out}\n"
        f"use it: `quarry model export --model {out.resolve()}` where the API runs, then"
        f" `quarry model switch {out.resolve()}` (or QUARRY_EMBED_MODEL for a new index)",
        markup=False,
    )


def _fail(message: str) -> NoReturn:
    err.print(f"quarry: error: {message}", markup=False)
    raise typer.Exit(2)


def _load_sets(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as f:
            entries = tomllib.load(f).get("set", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        _fail(f"--sets {str(path)!r}: {exc}")
    return {e["id"]: e for e in entries if isinstance(e, dict) and "id" in e}


def _source_entry(
    path: Path, known: dict[str, dict[str, Any]], per_source: dict[str, int]
) -> dict[str, Any]:
    folder = path.resolve().name
    entry: dict[str, Any] = {"folder": folder, "pairs": per_source.get(folder, 0)}
    listed = known.get(folder)
    if listed is not None:
        for key in ("source", "name", "version", "commit", "file", "sha256"):
            if key in listed:
                entry[key] = listed[key]
    return entry


def _cap(pairs: list[Any], limit: int, seed: int) -> list[Any]:
    """At most ``limit`` pairs per source, a seeded sample, in the original order."""
    import random

    keep: set[int] = set()
    by_source: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_source.setdefault(pair.source, []).append(index)
    for indexes in by_source.values():
        rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
        keep.update(indexes if len(indexes) <= limit else rng.sample(indexes, limit))
    return [p for i, p in enumerate(pairs) if i in keep]


def _weights_sha256(folder: Path) -> str | None:
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    return hashlib.sha256(weights.read_bytes()).hexdigest()
