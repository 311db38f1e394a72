"""Settings fields: The embedding model and how the embed stage batches it.

A group of :class:`config.settings.QuarrySettings`, whose fields they are (flat:
``settings.<field>``, env var ``QUARRY_<FIELD>``); validators live on that class.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Port = int


class EmbeddingFields(BaseModel):
    """Settings: embedding."""

    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        min_length=1,
        description=(
            "Embedding model: `all-MiniLM-L6-v2` (bundled, loaded offline) or the path of a"
            " sentence-transformers model folder."
        ),
    )
    embed_backend: Literal["auto", "torch", "onnx-fp32", "onnx-int8", "onnx-int8-smooth"] = Field(
        "auto",
        description=(
            "`auto` (torch on CUDA when the embed device is CUDA, else `onnx-fp32`), `torch`"
            " (CUDA fp16 or CPU fp32), `onnx-fp32` (CPU: the model exported to ONNX,"
            " onnxruntime's fused kernels; the torch fp32 vectors, same model id) or"
            " `onnx-int8` (CPU: the export quantised to int8; its vectors carry another"
            " model id: moving an index to it is a `quarry model switch`) or"
            " `onnx-int8-smooth` (CPU: SmoothQuant-scaled int8 with the feed-forward"
            " down-projections kept fp32; closer to fp32 than `onnx-int8`; its own model id)."
        ),
    )
    model_backfill_batch_rows: int = Field(
        256,
        ge=1,
        le=65536,
        description="Chunk rows a model switch's backfill embeds and writes per batch.",
    )
    model_backfill_step_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description=(
            "Longest run of one backfill task before it hands on to the next (an embed"
            " process is busy that long; index jobs' embeds go on in the others)."
        ),
    )
    model_drop_grace_s: float = Field(
        30.0,
        ge=0,
        le=86400,
        description=(
            "Wait after a model switch before the old model's vectors are dropped (longer"
            " than the API's and workers' registry refresh, so no search still reads them)."
        ),
    )
    model_registry_refresh_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="How often the API and the embed workers read the active model.",
    )
    embed_skip_cached: bool = Field(
        True,
        description="The chunk stage sends a file whose every chunk the embedding cache "
        "holds for the active model straight to the write stage, with those vectors "
        "(false: every file goes through the embed stage).",
    )
    embed_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Embedding device; `auto` takes CUDA when present, else the CPU."
    )
    embed_batch_tokens: int | None = Field(
        None,
        ge=256,
        le=1_048_576,
        description=(
            "Token budget of one device batch. Unset: 65536 on a GPU, a quarter of it on the CPU."
        ),
    )
    embed_batch_max_chunks: int = Field(
        1024, ge=1, le=8192, description="Most chunks in one device batch (a GPU cap)."
    )
    embed_flush_messages: int = Field(
        64,
        ge=1,
        le=4096,
        description="Embed messages buffered before a flush (each holds one file's chunks).",
    )
    embed_flush_interval_s: float = Field(
        0.05, gt=0, le=10, description="Longest wait before a partial embed batch is flushed."
    )
    embed_torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Torch threads per embed process. Unset: the cores divided by the processes.",
    )
    embed_idle_unload_s: float = Field(
        0, ge=0, description="Unload the model after this long unused (0: keep it loaded)."
    )
    query_cache_ttl_s: int = Field(
        86400, ge=0, description="Lifetime of a cached query embedding in Redis (0: no cache)."
    )
