"""The int8 ONNX embedder: a sentence-transformers BERT model run by onnxruntime on the CPU.

Owns the one-time export of a local model folder to ONNX (torch's TorchScript exporter,
then onnxruntime's BERT fusions and dynamic int8 quantisation with per-channel weights),
the cache of that export (atomic, shared safely by processes), the tokenizer (the
folder's ``tokenizer.json``), mean pooling, L2 normalisation, and the translation of
onnxruntime errors. ``torch`` and ``transformers`` are imported only while exporting.
It never downloads: everything is read from the model folder.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from pipeline.errors import ConfigError, EmbeddingOutOfMemoryError, InvalidInputError

log = logging.getLogger("quarry.embed")

# Part of the cache key: changing how the file is made must not reuse an old file.
EXPORT_RECIPE = "torchscript-opset17+bert-fusion+qint8-per-channel-matmul-attention/v1"
_WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
_SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}
_NEEDED_FILES = ("config.json", "modules.json", "tokenizer.json")
_OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"embedding model file {path} does not load: {_one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"embedding model file {path} is not a JSON object")
    return data


def _check_modules(model_path: Path) -> None:
    """Refuse what this adapter does not compute: only Transformer, mean Pooling, Normalize."""
    modules = model_path / "modules.json"
    try:
        kinds = {str(m["type"]) for m in json.loads(modules.read_text("utf-8"))}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"embedding model file {modules} does not load: {_one_line(exc)}"
        ) from exc
    modes = {
        k
        for pool in model_path.glob("*Pooling*/config.json")
        for k, v in _read_json(pool).items()
        if k.startswith("pooling_mode") and v
    }
    if kinds - _SUPPORTED_MODULES or modes - {"pooling_mode_mean_tokens"}:
        found = sorted(kinds - _SUPPORTED_MODULES) + sorted(modes - {"pooling_mode_mean_tokens"})
        raise ConfigError(f"embedding model at {model_path}: onnx-int8 cannot run {found}")


def model_fingerprint(model_path: Path) -> str:
    """sha256 of the export recipe and the model's weight files (names and bytes)."""
    digest = hashlib.sha256(EXPORT_RECIPE.encode())
    for name in _WEIGHT_FILES:
        path = model_path / name
        if not path.is_file():
            continue
        digest.update(name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_once(target: Path, export: Callable[[Path], None]) -> bool:
    """Make ``target`` with ``export(tmp_file)`` unless it exists; returns whether it ran.

    Processes and threads exporting the same file at once wait on a lock file; the file
    appears only complete (written beside it, then renamed), so a crash leaves none.
    """
    if target.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if target.is_file():
            return False
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
            made = Path(tmp) / target.name
            export(made)
            os.replace(made, target)
    return True


def cache_file(cache_dir: Path, model_path: Path, base_model_id: str) -> Path:
    """Where the int8 export of ``model_path`` lives in ``cache_dir``."""
    name = f"{base_model_id}-{model_fingerprint(model_path)[:16]}-int8.onnx"
    return cache_dir / name.replace("/", "_")


def export_int8_onnx(
    model_path: Path, out_file: Path, *, fuse: bool = True, per_channel: bool = True
) -> None:
    """Export the model folder's transformer to ONNX, fuse its BERT ops, quantise to int8.

    ``fuse`` and ``per_channel`` exist for the benchmark's ablations; the defaults are the
    recipe named by :data:`EXPORT_RECIPE`.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    config = _read_json(model_path / "config.json")
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=".fp32-") as tmp:
        fp32_file = Path(tmp) / "fp32.onnx"
        _export_fp32(model_path, fp32_file)
        if fuse and config.get("model_type") == "bert":
            # Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu.
            fused = optimizer.optimize_model(
                str(fp32_file),
                model_type="bert",
                num_heads=int(config["num_attention_heads"]),
                hidden_size=int(config["hidden_size"]),
                opt_level=0,
            )
            fused.save_model_to_file(str(fp32_file))
        quantize_dynamic(
            fp32_file,
            out_file,
            weight_type=QuantType.QInt8,
            # Per-tensor weights cost ~0.05 of cosine to fp32 on code; per-channel ~0.005.
            per_channel=per_channel,
            # Embedding lookups stay fp32: they cost nothing and quantising them lowers cosine.
            op_types_to_quantize=["MatMul", "Attention"],
            # Fused ops are in the com.microsoft domain, where shape inference gives no type.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def _export_fp32(model_path: Path, out_file: Path) -> None:
    import torch
    from transformers import AutoModel

    class _Encoder(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> Any:
            return self.model(
                input_ids=ids, attention_mask=mask, token_type_ids=types, return_dict=False
            )[0]

    # Eager attention traces to the plain MatMul/Softmax pattern the BERT fusion matches.
    model = AutoModel.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation="eager"
    )
    model.eval()
    sample = torch.ones((2, 8), dtype=torch.int64)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    # The TorchScript exporter needs no onnxscript (the dynamo one does); it warns that it
    # is legacy and that traced Python conditions are constants, true for these inputs.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            (sample, sample, torch.zeros_like(sample)),
            str(out_file),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=_OPSET,
            dynamo=False,
        )


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's exception types (plain ``Exception`` subclasses of its C++ status)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile")
    return (*(getattr(state, name) for name in names), state.RuntimeException, OSError)


class OnnxInt8Embedder:
    """An :class:`~pipeline.ports.Embedder` over the int8 ONNX export of a model folder.

    The export is made once into ``cache_dir`` (named by the model's fingerprint) and
    reused by every later process. ``load()`` makes it ready now (worker start-up);
    otherwise the first call does, under a lock. ``threads`` sets onnxruntime's
    intra-op threads (its default: the physical cores).
    """

    def __init__(
        self,
        model_path: Path,
        cache_dir: Path,
        *,
        threads: int | None = None,
        base_model_id: str = "all-MiniLM-L6-v2",
    ) -> None:
        missing = [n for n in _NEEDED_FILES if not (model_path / n).is_file()]
        if missing:
            raise ConfigError(f"embedding model at {model_path}: not a model folder (no {missing})")
        _check_modules(model_path)
        config = _read_json(model_path / "config.json")
        st_file = model_path / "sentence_bert_config.json"
        st_config = _read_json(st_file) if st_file.is_file() else {}
        self._path = model_path
        self._cache_dir = cache_dir
        self._threads = threads
        self._model_id = f"{base_model_id}+onnx-int8"
        self._base_id = base_model_id
        self._dimension = int(config["hidden_size"])
        window = int(config.get("max_position_embeddings", 512))
        self._max_tokens = min(int(st_config.get("max_seq_length", window)), window)
        self._lower_case = bool(st_config.get("do_lower_case", False))
        self._lock = threading.Lock()
        self._session: Any = None
        self._input_names: tuple[str, ...] = ()
        self._tokenizer = self._make_tokenizer(truncate=True)
        self._counter = self._make_tokenizer(truncate=False)
        self._onnx_file: Path | None = None
        self.exports = 0

    # --- the port ---------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def device(self) -> str:
        return "cpu (onnxruntime int8)"

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def onnx_file(self) -> Path | None:
        """The exported model this embedder runs; None until loaded."""
        return self._onnx_file

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encodings = self._counter.encode_batch(self._prepare(texts))
        return [len(e.ids) for e in encodings]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        session = self._ensure_loaded()
        encodings = self._tokenizer.encode_batch(self._prepare(texts))
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        columns = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feed = {name: columns[name] for name in self._input_names}
        hidden = self._run(session, feed, len(texts))
        return mean_pool_normalise(hidden, mask)

    # --- lifecycle --------------------------------------------------------------------
    def load(self) -> None:
        """Export (once per cache) and open the model now, so a broken one fails here."""
        self._ensure_loaded()

    def unload(self) -> None:
        with self._lock:
            self._session = None

    def _ensure_loaded(self) -> Any:
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                self._session = self._open()
            return self._session

    def _open(self) -> Any:
        import onnxruntime as ort

        target = cache_file(self._cache_dir, self._path, self._base_id)
        try:
            if export_once(target, lambda out: export_int8_onnx(self._path, out)):
                self.exports += 1
                log.info("exported %s to %s", self._path, target)
        except Exception as exc:  # torch, safetensors, onnx and ORT each raise their own
            raise ConfigError(
                f"embedding model at {self._path} does not export: {_one_line(exc)}"
            ) from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT logs harmless fusion notes at load
        options.inter_op_num_threads = 1
        if self._threads:
            options.intra_op_num_threads = self._threads
        try:
            session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise ConfigError(
                f"embedding model at {target} does not load: {_one_line(exc)}"
            ) from exc
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != self._dimension:
            raise ConfigError(f"embedding model at {target}: width {width}, not {self._dimension}")
        self._input_names = tuple(i.name for i in session.get_inputs())
        self._onnx_file = target
        return session

    def _run(self, session: Any, feed: dict[str, Any], n: int) -> npt.NDArray[np.float32]:
        try:
            hidden: npt.NDArray[np.float32] = session.run(None, feed)[0]
        except _ort_errors() as exc:
            message = _one_line(exc)
            if "alloc" in message.lower():
                raise EmbeddingOutOfMemoryError(f"cpu out of memory for {n} texts") from exc
            raise InvalidInputError(f"onnxruntime refused a batch of {n} texts: {message}") from exc
        return hidden

    def _make_tokenizer(self, *, truncate: bool) -> Tokenizer:
        path = self._path / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception
            raise ConfigError(
                f"embedding model file {path} does not load: {_one_line(exc)}"
            ) from exc
        padding = tokenizer.padding or {}
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if truncate:
            # sentence-transformers truncates at max_seq_length and pads to the batch's longest.
            tokenizer.enable_truncation(max_length=self._max_tokens)
            pad_keys = ("pad_id", "pad_type_id", "pad_token")
            tokenizer.enable_padding(**{k: padding[k] for k in pad_keys if k in padding})
        return tokenizer

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        return [t.lower() for t in texts] if self._lower_case else list(texts)


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
