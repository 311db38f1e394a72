"""``quarry bench e2e`` and ``quarry bench incremental``: Quarry end to end on a real
corpus, held against raw ``model.encode`` of the same chunks in the same run.

``e2e``: the selected files of the corpus (copied to a scratch tree) indexed cold
through a fresh private stack (real Redis, PostgreSQL, graph server, Celery workers,
API: every chunk embedded, the embedding cache empty); the same distinct chunk texts
through ``model.encode``; ``ratio`` = raw_encode_s / wall_s (end-to-end chunks/s over
raw chunks/s). ``--sweep 1x2,2x1`` repeats the cold run per (cpu worker processes x
embed torch threads); ``--device cuda --batch-sizes 64,256,1024`` per GPU batch size,
GPU utilisation sampled. ``incremental``: the cold run, then 1 file, then 1 %, 10 %,
20 % of the files changed, each re-indexed to ``done``; ``speedup`` = cold / step.
``--cocoindex-python PATH`` runs CocoIndex's code-embedding flow (bench/cocoindex_flow.py)
in its own venv on the same files, with the same edits, in the same run.

Must not import: torch, sentence_transformers, api/, workers/, tasks/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.e2e_gpu import NoGpuError, gpu_names
from bench.e2e_modes import run_cold, run_gpu, run_sweep
from bench.e2e_plan import DEFAULT_FRACTIONS_TEXT, parse_batch_sizes, parse_sweep, targets

Corpus = Annotated[Path, typer.Option(help="A source folder or a .tar.gz sdist.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Out = Annotated[Path | None, typer.Option(help="Also write the result JSON to this file.")]
Limit = Annotated[int | None, typer.Option(help="Only the first N selected files.")]
Backend = Annotated[
    str,
    typer.Option(
        help="Quarry's embed backend: auto (default), torch, onnx-fp32, onnx-int8(-smooth)."
    ),
]
Threads = Annotated[int, typer.Option(help="Embed torch threads, raw encode too (0: all cores).")]
CpuWorkers = Annotated[int, typer.Option(help="Processes of the cpu worker (chunk, write).")]
Coco = Annotated[
    Path | None, typer.Option(help="Python of a venv with cocoindex: run its flow too.")
]


def _emit(result: dict[str, Any], as_json: bool, out: Path | None) -> None:
    result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    result["targets_met"] = targets(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    if as_json:
        typer.echo(json.dumps(result))
        return
    skip = {
        "cold",
        "incremental",
        "sweep",
        "gpu",
        "cocoindex",
        "machine",
        "corpus",
        "raw_cpu",
        "raw_int8_cpu",
        "raw_own_cpu",
    }
    for key, value in result.items():
        if key not in skip:
            typer.echo(f"{key:>26}: {value}")
    for step in result.get("incremental", []):
        typer.echo(f"{'incremental ' + step['label']:>26}: {step['wall_s']} s, x{step['speedup']}")
    for row in result.get("sweep", []):
        typer.echo(f"{'sweep ' + row['combo']:>26}: {row['wall_s']} s, ratio {row['ratio']}")


def _check_corpus(corpus: Path) -> None:
    if not corpus.exists():
        typer.echo(f"quarry: error: corpus does not exist: {corpus}", err=True)
        raise typer.Exit(2)


def _threads(threads: int) -> int:
    return threads or os.cpu_count() or 1


def bench_e2e(
    corpus: Corpus,
    *,
    as_json: AsJson = False,
    out: Out = None,
    limit_files: Limit = None,
    backend: Backend = "auto",
    threads: Threads = 0,
    cpu_workers: CpuWorkers = 2,
    cocoindex_python: Coco = None,
    sweep: Annotated[
        str | None, typer.Option(help="Cold runs per CPUWORKERSxTHREADS, e.g. 1x2,2x1,2x2.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda (needs a GPU).")] = "cpu",
    fp16: Annotated[
        bool, typer.Option(help="fp16 on CUDA (the torch backend's only mode).")
    ] = True,
    batch_sizes: Annotated[
        str, typer.Option(help="With --device cuda: device batch sizes to run.")
    ] = "64,128,256,512,1024",
) -> None:
    """Cold index end to end vs raw model.encode of the same chunks, in one run."""
    _check_corpus(corpus)
    try:
        combos = parse_sweep(sweep) if sweep else None
        sizes = parse_batch_sizes(batch_sizes)
        if device not in ("cpu", "cuda"):
            raise ValueError(f"--device {device!r}: expected cpu or cuda")
        if device == "cuda" and not fp16:
            raise ValueError("--no-fp16 with --device cuda: the torch backend runs fp16 on CUDA")
        gpus = gpu_names() if device == "cuda" else []
    except (ValueError, NoGpuError) as exc:
        typer.echo(f"quarry: error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if device == "cuda":
        result = run_gpu(corpus, limit_files, sizes, cpu_workers, gpus)
    elif combos:
        result = run_sweep(corpus, limit_files, backend, combos)
    else:
        result = run_cold(
            corpus,
            limit_files=limit_files,
            backend=backend,
            threads=_threads(threads),
            cpu_workers=cpu_workers,
            cocoindex_python=cocoindex_python,
            fractions=None,
            seed=0,
        )
    _emit(result, as_json, out)


def bench_incremental(
    corpus: Corpus,
    *,
    as_json: AsJson = False,
    out: Out = None,
    limit_files: Limit = None,
    backend: Backend = "auto",
    threads: Threads = 0,
    cpu_workers: CpuWorkers = 2,
    cocoindex_python: Coco = None,
    fractions: Annotated[
        str, typer.Option(help="Shares of files changed after 1 file.")
    ] = DEFAULT_FRACTIONS_TEXT,
    seed: Annotated[int, typer.Option(help="Seed of the changed-file draw.")] = 0,
) -> None:
    """Cold run, then 1 file, 1 %, 10 %, 20 % of files changed: time to done each."""
    _check_corpus(corpus)
    try:
        shares = [float(f) for f in fractions.split(",") if f.strip()]
    except ValueError as exc:
        typer.echo(f"quarry: error: --fractions {fractions!r}: {exc}", err=True)
        raise typer.Exit(2) from exc
    result = run_cold(
        corpus,
        limit_files=limit_files,
        backend=backend,
        threads=_threads(threads),
        cpu_workers=cpu_workers,
        cocoindex_python=cocoindex_python,
        fractions=shares,
        seed=seed,
    )
    _emit(result, as_json, out)
