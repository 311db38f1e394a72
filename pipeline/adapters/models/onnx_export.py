"""The one-time export of a sentence-transformers model folder to ONNX, and its cache.

Owns reading and checking the model folder (only Transformer, mean Pooling, Normalize
are computed by the ONNX embedder), the export recipes per precision (torch's
TorchScript exporter, onnxruntime's BERT fusions, then for ``int8`` dynamic int8
quantisation with per-channel weights, for ``int8-smooth`` the same after SmoothQuant
scaling with the down-projections kept fp32 (pipeline.adapters.models.smoothquant);
every recipe then stores the weights beside the
graph, as external data, which onnxruntime maps instead of copying), the word-embedding
table kept out of the graph (the graph takes ``inputs_embeds``; the embedder reads the
rows of a batch's token ids from :func:`words_file`, so the table's 45 MiB never enter
a process's memory), the cache file names (keyed by the recipe and the weights' bytes),
and the atomic, lock-guarded export shared safely by processes.
``torch`` and ``transformers`` are imported only while exporting. It never downloads.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pipeline.adapters.models.smoothquant import RECIPE as SMOOTH_RECIPE
from pipeline.errors import ConfigError

Precision = Literal["int8", "int8-smooth", "fp32"]


# Part of the cache key: changing how a file is made must not reuse an old file.
EXPORT_RECIPES: dict[Precision, str] = {
    "int8": "torchscript-opset17+bert-fusion+qint8-per-channel-matmul-attention"
    "+external-data+words-apart/v3",
    "int8-smooth": f"torchscript-opset17+bert-fusion+{SMOOTH_RECIPE}"
    "+qint8-per-channel-matmul-attention+external-data+words-apart/v1",
    "fp32": "torchscript-opset17+bert-fusion+fp32+external-data+words-apart/v3",
}
# The backends that run an export, and the suffix each precision adds to the model id
# (fp32 computes the torch function: the model's own id).
BACKEND_PRECISION: dict[str, Precision] = {
    "onnx-int8": "int8",
    "onnx-int8-smooth": "int8-smooth",
    "onnx-fp32": "fp32",
}
MODEL_ID_SUFFIX: dict[Precision, str] = {
    "int8": "+onnx-int8",
    "int8-smooth": "+onnx-int8-smooth",
    "fp32": "",
}
EXPORT_RECIPE = EXPORT_RECIPES["int8"]
_WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
_SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}
_OPSET = 17
INPUTS = ("inputs_embeds", "attention_mask", "token_type_ids")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_json(path: Path) -> dict[str, Any]:
    """A model folder's JSON object; a ConfigError naming the file when it does not load."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"embedding model file {path} does not load: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"embedding model file {path} is not a JSON object")
    return data


def check_modules(model_path: Path, backend: str) -> None:
    """Refuse what the ONNX embedder does not compute: only Transformer, mean Pooling,
    Normalize. ``backend`` names the refusing path in the message (``onnx-int8``)."""
    modules = model_path / "modules.json"
    try:
        kinds = {str(m["type"]) for m in json.loads(modules.read_text("utf-8"))}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"embedding model file {modules} does not load: {one_line(exc)}") from exc
    modes = {
        k
        for pool in model_path.glob("*Pooling*/config.json")
        for k, v in read_json(pool).items()
        if k.startswith("pooling_mode") and v
    }
    if kinds - _SUPPORTED_MODULES or modes - {"pooling_mode_mean_tokens"}:
        found = sorted(kinds - _SUPPORTED_MODULES) + sorted(modes - {"pooling_mode_mean_tokens"})
        raise ConfigError(f"embedding model at {model_path}: {backend} cannot run {found}")


def model_fingerprint(model_path: Path, recipe: str = EXPORT_RECIPE) -> str:
    """sha256 of the export recipe and the model's weight files (names and bytes)."""
    digest = hashlib.sha256(recipe.encode())
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
    Files ``export`` writes beside ``tmp_file`` (its external data) are moved first.
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
            for part in Path(tmp).iterdir():
                if part != made:
                    os.replace(part, target.parent / part.name)
            os.replace(made, target)
    return True


def cache_file(
    cache_dir: Path, model_path: Path, base_model_id: str, precision: Precision = "int8"
) -> Path:
    """Where the ``precision`` export of ``model_path`` lives in ``cache_dir``."""
    fingerprint = model_fingerprint(model_path, EXPORT_RECIPES[precision])
    name = f"{base_model_id}-{fingerprint[:16]}-{precision}.onnx"
    return cache_dir / name.replace("/", "_")


def export_onnx(model_path: Path, out_file: Path, precision: Precision) -> None:
    """Export the model folder by the recipe of ``precision`` (see :data:`EXPORT_RECIPES`)."""
    if precision == "int8":
        export_int8_onnx(model_path, out_file)
    elif precision == "int8-smooth":
        export_int8_smooth_onnx(model_path, out_file)
    else:
        export_fp32_onnx(model_path, out_file)
    store_weights_apart(out_file)


def words_file(onnx_file: Path) -> Path:
    """The word-embedding table of the export ``onnx_file``: float32 rows, one per token
    id, ``hidden_size`` wide, no header."""
    return onnx_file.with_name(onnx_file.name + ".words")


def external_data_file(onnx_file: Path) -> Path:
    """Where :func:`store_weights_apart` puts the weights of ``onnx_file``."""
    return onnx_file.with_name(onnx_file.name + ".data")


def store_weights_apart(onnx_file: Path) -> None:
    """Move the weights of ``onnx_file`` into :func:`external_data_file`, in place.

    onnxruntime maps external data rather than reading it into its own buffers: the
    word-embedding table (half of MiniLM's fp32 bytes, all of it in the int8 export)
    then costs memory only for the rows that queries look up.
    """
    import onnx

    model = onnx.load(str(onnx_file))
    onnx.save_model(
        model,
        str(onnx_file),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=external_data_file(onnx_file).name,
        size_threshold=1024,
    )
    # onnx creates the weights file owner-only; it is as readable as the graph beside it.
    external_data_file(onnx_file).chmod(onnx_file.stat().st_mode & 0o777)


def export_fp32_onnx(model_path: Path, out_file: Path, *, fuse: bool = True) -> None:
    """Export the model folder's transformer to ONNX and fuse its BERT ops; fp32 weights.

    The fused graph computes what torch computes in fp32 (cosine to it ~1 - 1e-7).
    """
    _export_torchscript(model_path, out_file)
    if fuse:
        _fuse_bert(model_path, out_file)


def export_int8_onnx(
    model_path: Path, out_file: Path, *, fuse: bool = True, per_channel: bool = True
) -> None:
    """Export the model folder's transformer to ONNX, fuse its BERT ops, quantise to int8.

    ``fuse`` and ``per_channel`` exist for the benchmark's ablations; the defaults are the
    recipe named by :data:`EXPORT_RECIPE`.
    """
    with _fp32_export(model_path, out_file, fuse=fuse) as fp32_file:
        quantize_int8(fp32_file, out_file, per_channel=per_channel)


@contextmanager
def _fp32_export(model_path: Path, out_file: Path, *, fuse: bool = True) -> Iterator[Path]:
    """The fp32 export that a quantised recipe starts from, in a scratch folder beside
    ``out_file``; once the recipe has written ``out_file``, its word table moves there."""
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=".fp32-") as tmp:
        fp32_file = Path(tmp) / "fp32.onnx"
        export_fp32_onnx(model_path, fp32_file, fuse=fuse)
        yield fp32_file
        os.replace(words_file(fp32_file), words_file(out_file))


def quantize_int8(
    fp32_file: Path, out_file: Path, *, per_channel: bool = True, keep_fp32: Sequence[str] = ()
) -> None:
    """Dynamic int8 quantisation of the fused graph's matmuls, but the nodes ``keep_fp32``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        fp32_file,
        out_file,
        weight_type=QuantType.QInt8,
        # Per-tensor weights cost ~0.05 of cosine to fp32 on code; per-channel ~0.005.
        per_channel=per_channel,
        # Embedding lookups stay fp32: they cost nothing and quantising them lowers cosine.
        op_types_to_quantize=["MatMul", "Attention"],
        nodes_to_exclude=list(keep_fp32),
        # Fused ops are in the com.microsoft domain, where shape inference gives no type.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def export_int8_smooth_onnx(model_path: Path, out_file: Path) -> None:
    """Export, fuse, then the ``int8-smooth`` recipe (pipeline.adapters.models.smoothquant):
    SmoothQuant scales from the shipped calibration chunks, int8 except the feed-forward
    down-projections."""
    import onnx

    from pipeline.adapters.models.smoothquant import smoothed_model

    with _fp32_export(model_path, out_file) as fp32_file:
        model, plan = smoothed_model(fp32_file, words_file(fp32_file), model_path)
        smoothed_file = fp32_file.with_name("smoothed.onnx")
        onnx.save_model(model, str(smoothed_file))
        quantize_int8(smoothed_file, out_file, keep_fp32=plan.kept_fp32)


def _fuse_bert(model_path: Path, onnx_file: Path) -> None:
    """Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu, in place."""
    from onnxruntime.transformers import optimizer

    config = read_json(model_path / "config.json")
    if config.get("model_type") != "bert":
        return
    fused = optimizer.optimize_model(
        str(onnx_file),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=0,
    )
    fused.save_model_to_file(str(onnx_file))


def _export_torchscript(model_path: Path, out_file: Path) -> None:
    """The transformer from its token embeddings on (``inputs_embeds``) to ``out_file``;
    its word-embedding table to :func:`words_file`."""
    import torch
    from transformers import AutoModel

    class _Encoder(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, embeds: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> Any:
            return self.model(
                inputs_embeds=embeds, attention_mask=mask, token_type_ids=types, return_dict=False
            )[0]

    # Eager attention traces to the plain MatMul/Softmax pattern the BERT fusion matches.
    model = AutoModel.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation="eager"
    )
    model.eval()
    table = model.get_input_embeddings().weight.detach().to(torch.float32).contiguous()
    table.numpy().tofile(words_file(out_file))
    sample = torch.ones((2, 8), dtype=torch.int64)
    embeds = torch.zeros((2, 8, table.shape[1]), dtype=torch.float32)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    # The TorchScript exporter needs no onnxscript (the dynamo one does); it warns that it
    # is legacy and that traced Python conditions are constants, true for these inputs.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            (embeds, sample, torch.zeros_like(sample)),
            str(out_file),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=_OPSET,
            dynamo=False,
        )
