"""The GPU embedding path, measured (issue 24): parity, a real OOM, raw fp16 vs the stage.

Run by ``bench/gpu.sh`` on a bare GPU machine, one step per process
(``python -m bench.gpu_checks STEP --device cuda --payload .gpu --out DIR``), each
writing ``DIR/STEP.json``; ``--device cpu --quick`` rehearses the same code on a CPU.
It needs only torch, sentence-transformers, numpy and this repo (the GPU image has no
pydantic, so neither ``config/`` nor the ``quarry`` CLI load there), and reads the
chunks and the model from the folder ``bench/gpu_prepare.py`` packed.

What it measures is the embed STAGE (``EmbeddingService`` over the real adapter, its
token-budget batcher and OOM halving, a cold cache), not a whole job: Redis,
PostgreSQL, the graph server and Celery do not travel to the GPU machine.

Must not import: api/, workers/, tasks/, config/. ``torch`` is imported inside functions.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.e2e_gpu import gpu_sampler, summarise
from bench.gpu_oom import ColdCache, cuda_memory_cap, injected_oom, oom_check
from bench.machine import cpu_model
from pipeline.adapters.models.torch_embedder import SentenceTransformerEmbedder
from pipeline.stages.embedding import EmbeddingService

MODEL_ID = "all-MiniLM-L6-v2"
PARITY_MIN_COSINE = 0.999


@dataclass(frozen=True, slots=True)
class Payload:
    corpus: str
    texts: list[str]
    parity_indices: list[int]
    parity_reference: npt.NDArray[np.float32]
    model: Path


def load_payload(folder: Path) -> Payload:
    with gzip.open(folder / "chunks.json.gz", "rt", encoding="utf-8") as source:
        chunks = json.load(source)
    reference = np.load(folder / "parity_ref.npz")
    return Payload(
        chunks["corpus"],
        list(chunks["texts"]),
        [int(i) for i in reference["indices"]],
        np.asarray(reference["vectors"], dtype=np.float32),
        folder / "model",
    )


def parity_report(
    got: npt.NDArray[np.float32], reference: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Row-wise cosine of two sets of unit vectors; passes when all finite and ≥ 0.999."""
    bad_rows = int((~np.isfinite(got)).any(axis=1).sum())
    cosine = np.sum(np.nan_to_num(got) * reference, axis=1)
    return {
        "chunks": len(got),
        "nan_or_inf_rows": bad_rows,
        "cosine_min": round(float(cosine.min()), 6),
        "cosine_p001": round(float(np.quantile(cosine, 0.001)), 6),
        "cosine_mean": round(float(cosine.mean()), 6),
        "passed": bad_rows == 0 and float(cosine.min()) >= PARITY_MIN_COSINE,
    }


def _embed_all(embedder: SentenceTransformerEmbedder, texts: list[str], batch: int = 128) -> Any:
    return np.concatenate(
        [embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    )


def step_env(args: argparse.Namespace, _payload: Payload) -> dict[str, Any]:
    import sentence_transformers
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    smi = (
        subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        if cuda
        else None
    )
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_mib": torch.cuda.get_device_properties(0).total_memory // 2**20
        if cuda
        else None,
        "nvidia_smi": smi.stdout.strip() if smi else None,
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
    }


def step_parity(args: argparse.Namespace, payload: Payload) -> dict[str, Any]:
    limit = 64 if args.quick else len(payload.parity_indices)
    texts = [payload.texts[i] for i in payload.parity_indices[:limit]]
    reference = payload.parity_reference[:limit]
    device = SentenceTransformerEmbedder(payload.model, model_id=MODEL_ID, device=args.device)
    got = _embed_all(device, texts)
    # Against the original fp32 weights on a CPU (computed where the payload was packed),
    # and against the packed weights in fp32 on this machine's CPU: the second isolates
    # what fp16 arithmetic costs from what the fp16-rounded weights cost.
    local_cpu = SentenceTransformerEmbedder(payload.model, model_id=MODEL_ID, device="cpu")
    return {
        "device": device.device,
        "vs_fp32_original_cpu": parity_report(got, reference),
        "vs_fp32_packed_cpu_here": parity_report(got, _embed_all(local_cpu, texts)),
        "passed": parity_report(got, reference)["passed"],
    }


def step_oom(args: argparse.Namespace, payload: Payload) -> dict[str, Any]:
    count = 48 if args.quick else args.oom_chunks
    embedder = SentenceTransformerEmbedder(payload.model, model_id=MODEL_ID, device=args.device)
    longest = sorted(payload.texts, key=len, reverse=True)[:count]
    cap: Callable[[], contextlib.AbstractContextManager[list[int]]]
    if args.device == "cuda":
        embedder.load()
        cap = lambda: cuda_memory_cap(args.oom_cap_mib)  # noqa: E731
        how = f"torch.cuda.set_per_process_memory_fraction: {args.oom_cap_mib} MiB"
    else:
        cap = lambda: injected_oom(args.oom_padded_tokens)  # noqa: E731
        how = f"injected torch.cuda.OutOfMemoryError above {args.oom_padded_tokens} padded tokens"
    return {"device": embedder.device, "cap": how, **oom_check(embedder, longest, cap)}


@contextlib.contextmanager
def _sampled(device: str) -> Iterator[list[tuple[float, float, float]]]:
    if device != "cuda":
        yield []
        return
    with gpu_sampler(interval_ms=100) as samples:
        yield samples


def _timed(device: str, run: Callable[[], object], rounds: int) -> dict[str, Any]:
    import torch

    seconds: list[float] = []
    gpu: dict[str, Any] = {}
    for _ in range(rounds):
        with _sampled(device) as samples:
            started = time.perf_counter()
            run()
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - started)
        gpu = summarise(list(samples)) if device == "cuda" else {"skipped": "no GPU to sample"}
    return {
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "gpu_last_round": gpu,
    }


def _checkpoint(args: argparse.Namespace, partial: dict[str, Any]) -> None:
    """What is measured so far, so a step stopped at its time limit still says it."""
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"complete": False, **partial}, indent=2)
    (args.out / f"{args.step}.json").write_text(text, encoding="utf-8")


def _raw_sweep(
    args: argparse.Namespace, payload: Payload, sizes: list[int]
) -> tuple[list[str], dict[int, Any], float]:
    """Plain fp16 ``model.encode`` per batch size, on as many chunks as --budget-s allows.

    The device's speed is not known before it runs, so a probe of 4,096 chunks at the
    largest batch size sets how much of the corpus the whole sweep (raw and stage) uses.
    """
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(payload.model), device=args.device, local_files_only=True)
    if args.device == "cuda":
        model.half()
    model.encode(payload.texts[: sizes[0]], batch_size=sizes[0], show_progress_bar=False)
    probe = payload.texts[: 96 if args.quick else 4096]
    probe_s = _timed(
        args.device,
        lambda: model.encode(probe, batch_size=max(sizes), show_progress_bar=False),
        1,
    )["median_s"]
    runs = args.rounds * (2 * len(sizes) + 1) * 1.5
    fits = int(len(probe) / probe_s * args.budget_s / runs)
    texts = payload.texts[: len(probe) if args.quick else max(len(probe), fits)]
    raw: dict[int, Any] = {}
    for size in sizes:
        encode = functools.partial(
            model.encode, texts, batch_size=size, normalize_embeddings=True, show_progress_bar=False
        )
        raw[size] = _timed(args.device, encode, args.rounds)
        _checkpoint(args, {"raw_encode_by_batch_size": raw, "chunks": len(texts)})
    return texts, raw, len(probe) / probe_s


def step_throughput(args: argparse.Namespace, payload: Payload) -> dict[str, Any]:
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    texts, raw, probe_rate = _raw_sweep(args, payload, sizes)
    embedder = SentenceTransformerEmbedder(payload.model, model_id=MODEL_ID, device=args.device)
    embedder.embed(texts[:8])
    items = [(hashlib.sha256(t.encode()).hexdigest(), t) for t in texts]
    # (batch_tokens, max_chunks): e2e's --batch-sizes mapping, then the GPU default.
    configs = [(min(1_048_576, s * 256), s) for s in sizes] + [(65_536, 1024)]
    stage: dict[str, Any] = {}
    for batch_tokens, max_chunks in configs:
        service = EmbeddingService(
            embedder, ColdCache(), batch_tokens=batch_tokens, max_chunks=max_chunks
        )
        stage[f"{batch_tokens}x{max_chunks}"] = _timed(
            args.device, functools.partial(service.embed, items), args.rounds
        )
        _checkpoint(args, {"raw_encode_by_batch_size": raw, "stage": stage, "chunks": len(texts)})
    tokenize = _timed("cpu", lambda: embedder.count_tokens(texts), 1)
    summary = _throughput_summary(
        args.device, embedder.device, payload.corpus, len(texts), raw, stage, tokenize
    )
    summary.update(
        corpus_chunks=len(payload.texts),
        probe_chunks_per_s=round(probe_rate, 1),
        budget_s=args.budget_s,
    )
    return summary


def _throughput_summary(
    device: str,
    label: str,
    corpus: str,
    chunks: int,
    raw: dict[int, Any],
    stage: dict[str, Any],
    tokenize: dict[str, Any],
) -> dict[str, Any]:
    for entry in [*raw.values(), *stage.values()]:
        entry["chunks_per_s"] = round(chunks / entry["median_s"], 1)
    best_raw = max(e["chunks_per_s"] for e in raw.values())
    default = stage["65536x1024"]
    best_stage = max(e["chunks_per_s"] for e in stage.values())
    util = default["gpu_last_round"].get("util_mean_pct")
    return {
        "device": label,
        "corpus": corpus,
        "chunks": chunks,
        "raw_encode_by_batch_size": raw,
        "stage_by_batch_tokens_x_max_chunks": stage,
        "count_tokens_once": tokenize,
        "best_raw_chunks_per_s": best_raw,
        "stage_default_over_best_raw": round(default["chunks_per_s"] / best_raw, 3),
        "stage_best_over_best_raw": round(best_stage / best_raw, 3),
        "stage_default_gpu_util_mean_pct": util,
        "targets": {
            "stage_at_least_0.9_of_raw_fp16": default["chunks_per_s"] / best_raw >= 0.9,
            "gpu_busy_at_least_80_pct": None if util is None else util >= 80,
            "note": "meaningful only with --device cuda; a CPU rehearsal checks the code runs",
        },
    }


STEPS = {"env": step_env, "parity": step_parity, "oom": step_oom, "throughput": step_throughput}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--payload", type=Path, default=Path(".gpu"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU rehearsal)")
    parser.add_argument("--batch-sizes", default="64,128,256,512,1024")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=100, help="throughput: sweep time")
    parser.add_argument("--oom-chunks", type=int, default=4096)
    parser.add_argument("--oom-cap-mib", type=int, default=1024)
    parser.add_argument("--oom-padded-tokens", type=int, default=2048)
    args = parser.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no GPU: torch.cuda.is_available() is False here; rehearse with --device cpu")
            return 2
    started = time.perf_counter()
    result = STEPS[args.step](args, load_payload(args.payload))
    result["step_wall_s"] = round(time.perf_counter() - started, 1)
    result["complete"] = True
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.step}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
    return 0 if result.get("passed", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
