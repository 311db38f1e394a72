"""The three kinds of ``quarry bench e2e`` run, each on fresh private stacks: cold (+
incremental steps, + CocoIndex), a sweep of worker x thread combinations, and GPU batch
sizes; and the machine a run was on.

Must not import: torch, sentence_transformers, api/, workers/, tasks/.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.e2e_plan import cold_figures, ratio
from bench.e2e_run import (
    Prepared,
    change_plan,
    cold_job,
    gpu_run,
    incremental_jobs,
    prepare,
    raw_encode,
    raw_onnx_s,
    resolved_cpu_backend,
    run_cocoindex,
    stack_overrides,
)
from bench.e2e_stack import private_stack
from bench.machine import cpu_model
from pipeline.adapters.models.onnx_export import BACKEND_PRECISION, Precision

PACKAGES = ("celery", "redis", "psycopg", "torch", "sentence-transformers", "onnxruntime")


def machine() -> dict[str, Any]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "versions": found,
        "quarry_commit": head.stdout.strip() or "?",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def corpus_info(prepared: Prepared, corpus: Path) -> dict[str, Any]:
    return {
        "name": prepared.name,
        "path": str(corpus),
        "files": len(prepared.paths),
        "bytes": prepared.bytes,
        "distinct_chunks": len(prepared.texts),
        "chunks_with_duplicates": prepared.chunks_with_duplicates,
    }


def base_result(prepared: Prepared, corpus: Path, backend: str, threads: int) -> dict[str, Any]:
    return {"backend": backend, "threads": threads, "corpus": corpus_info(prepared, corpus)}


def run_cold(
    corpus: Path,
    *,
    limit_files: int | None,
    backend: str,
    threads: int,
    cpu_workers: int,
    cocoindex_python: Path | None,
    fractions: list[float] | None,
    seed: int,
) -> dict[str, Any]:
    """Cold (+ incremental when ``fractions``) on one stack, then CocoIndex."""
    info = machine()
    prepared = prepare(corpus, limit_files)
    try:
        raw_s, device = raw_encode(prepared, threads, 32)
        backend = resolved_cpu_backend(backend)
        result = base_result(prepared, corpus, backend, threads)
        if backend.startswith("onnx-"):
            # The pipeline against the raw encode of its own embedder (issue 22).
            precision: Precision = BACKEND_PRECISION[backend]
            result["raw_own_s"] = round(raw_onnx_s(prepared, threads, 16, precision), 2)
            result["raw_own_cpu"] = prepared.raw_own_cpu
            if precision == "int8":  # the names of the results before onnx-fp32
                result["raw_int8_s"] = result["raw_own_s"]
                result["raw_int8_cpu"] = result["raw_own_cpu"]
        steps, fracs = change_plan(prepared, fractions or [], seed)
        steps = steps if fractions is not None else steps[:1]
        overrides = stack_overrides(backend, threads, cpu_workers, 1, "cpu")
        with private_stack(**overrides) as stack:
            cold = cold_job(stack, prepared, timeout_s=7200)
            files = cold["files"]["total"] if "total" in cold["files"] else len(prepared.paths)
            result |= cold_figures(files, len(prepared.texts), cold["wall_s"], raw_s)
            result["raw_device"] = device
            result["raw_cpu"] = prepared.raw_cpu[(threads, 32)]
            result["cpu_workers"] = cpu_workers
            if "raw_own_s" in result:
                result["ratio_vs_raw_own"] = ratio(result["raw_own_s"], cold["wall_s"])
            if "raw_int8_s" in result:
                result["ratio_vs_raw_int8"] = result["ratio_vs_raw_own"]
            result["cold"] = cold
            result["incremental"] = incremental_jobs(stack, prepared, steps, fracs, cold["wall_s"])
        if cocoindex_python is not None:
            coco = run_cocoindex(cocoindex_python, prepared, threads, steps)
            result["cocoindex"] = coco
            result["cocoindex_wall_s"] = coco["cold"]["wall_s"]
            result["wall_vs_cocoindex"] = ratio(result["wall_s"], coco["cold"]["wall_s"])
        result["machine"] = info
        return result
    finally:
        shutil.rmtree(prepared.scratch, ignore_errors=True)


def run_sweep(
    corpus: Path, limit_files: int | None, backend: str, combos: list[tuple[int, int]]
) -> dict[str, Any]:
    info = machine()
    prepared = prepare(corpus, limit_files)
    try:
        rows = []
        for cpu_workers, threads in combos:
            raw_s, _ = raw_encode(prepared, threads, 32)
            overrides = stack_overrides(backend, threads, cpu_workers, 1, "cpu")
            with private_stack(**overrides) as stack:
                cold = cold_job(stack, prepared, timeout_s=7200)
            rows.append(
                {
                    "combo": f"{cpu_workers}x{threads}",
                    "cpu_workers": cpu_workers,
                    "embed_threads": threads,
                    **cold_figures(len(prepared.paths), len(prepared.texts), cold["wall_s"], raw_s),
                    "raw_cpu": prepared.raw_cpu[(threads, 32)],
                    "cold": cold,
                }
            )
        best = max(rows, key=lambda r: r["chunks_per_s"] or 0)
        head = {k: best[k] for k in ("files", "chunks", "wall_s", "raw_encode_s", "ratio")}
        result = base_result(prepared, corpus, backend, best["embed_threads"])
        return {**result, **head, "best": best["combo"], "sweep": rows, "machine": info}
    finally:
        shutil.rmtree(prepared.scratch, ignore_errors=True)


def run_gpu(
    corpus: Path, limit_files: int | None, sizes: list[int], cpu_workers: int, gpus: list[str]
) -> dict[str, Any]:
    info = machine() | {"gpus": gpus}
    prepared = prepare(corpus, limit_files)
    try:
        overrides = stack_overrides("torch", 1, cpu_workers, 1, "cuda")
        rows = [gpu_run(prepared, size, overrides, 7200) for size in sizes]
        best = min(rows, key=lambda r: r["wall_s"])
        head = cold_figures(
            len(prepared.paths), len(prepared.texts), best["wall_s"], best["raw_fp16_encode_s"]
        )
        result = base_result(prepared, corpus, "torch", 1)
        return {
            **result,
            **head,
            "best_batch_size": best["batch_size"],
            "gpu": rows,
            "machine": info,
        }
    finally:
        shutil.rmtree(prepared.scratch, ignore_errors=True)
