"""The measurements of ``quarry bench e2e`` / ``incremental``, run in one process.

Owns: preparing the corpus (the selected files copied into two scratch trees, one for
Quarry and one for CocoIndex, and their distinct chunk texts), the raw references
(``model.encode`` in fp32 torch, or fp16 on CUDA; and for ``onnx-int8`` the same texts
through the int8 embedder itself), the cold job and the incremental jobs on a fresh
private stack, and CocoIndex's flow in its own virtual environment
(bench/cocoindex_flow.py) on the same files with the same edits.

Must not import: torch, sentence_transformers (they load inside pipeline.adapters),
api/, workers/, tasks/.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import corpus_root, load_corpus
from bench.e2e_gpu import gpu_sampler, summarise
from bench.e2e_plan import (
    apply_edits,
    change_counts,
    copy_tree,
    edit_text,
    incremental_step,
    pick_changes,
    ratio,
    step_label,
)
from bench.e2e_proc import StackProbe
from bench.e2e_stack import Stack, private_stack, run_job
from config.settings import child_environment, load_settings
from pipeline.adapters.models.onnx_export import Precision
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    raw_encode_seconds,
    resolve_model_path,
)
from pipeline.analysis.selection import select_files
from pipeline.models import RepoRef

REPO = "bench-e2e"
COCOINDEX_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "cocoindex_flow.py"


@dataclass(slots=True)
class Prepared:
    """The corpus of a run: the selected files, copied twice, and their chunk texts."""

    name: str
    scratch: Path
    paths: list[str]
    bytes: int
    texts: list[str]
    chunks_with_duplicates: int
    raw_cache: dict[tuple[int, int], tuple[float, str]] = field(default_factory=dict)
    raw_cpu: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    raw_own_cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def quarry_tree(self) -> Path:
        return self.scratch / "quarry" / self.name

    @property
    def coco_tree(self) -> Path:
        return self.scratch / "cocoindex" / self.name


def prepare(corpus: Path, limit_files: int | None) -> Prepared:
    scratch = Path(tempfile.mkdtemp(prefix="quarry-bench-e2e-src-", dir="/tmp"))
    scratch.chmod(0o755)
    name = corpus.name.removesuffix(".tar.gz")
    with corpus_root(corpus) as root:
        paths = list(select_files(root).files[:limit_files])
        size = copy_tree(root, paths, scratch / "quarry" / name)
        copy_tree(root, paths, scratch / "cocoindex" / name)
        loaded = load_corpus(root, RepoRef("bench", name), limit_files)
    chunks = sum(len(b.chunks) for b in loaded.batches)
    return Prepared(name, scratch, paths, size, loaded.texts, chunks)


def raw_encode(prepared: Prepared, threads: int, batch_size: int) -> tuple[float, str]:
    """``model.encode`` over the distinct chunk texts, once per (threads, batch size)."""
    key = (threads, batch_size)
    if key not in prepared.raw_cache:
        model = resolve_model_path(BUNDLED_MODEL)
        probe = StackProbe(prepared.scratch / "no-stack")  # this process only: "bench"
        before = probe.sample()
        prepared.raw_cache[key] = raw_encode_seconds(
            model, prepared.texts, threads=threads, batch_size=batch_size
        )
        prepared.raw_cpu[key] = probe.cpu_between(before, probe.sample())
    return prepared.raw_cache[key]


def raw_onnx_s(
    prepared: Prepared, threads: int, batch_size: int, precision: Precision = "int8"
) -> float:
    """The same texts through the ONNX embedder of ``precision`` (sorted by length, as
    the stage sorts a flush), after its export and load (not timed)."""
    from pipeline.adapters.models.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder(
        resolve_model_path(BUNDLED_MODEL),
        prepared.scratch / "models",
        precision=precision,
        threads=threads,
    )
    embedder.load()
    texts = sorted(prepared.texts, key=len)
    embedder.embed(texts[:batch_size])
    probe = StackProbe(prepared.scratch / "no-stack")  # this process only: "bench"
    before = probe.sample()
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        embedder.embed(texts[start : start + batch_size])
    seconds = time.perf_counter() - started
    prepared.raw_own_cpu = probe.cpu_between(before, probe.sample())
    return seconds


def resolved_cpu_backend(backend: str) -> str:
    """What ``backend`` runs on the bench's CPU stacks (``auto``: the CPU default)."""
    from wiring.models import CPU_BACKEND

    return CPU_BACKEND if backend == "auto" else backend


def stack_overrides(
    backend: str, threads: int, cpu_workers: int, embed_workers: int, device: str
) -> dict[str, Any]:
    return {
        "embed_backend": backend,
        "embed_torch_threads": threads,
        "worker_cpu_concurrency": cpu_workers,
        "worker_embed_concurrency": embed_workers,
        "embed_device": device,
    }


def cold_job(stack: Stack, prepared: Prepared, timeout_s: float) -> dict[str, Any]:
    job = run_job(stack, prepared.quarry_tree, REPO, poll_s=0.1, timeout_s=timeout_s)
    if job["status"] != "done":
        raise RuntimeError(f"cold job ended {job['status']}: {job['errors']}")
    job["peak_rss_mb"] = stack.probe.peak_rss_mb()
    return job


def incremental_jobs(
    stack: Stack, prepared: Prepared, steps: list[list[str]], fractions: list[float], cold_s: float
) -> list[dict[str, Any]]:
    results = []
    for index, changed in enumerate(steps):
        apply_edits(prepared.quarry_tree, changed, f"s{index}")
        job = run_job(stack, prepared.quarry_tree, REPO, poll_s=0.01, timeout_s=3600)
        results.append(
            {
                "label": step_label(index, fractions),
                **incremental_step(len(changed), job["wall_s"], cold_s),
                "job": job,
            }
        )
    return results


def run_cocoindex(
    python: Path, prepared: Prepared, threads: int, steps: list[list[str]]
) -> dict[str, Any]:
    """bench/cocoindex_flow.py in CocoIndex's venv on the second copy, the same edits."""
    workdir = prepared.scratch / "cocoindex-work"
    workdir.mkdir(exist_ok=True)
    plan = {
        "source": str(prepared.coco_tree),
        "model": str(resolve_model_path(BUNDLED_MODEL)),
        "workdir": str(workdir),
        "threads": threads,
        "steps": [
            [[rel, edit_text(rel, f"s{index}")] for rel in changed]
            for index, changed in enumerate(steps)
        ],
    }
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    env = child_environment(load_settings(), COCOINDEX_DISABLE_USAGE_TRACKING="1")
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), str(COCOINDEX_SCRIPT), str(plan_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
        cwd=workdir,
    )
    if done.returncode:
        raise RuntimeError(f"cocoindex_flow.py failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - started, 2)
    return result


def change_plan(
    prepared: Prepared, fractions: list[float], seed: int
) -> tuple[list[list[str]], list[float]]:
    counts = change_counts(len(prepared.paths), fractions)
    return pick_changes(prepared.paths, counts, seed), fractions


def gpu_run(
    prepared: Prepared, batch_size: int, overrides: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """One cold job with the embed worker on CUDA at this batch size, GPU sampled."""
    raw_s, device = raw_encode(prepared, 1, batch_size)
    flush = min(4096, max(64, batch_size // 4))
    settings = {
        **overrides,
        "embed_batch_max_chunks": batch_size,
        "embed_batch_tokens": min(1_048_576, batch_size * 256),
        "embed_flush_messages": flush,
    }
    with private_stack(**settings) as stack, gpu_sampler() as samples:
        job = cold_job(stack, prepared, timeout_s)
    embed_s = job["work"]["embed_span_s"]
    return {
        "batch_size": batch_size,
        "embed_flush_messages": flush,
        "raw_fp16_encode_s": round(raw_s, 2),
        "raw_device": device,
        "wall_s": job["wall_s"],
        "ratio": ratio(raw_s, job["wall_s"]),
        "embed_stage_s": embed_s,
        "embed_stage_ratio": ratio(raw_s, embed_s),
        "gpu": summarise(list(samples)),
        "job": job,
    }
