"""A real model out of memory: the embed stage halves the batch and embeds each chunk once.

On the CPU the OOM is injected into the real model (the exception a CUDA allocator
raises, from a forward pre-hook), so the adapter's translation and the stage's halving
run with the real tokenizer and weights; on a GPU the allocator raises it for real,
under a per-process memory cap.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.gpu_oom import cuda_memory_cap, injected_oom, oom_check
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    resolve_model_path,
)

REPO = Path(__file__).resolve().parents[2]


def _real_chunks(count: int) -> list[str]:
    texts: list[str] = []
    for folder in ("pipeline", "bench", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            source = path.read_text("utf-8")
            texts.extend(source[i : i + 900] for i in range(0, len(source), 900))
    return [t for t in dict.fromkeys(texts) if len(t) == 900][:count]


def test_an_oom_in_the_real_model_halves_the_batch_and_embeds_each_chunk_once() -> None:
    embedder = SentenceTransformerEmbedder(
        resolve_model_path(BUNDLED_MODEL), model_id=BUNDLED_MODEL, device="cpu"
    )
    result = oom_check(embedder, _real_chunks(24), lambda: injected_oom(6 * 256))

    assert result["planned_batches"] == 1
    assert result["refused_by_injection"][0] == 24
    assert result["oom_causes"] == ["OutOfMemoryError"]
    assert result["halvings"] == result["oom_events"] > 0
    assert max(size for size, _ in result["embedded_batch_sizes"]) <= 6
    assert result["every_chunk_embedded_once"], result
    assert result["cosine_min_vs_small_batches"] >= 0.9999
    assert result["passed"]


@pytest.mark.gpu
def test_a_real_cuda_oom_halves_the_batch_and_embeds_each_chunk_once() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: a real CUDA OOM needs one (bench/gpu.sh)")
    embedder = SentenceTransformerEmbedder(
        resolve_model_path(BUNDLED_MODEL), model_id=BUNDLED_MODEL, device="cuda"
    )
    embedder.load()
    result = oom_check(embedder, _real_chunks(2048), lambda: cuda_memory_cap(512))

    assert result["oom_causes"] == ["OutOfMemoryError"], result
    assert "CUDA out of memory" in str(result["first_oom"])
    assert result["halvings"] > 0
    assert result["every_chunk_embedded_once"], result
    assert result["passed"], result
