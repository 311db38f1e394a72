"""The ONNX embedder: a sentence-transformers BERT model run by onnxruntime on the CPU.

Three precisions of one export (pipeline.adapters.models.onnx_export makes and caches the
file): ``int8`` (dynamic int8 quantisation: its own vector space, ``<model>+onnx-int8``),
``int8-smooth`` (SmoothQuant, int8 where it keeps the vectors: ``<model>+onnx-int8-smooth``)
and ``fp32`` (the same function as the torch fp32 model, so its vectors carry the model's
own id and can be compared with vectors the torch path stored). Owns the onnxruntime
session, the tokenizer (the folder's ``tokenizer.json``), mean pooling, L2
normalisation, and the translation of onnxruntime errors. Importing it imports neither
torch nor onnxruntime; torch is imported only while exporting. It never downloads.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from pipeline.adapters.models.heap import give_back_freed_memory
from pipeline.adapters.models.model_inputs import (
    load_tokenizer,
    model_feed,
    prepared,
    window_and_case,
)
from pipeline.adapters.models.onnx_export import (
    EXPORT_RECIPE,
    EXPORT_RECIPES,
    MODEL_ID_SUFFIX,
    Precision,
    cache_file,
    check_modules,
    export_int8_onnx,
    export_once,
    export_onnx,
    model_fingerprint,
    one_line,
    read_json,
    words_file,
)
from pipeline.adapters.models.word_table import WordTable
from pipeline.errors import (
    ConfigError,
    EmbeddingOutOfMemoryError,
    InvalidInputError,
    ModelNotExportedError,
)

# The export's names, kept importable from here for the callers that predate the split.
__all__ = [
    "EXPORT_RECIPE",
    "EXPORT_RECIPES",
    "OnnxEmbedder",
    "OnnxInt8Embedder",
    "Precision",
    "cache_file",
    "export_int8_onnx",
    "export_once",
    "mean_pool_normalise",
    "model_fingerprint",
]

log = logging.getLogger("quarry.embed")

_NEEDED_FILES = ("config.json", "modules.json", "tokenizer.json")


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's exception types (plain ``Exception`` subclasses of its C++ status)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile")
    return (*(getattr(state, name) for name in names), state.RuntimeException, OSError)


class _Runner(NamedTuple):
    """An open export: its session, its word-embedding rows, the graph's input names. A
    call holds its own reference, so an unload under it closes nothing it uses."""

    session: Any
    words: WordTable
    input_names: tuple[str, ...]


class OnnxEmbedder:
    """An :class:`~pipeline.ports.Embedder` over the ONNX export of a model folder.

    ``precision`` picks the export: ``int8`` (model id ``<base>+onnx-int8``), ``int8-smooth``
    (``<base>+onnx-int8-smooth``) or ``fp32``
    (model id ``<base>``: the torch fp32 function, so its vectors compare with the torch
    path's). The export is made once into ``cache_dir`` (named by the recipe and the
    model's fingerprint) and reused by every later process. ``load()`` makes the export
    and opens the session now (start-up, or a warm-up thread); otherwise the first call
    does, under a lock. ``threads`` sets onnxruntime's intra-op threads (its default:
    the physical cores).

    ``exporting=False`` (the API) never exports: a missing export is a
    :class:`ModelNotExportedError` naming ``export_hint``, the command that makes it.
    ``idle_unload_s`` > 0 closes the session after that long without a call; the next
    call opens it again. ``on_load(seconds)`` is told each time the session is opened.
    """

    def __init__(
        self,
        model_path: Path,
        cache_dir: Path,
        *,
        precision: Precision = "int8",
        threads: int | None = None,
        base_model_id: str = "all-MiniLM-L6-v2",
        exporting: bool = True,
        export_hint: str = "",
        idle_unload_s: float = 0.0,
        on_load: Callable[[float], None] | None = None,
    ) -> None:
        if precision not in EXPORT_RECIPES:
            raise ConfigError(f"onnx precision {precision!r}: not one of {sorted(EXPORT_RECIPES)}")
        missing = [n for n in _NEEDED_FILES if not (model_path / n).is_file()]
        if missing:
            raise ConfigError(f"embedding model at {model_path}: not a model folder (no {missing})")
        check_modules(model_path, f"onnx-{precision}")
        config = read_json(model_path / "config.json")
        st_file = model_path / "sentence_bert_config.json"
        st_config = read_json(st_file) if st_file.is_file() else {}
        self._path = model_path
        self._cache_dir = cache_dir
        self._threads = threads
        self._precision: Precision = precision
        self._model_id = base_model_id + MODEL_ID_SUFFIX[precision]
        self._base_id = base_model_id
        self._dimension = int(config["hidden_size"])
        self._max_tokens, self._lower_case = window_and_case(config, st_config)
        self._exporting = exporting
        self._export_hint = export_hint
        self._idle_unload_s = idle_unload_s
        self._on_load = on_load
        self._lock = threading.Lock()
        self._vocabulary = int(config["vocab_size"])
        self._session: _Runner | None = None
        self._tokenizer = self._make_tokenizer(truncate=True)
        self._counter: Tokenizer | None = None  # made on first count: the API never counts
        self._onnx_file: Path | None = None
        self._last_used = time.monotonic()
        self._timer: threading.Timer | None = None
        self.exports = 0
        self.loads = 0

    # --- the port ---------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def device(self) -> str:
        return f"cpu (onnxruntime {self._precision})"

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def precision(self) -> Precision:
        return self._precision

    @property
    def loaded(self) -> bool:
        """Whether the session is open (``embed`` then runs without exporting or loading)."""
        return self._session is not None

    @property
    def onnx_file(self) -> Path | None:
        """The exported model this embedder runs; None until loaded."""
        return self._onnx_file

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._counter is None:
            self._counter = self._make_tokenizer(truncate=False)
        encodings = self._counter.encode_batch(prepared(texts, self._lower_case))
        return [len(e.ids) for e in encodings]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        session = self._ensure_loaded()
        encodings = self._tokenizer.encode_batch(prepared(texts, self._lower_case))
        feed, mask = model_feed(encodings, session.words, session.input_names)
        hidden = self._run(session.session, feed, len(texts))
        self._touch()
        return mean_pool_normalise(hidden, mask)

    # --- lifecycle --------------------------------------------------------------------
    def load(self) -> None:
        """Export (once per cache) and open the model now, so a broken one fails here.
        The idle time counts from here too: a model warmed and never queried unloads."""
        self._ensure_loaded()
        self._touch()

    def unload(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._session is None:
                return
            self._session = None
        give_back_freed_memory()

    def _ensure_loaded(self) -> _Runner:
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                started = time.perf_counter()
                self._session = self._open()
                self.loads += 1
                seconds = time.perf_counter() - started
                give_back_freed_memory()
                if self._on_load is not None:
                    self._on_load(seconds)
            return self._session

    def _touch(self) -> None:
        self._last_used = time.monotonic()
        if self._idle_unload_s > 0 and self._timer is None:
            with self._lock:
                if self._timer is None:
                    self._schedule_unload(self._idle_unload_s)

    def _schedule_unload(self, delay_s: float) -> None:
        # One timer at a time, re-armed for the rest of the idle period when it fires
        # early: a thread per query would be a thread per query.
        timer = threading.Timer(delay_s, self._unload_if_idle)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _unload_if_idle(self) -> None:
        with self._lock:
            self._timer = None
            if self._session is None:
                return
            idle_s = time.monotonic() - self._last_used
            if idle_s < self._idle_unload_s:
                self._schedule_unload(self._idle_unload_s - idle_s)
                return
            # A call running now keeps its own reference to the session until it ends.
            self._session = None
        give_back_freed_memory()
        log.info("model %s unloaded after %.0f s idle", self._model_id, idle_s)

    def export_file(self) -> Path:
        """Where this model's export is (or will be) in the cache folder."""
        return cache_file(self._cache_dir, self._path, self._base_id, self._precision)

    def export(self) -> bool:
        """Make the export now unless it exists (needs torch); whether it ran."""
        target = self.export_file()
        try:
            made = export_once(target, lambda out: export_onnx(self._path, out, self._precision))
        except Exception as exc:  # torch, safetensors, onnx and ORT each raise their own
            raise ConfigError(
                f"embedding model at {self._path} does not export: {one_line(exc)}"
            ) from exc
        if made:
            self.exports += 1
            log.info("exported %s to %s", self._path, target)
        return made

    def _open(self) -> _Runner:
        import onnxruntime as ort

        target = self.export_file()
        if not self._exporting:
            if not target.is_file():
                how = f"run `{self._export_hint}`" if self._export_hint else "export it first"
                raise ModelNotExportedError(
                    f"the model {self._model_id} is not exported (no {target}): {how}"
                )
        else:
            self.export()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT logs harmless fusion notes at load
        options.inter_op_num_threads = 1
        if self._threads:
            options.intra_op_num_threads = self._threads
        try:
            session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise ConfigError(
                f"embedding model at {target} does not load: {one_line(exc)}"
            ) from exc
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != self._dimension:
            raise ConfigError(f"embedding model at {target}: width {width}, not {self._dimension}")
        inputs = tuple(i.name for i in session.get_inputs())
        if "inputs_embeds" not in inputs:
            raise ConfigError(f"embedding model at {target}: no inputs_embeds input")
        words = WordTable(words_file(target), rows=self._vocabulary, width=self._dimension)
        self._onnx_file = target
        return _Runner(session, words, inputs)

    def _run(self, session: Any, feed: dict[str, Any], n: int) -> npt.NDArray[np.float32]:
        try:
            hidden: npt.NDArray[np.float32] = session.run(None, feed)[0]
        except _ort_errors() as exc:
            message = one_line(exc)
            if "alloc" in message.lower():
                raise EmbeddingOutOfMemoryError(f"cpu out of memory for {n} texts") from exc
            raise InvalidInputError(f"onnxruntime refused a batch of {n} texts: {message}") from exc
        return hidden

    def _make_tokenizer(self, *, truncate: bool) -> Tokenizer:
        try:
            return load_tokenizer(self._path, self._max_tokens if truncate else None)
        except Exception as exc:  # tokenizers raises a bare Exception
            raise ConfigError(
                f"embedding model file {self._path / 'tokenizer.json'} does not load: "
                f"{one_line(exc)}"
            ) from exc


class OnnxInt8Embedder(OnnxEmbedder):
    """The int8 :class:`OnnxEmbedder` (the ``onnx-int8`` backend's name since before fp32)."""

    def __init__(
        self,
        model_path: Path,
        cache_dir: Path,
        *,
        threads: int | None = None,
        base_model_id: str = "all-MiniLM-L6-v2",
    ) -> None:
        super().__init__(
            model_path, cache_dir, precision="int8", threads=threads, base_model_id=base_model_id
        )


def mean_pool_normalise(
    hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Mean of the unmasked token vectors, scaled to unit length, as float32 rows."""
    weights = mask.astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden.astype(np.float32, copy=False), weights)
    counts = np.clip(weights.sum(axis=1, keepdims=True), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return np.ascontiguousarray(pooled / norms, dtype=np.float32)
