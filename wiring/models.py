"""Builders of the embedding model (workers) and the query embedder (the API).

The model is loaded at once by :func:`embedder`, so that a missing or broken model
stops a worker with one clear line instead of failing its first task. torch is imported
only inside the adapters that need it.

Must not import: api/, workers/, cli/.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import QuarrySettings
from pipeline.adapters.models.onnx_export import BACKEND_PRECISION, MODEL_ID_SUFFIX
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    cuda_present,
    model_id_for,
    resolve_model_path,
)
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.analysis.tokens import TokenCounter
from pipeline.embedding_models import ModelSpec, RegisteredModel
from pipeline.ports import Embedder, EmbeddingCache
from pipeline.stages.backfill import LiveModels, ModelRegistry
from pipeline.stages.embedding import EmbeddingService

if TYPE_CHECKING:
    from pipeline.adapters.models.onnx_embedder import OnnxEmbedder as QueryEmbedder
    from pipeline.adapters.models.onnx_export import Precision
else:
    QueryEmbedder = Any  # the API names the type; onnxruntime loads only when it is built

__all__ = [
    "CPU_BACKEND",
    "QueryEmbedder",
    "batch_tokens",
    "embedder",
    "embedding_service",
    "export_query_model",
    "model_folder",
    "onnx_export_dir",
    "query_embedder",
    "query_model_file",
    "resolved_backend",
    "token_counter",
    "torch_threads",
]
GPU_BATCH_TOKENS = 65536
# On the CPU a batch is a quarter of the GPU one: latency per batch stays near the
# flush interval's scale and the cores are saturated well before that size.
CPU_BATCH_TOKENS = GPU_BATCH_TOKENS // 4
# What ``embed_backend = "auto"`` runs on the CPU, chosen by measurement
# (bench/results/e2e.md, "Default backend by measurement"): the torch fp32 function, so the
# same vectors and model id as torch, through onnxruntime's fused kernels.
CPU_BACKEND = "onnx-fp32"


def torch_threads(settings: QuarrySettings, cores: int | None = None) -> int:
    """Threads per embed process so that threads x processes never exceed the cores."""
    if settings.embed_torch_threads:
        return settings.embed_torch_threads
    return max(1, (cores or os.cpu_count() or 1) // settings.worker_embed_concurrency)


def resolved_backend(settings: QuarrySettings, cuda: Callable[[], bool] = cuda_present) -> str:
    """The backend ``embed_backend`` names; ``auto``: torch where the model runs on CUDA
    (``embed_device`` cuda, or auto with a CUDA device), else :data:`CPU_BACKEND`."""
    if settings.embed_backend != "auto":
        return settings.embed_backend
    if settings.embed_device == "cuda":
        return "torch"
    if settings.embed_device == "auto" and cuda():
        return "torch"
    return CPU_BACKEND


def onnx_export_dir(settings: QuarrySettings, precision: Precision) -> Path:
    """Where an embed worker finds (or makes) its ONNX export: the query model's folder
    when the export is already there (`quarry model export` made the fp32 one: one file
    for the API and the workers, no torch in the worker), else ``<data_dir>/models``
    (writable; the query model's folder may be a read-only install)."""
    from pipeline.adapters.models.onnx_export import cache_file
    from pipeline.adapters.models.query_embedder import query_model_dir

    shared = query_model_dir(settings)
    path, model_id = resolve_model_path(settings.embed_model), model_id_for(settings.embed_model)
    found = cache_file(shared, path, model_id, precision).is_file()
    return shared if found else settings.data_dir / "models"


def embedder(settings: QuarrySettings) -> Embedder:
    """The configured model, loaded now; a ConfigError names what is wrong with it."""
    path = resolve_model_path(settings.embed_model)
    model_id = model_id_for(settings.embed_model)
    threads = torch_threads(settings)
    backend = resolved_backend(settings)
    if backend in BACKEND_PRECISION:
        from pipeline.adapters.models.onnx_embedder import OnnxEmbedder

        precision: Precision = BACKEND_PRECISION[backend]
        onnx = OnnxEmbedder(
            path,
            onnx_export_dir(settings, precision),
            precision=precision,
            threads=threads,
            base_model_id=model_id,
            idle_unload_s=settings.embed_idle_unload_s,
        )
        onnx.load()
        return onnx
    torch_embedder = SentenceTransformerEmbedder(
        path,
        model_id=model_id,
        device=settings.embed_device,
        threads=threads,
        idle_unload_s=settings.embed_idle_unload_s,
    )
    torch_embedder.load()
    return torch_embedder


def settings_for(settings: QuarrySettings, name: str, backend: str) -> QuarrySettings:
    """``settings`` with another embedding model (a registered one, or a switch's)."""
    return settings.model_copy(update={"embed_model": name, "embed_backend": backend})


def configured_model_id(settings: QuarrySettings) -> str:
    """The model id the settings' model and backend give its vectors (no model loaded)."""
    base = model_id_for(settings.embed_model)
    precision = BACKEND_PRECISION.get(settings.embed_backend)
    return base if precision is None else base + MODEL_ID_SUFFIX[precision]


def model_spec(settings: QuarrySettings, model: Embedder) -> ModelSpec:
    """What the registry records of the loaded ``model``: id, name, backend, dimension
    and the weights' fingerprint (its revision)."""
    from pipeline.adapters.models.onnx_export import model_fingerprint

    path = resolve_model_path(settings.embed_model)
    name = settings.embed_model if settings.embed_model == BUNDLED_MODEL else str(path.resolve())
    return ModelSpec(
        model.model_id,
        name,
        settings.embed_backend,
        model.dimension,
        model_fingerprint(path, recipe="weights"),
    )


def live_models(
    settings: QuarrySettings, configured: EmbeddingService, registry: ModelRegistry
) -> LiveModels:
    """The embed worker's live models: ``configured`` (loaded at start) and any other
    registered model, loaded on first use through the same cache."""

    def load(registered: RegisteredModel) -> EmbeddingService:
        other = settings_for(settings, registered.name, registered.backend)
        return embedding_service(other, embedder(other), configured.cache)

    return LiveModels(
        registry,
        configured,
        model_spec(settings, configured.embedder),
        load,
        refresh_s=settings.model_registry_refresh_s,
    )


def batch_tokens(settings: QuarrySettings, model: Embedder) -> int:
    if settings.embed_batch_tokens:
        return settings.embed_batch_tokens
    return GPU_BATCH_TOKENS if model.device.startswith("cuda") else CPU_BATCH_TOKENS


def embedding_service(
    settings: QuarrySettings, model: Embedder, cache: EmbeddingCache
) -> EmbeddingService:
    """The embed stage's service: ``model`` through ``cache``, in token-budget batches
    (where its vectors are stored is the model registry's choice: any dimension)."""
    return EmbeddingService(
        model,
        cache,
        batch_tokens=batch_tokens(settings, model),
        max_chunks=settings.embed_batch_max_chunks,
    )


def query_embedder(
    settings: QuarrySettings, on_load: Callable[[float], None] | None = None
) -> QueryEmbedder:
    """The model that embeds queries (onnxruntime, no torch): not loaded yet; it never
    exports (a missing export names `quarry model export`), it unloads after
    ``search_query_model_idle_s`` without a query, and ``on_load(seconds)`` hears of
    each load."""
    from pipeline.adapters.models.query_embedder import query_embedder_from

    return query_embedder_from(
        settings,
        threads=settings.query_embed_threads,
        idle_unload_s=settings.search_query_model_idle_s,
        on_load=on_load,
    )


def export_query_model(settings: QuarrySettings) -> tuple[Path, bool]:
    """Make the query model's ONNX export where this process runs (needs torch), unless
    it is there: its file and whether it was made now."""
    from pipeline.adapters.models.query_embedder import export_query_model as export

    return export(settings)


def query_model_file(settings: QuarrySettings) -> Path:
    """Where the query model's export is expected (cheap: no torch, no onnxruntime)."""
    from pipeline.adapters.models.query_embedder import query_embedder_from

    return query_embedder_from(settings).export_file()


def token_counter() -> TokenCounter:
    """The model's own WordPiece counter (the chunker's budget is the model's window)."""
    return model_token_counter()


def model_folder(name: str) -> Path:
    """The folder of model ``name``; a ConfigError names it if it is missing."""
    return resolve_model_path(name)
