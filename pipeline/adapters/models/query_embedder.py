"""The query embedder of the API process: vectors in the space the workers store, no torch.

Owns the choice of the ONNX embedder whose vectors match the chunks' (the workers'
``embed_backend``): ``onnx-int8`` -> the int8 export (model id ``<model>+onnx-int8``),
``onnx-int8-smooth`` -> the smoothed int8 export (``<model>+onnx-int8-smooth``);
``torch``, ``onnx-fp32`` and ``auto`` -> the fp32 export, which computes the torch fp32
function (model id ``<model>``). The export lives in ``query_model_dir`` (unset:
``data_dir/models``, the workers' export cache) and is made by
:func:`export_query_model` (``quarry model export``: an install step where the API runs,
since exporting needs torch); the API's embedder never exports, and says which command
to run when the export is missing.
Importing this module, or embedding with the export made, imports neither torch nor
sentence_transformers.

Start-up: :func:`start_warming` runs ``embedder.load()`` (open the session) in a daemon
thread, so the first search does not pay for it; until then a query waits on the
embedder's lock for the same load.

Must not import: celery, tasks, workers, api, cli, torch, sentence_transformers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from config.settings import QuarrySettings
from pipeline.adapters.models.onnx_embedder import OnnxEmbedder
from pipeline.adapters.models.onnx_export import BACKEND_PRECISION, Precision
from pipeline.adapters.models.torch_embedder import model_id_for, resolve_model_path
from pipeline.errors import ConfigError

log = logging.getLogger("quarry.embed")

# One query at a time per request thread; the API serves requests side by side, so one
# intra-op thread each keeps the cores for the other requests.
QUERY_EMBED_THREADS = 1

# ``auto`` runs torch (CUDA) or onnx-fp32 (CPU): both store the fp32 function's vectors.
_PRECISION_OF_BACKEND: dict[str, Precision] = {
    **BACKEND_PRECISION,
    "torch": "fp32",
    "auto": "fp32",
}
EXPORT_COMMAND = "quarry model export"


def query_model_dir(settings: QuarrySettings) -> Path:
    """The folder of the query model's export."""
    return settings.query_model_dir or settings.data_dir / "models"


def query_embedder_from(
    settings: QuarrySettings,
    *,
    threads: int = QUERY_EMBED_THREADS,
    exporting: bool = False,
    idle_unload_s: float = 0.0,
    on_load: Callable[[float], None] | None = None,
) -> OnnxEmbedder:
    """The embedder for queries whose ``model_id`` and vectors match the stored chunks'.

    Not loaded: call ``load()`` (or :func:`start_warming`) to open it now. Without
    ``exporting`` a missing export is a ModelNotExportedError naming ``quarry model
    export``. A ConfigError names a missing model folder or an unknown backend.
    """
    precision = _PRECISION_OF_BACKEND.get(settings.embed_backend)
    if precision is None:
        raise ConfigError(f"embed_backend {settings.embed_backend!r}: no query embedder for it")
    return OnnxEmbedder(
        resolve_model_path(settings.embed_model),
        query_model_dir(settings),
        precision=precision,
        threads=threads,
        base_model_id=model_id_for(settings.embed_model),
        exporting=exporting,
        export_hint=EXPORT_COMMAND,
        idle_unload_s=idle_unload_s,
        on_load=on_load,
    )


def export_query_model(settings: QuarrySettings) -> tuple[Path, bool]:
    """Make the query model's export unless it is there (imports torch when it is not);
    its file, and whether it was made now."""
    embedder = query_embedder_from(settings, exporting=True)
    made = embedder.export()
    return embedder.export_file(), made


def start_warming(embedder: OnnxEmbedder) -> threading.Thread:
    """Load ``embedder`` in a daemon thread; a failure is logged, and raised again by
    the first ``embed`` (which retries the load). Join the thread to wait for it."""

    def warm() -> None:
        try:
            embedder.load()
        except ConfigError as exc:
            log.error("query embedder %s does not load: %s", embedder.model_id, exc)
        else:
            log.info("query embedder %s ready on %s", embedder.model_id, embedder.device)

    thread = threading.Thread(target=warm, name="quarry-query-embedder-warm", daemon=True)
    thread.start()
    return thread
