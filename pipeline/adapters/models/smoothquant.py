"""The ``int8-smooth`` export: SmoothQuant scales, then int8 where it keeps the vectors.

Dynamic int8 quantisation (``int8``) quantises each matmul's input with one scale for the
whole batch. BERT's layer-norm outputs carry a few channels 5-15x larger than the rest,
so that one scale leaves the other channels few levels: cosine to the fp32 vectors
~0.994, and hybrid Recall@10 more than a point lower on 5 of the 13 evaluation sets
(bench/results/embed_int8_quality.md). This recipe, on the fused fp32 graph:

1. **Calibrates** on :data:`CALIBRATION_FILE` (a fixed set of code chunks shipped with
   Quarry and pinned by :data:`CALIBRATION_SHA256`; one thread, fixed batches): the
   largest magnitude of each input channel of the matmuls a layer norm feeds.
2. **Smooths** each matmul fed by a layer norm (the fused ``Attention``'s Q/K/V and the
   feed-forward up-projection): ``x @ W = (x / s) @ (s * W)`` with
   ``s = max|x|^alpha / max|W|^(1 - alpha)`` per input channel (SmoothQuant, Xiao et al.
   2023), as a ``Mul`` before the matmul and ``s`` folded into its weights. A ``Mul`` and
   not the layer norm's own weights: in a post-norm BERT the norm's output is also the
   residual stream. ``s`` is rounded to a power of 2^(1/4), so that tiny float
   differences between two hosts' calibration runs almost always give the same export
   (a maximum within ~1e-6 of a rounding edge could still round the other way there).
3. **Keeps fp32** the feed-forward down-projections (the matmuls fed by a GELU): their
   input's outlier channels reach 5-16x the median one, and smoothing cannot move them
   into weights without spoiling those. Every other matmul is quantised as ``int8`` does.

For all-MiniLM-L6-v2 that is 12 smoothed int8 matmuls, 6 plain int8 ones (the attention
outputs) and 6 fp32 down-projections: cosine to the fp32 vectors ~0.999 (``int8``:
0.994). The figures, and the choices (alpha, which matmuls stay fp32) made on the tuning
half of the evaluation sets: bench/results/embed_int8_quality.md.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ALPHA = 0.5
CALIBRATION_FILE = Path(__file__).with_name("calibration_texts.json.gz")
# The file's digest, pinned: a remade file is a new recipe (a new export and cache key),
# never new vectors under an old one. bench/calibration_texts.py remakes the file.
CALIBRATION_SHA256 = "cc8357f669950e4a1a9d22f6ecbf560f75dc10fea24247ce1aac88cb199f0cff"
_CALIBRATION_BATCH = 16
_LAYER_NORMS = {"LayerNormalization", "SkipLayerNormalization"}
_ACTIVATIONS = {"Gelu", "BiasGelu", "FastGelu"}
_SCALE_RANGE = (1e-2, 1e2)
_ROUNDING = 4  # s is rounded to a power of 2 ** (1 / _ROUNDING)
# Everything above that shapes the export, for the export's cache key.
RECIPE = (
    f"smoothquant-a{ALPHA}-ln-matmuls-round{_ROUNDING}-clip{_SCALE_RANGE[0]}:{_SCALE_RANGE[1]}"
    f"+calibration-{CALIBRATION_SHA256[:16]}-batch{_CALIBRATION_BATCH}-1thread+fp32-down-proj"
)

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SmoothPlan:
    """What the recipe did to a graph: the matmuls smoothed and those kept fp32."""

    smoothed: tuple[str, ...]
    kept_fp32: tuple[str, ...]


def calibration_texts(path: Path = CALIBRATION_FILE, sha256: str = CALIBRATION_SHA256) -> list[str]:
    """The calibration chunks (a gzip'd JSON list of strings), checked against ``sha256``."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: not the calibration file this recipe names (sha256 {sha256})")
    texts = json.loads(gzip.decompress(data).decode("utf-8"))
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{path}: not a non-empty JSON list of strings")
    return texts


def round_scales(s: Floats) -> Floats:
    """``s`` clipped to a sane range and rounded to a power of 2 ** (1/4)."""
    clipped = np.clip(s.astype(np.float64), *_SCALE_RANGE)
    rounded = np.exp2(np.round(np.log2(clipped) * _ROUNDING) / _ROUNDING)
    return rounded.astype(np.float32)


def smoothing_scales(act_max: Floats, weight: Floats, alpha: float = ALPHA) -> Floats:
    """SmoothQuant's per-input-channel ``s`` for a matmul ``x @ weight`` (weight: in x out)."""
    a = np.maximum(act_max.astype(np.float64), 1e-5)
    w = np.maximum(np.abs(weight.astype(np.float64)).max(axis=1), 1e-5)
    return round_scales((a**alpha / w ** (1 - alpha)).astype(np.float32))


def smooth_graph(model: Any, act_max: dict[str, Floats]) -> SmoothPlan:
    """Apply the recipe's steps 2 and 3 to the onnx ``model`` in place; the plan."""
    from onnx import helper, numpy_helper

    # A node's first output only: SkipLayerNormalization's later outputs are not normed.
    producer = {node.output[0]: node for node in model.graph.node if node.output}
    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    smoothed: list[str] = []
    kept: list[str] = []
    muls: dict[str, Any] = {}
    for node in model.graph.node:
        if node.op_type not in ("Attention", "MatMul") or node.input[1] not in inits:
            continue
        source = producer.get(node.input[0])
        kind = source.op_type if source is not None else ""
        if kind in _ACTIVATIONS:
            kept.append(node.name)
            continue
        stats = act_max.get(node.input[0])
        if kind not in _LAYER_NORMS or stats is None:
            continue
        if uses.get(node.input[1], 0) > 1:
            # Scaling a shared weight in place would change its other consumers too.
            raise ValueError(f"{node.name}: its weight {node.input[1]} feeds other nodes too")
        if not np.all(np.isfinite(stats)):
            raise ValueError(f"{node.name}: calibration gave a non-finite activation maximum")
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        s = smoothing_scales(stats, weight)
        name = node.input[1]
        inits[name].CopyFrom(numpy_helper.from_array(weight * s[:, None], name))
        inverse = f"quarry_smooth_inv_{len(smoothed)}"
        model.graph.initializer.append(numpy_helper.from_array(1.0 / s, inverse))
        scaled = f"{node.input[0]}_smoothed_{len(smoothed)}"
        muls[node.name] = helper.make_node(
            "Mul", [node.input[0], inverse], [scaled], name=f"QuarrySmooth_{len(smoothed)}"
        )
        node.input[0] = scaled
        smoothed.append(node.name)
    # Each Mul goes just before the node it feeds, which keeps the graph in topological order.
    ordered: list[Any] = []
    for node in model.graph.node:
        if node.name in muls:
            ordered.append(muls[node.name])
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return SmoothPlan(tuple(smoothed), tuple(kept))


def matmul_inputs(model: Any) -> list[str]:
    """The activation input of every Attention and MatMul with constant weights that a
    layer norm feeds (the ones :func:`smooth_graph` smooths)."""
    inits = {i.name for i in model.graph.initializer}
    producer = {node.output[0]: node.op_type for node in model.graph.node if node.output}
    return sorted(
        {
            n.input[0]
            for n in model.graph.node
            if n.op_type in ("Attention", "MatMul")
            and n.input[1] in inits
            and producer.get(n.input[0]) in _LAYER_NORMS
        }
    )


def calibrate(
    fp32: Any, words: Path, model_path: Path, texts: Sequence[str], tensors: Iterable[str]
) -> dict[str, Floats]:
    """Per-channel max |value| of each of ``tensors`` over ``texts`` run through the
    fp32 onnx model ``fp32`` (left as it is; its word table ``words``; the tokenizer of
    ``model_path``)."""
    import onnx
    import onnxruntime as ort

    from pipeline.adapters.models.model_inputs import (
        load_tokenizer,
        model_feed,
        prepared,
        window_and_case,
    )
    from pipeline.adapters.models.word_table import WordTable

    names = list(tensors)
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    for name in names:
        output = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        model.graph.output.append(output)
    config = json.loads((model_path / "config.json").read_text("utf-8"))
    st_file = model_path / "sentence_bert_config.json"
    st_config = json.loads(st_file.read_text("utf-8")) if st_file.is_file() else {}
    window, lower_case = window_and_case(config, st_config)
    tokenizer = load_tokenizer(model_path, window)
    table = WordTable(words, rows=int(config["vocab_size"]), width=int(config["hidden_size"]))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # One thread, in order: the same sums in the same order on every host.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    with tempfile.TemporaryDirectory(prefix="quarry-calibrate-") as tmp:
        augmented = Path(tmp) / "calibrate.onnx"
        onnx.save_model(model, str(augmented))
        session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in session.get_inputs()]
        found: dict[str, Floats] = {}
        for start in range(0, len(texts), _CALIBRATION_BATCH):
            batch = prepared(texts[start : start + _CALIBRATION_BATCH], lower_case)
            feed, _ = model_feed(tokenizer.encode_batch(batch), table, inputs)
            outputs = session.run(names, feed)
            for name, value in zip(names, outputs, strict=True):
                peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0).astype(np.float32)
                found[name] = peak if name not in found else np.maximum(found[name], peak)
    return found


def smoothed_model(fp32_file: Path, words: Path, model_path: Path) -> tuple[Any, SmoothPlan]:
    """The fused fp32 graph ``fp32_file`` (its word table ``words``) calibrated and
    smoothed, with the plan: which matmuls the caller quantises and which it keeps fp32."""
    import onnx

    model = onnx.load(str(fp32_file))
    act_max = calibrate(model, words, model_path, calibration_texts(), matmul_inputs(model))
    plan = smooth_graph(model, act_max)
    if not plan.smoothed or not plan.kept_fp32:
        # An unfused graph (not a BERT model) has neither pattern: that would be plain int8
        # under this recipe's name.
        raise ValueError(
            f"the int8-smooth recipe found {len(plan.smoothed)} layer-norm-fed matmuls and "
            f"{len(plan.kept_fp32)} down-projections in {model_path}: it needs a BERT model"
        )
    return model, plan
