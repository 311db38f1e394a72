"""Fine-tune a sentence-transformers model on (query, code) pairs: ``quarry model train``.

Owns the training loop: MultipleNegativesRankingLoss with in-batch negatives (each
query's own code is its positive, the batch's other codes its negatives), AdamW with a
linear warm-up then linear decay, gradient clipping, on the CPU or CUDA, and saving the
result as a sentence-transformers model folder in the base's layout (its module files,
its window: :func:`keep_base_layout`). Deterministic on the CPU for the same
pairs, batches and seed (``torch.manual_seed``, dropout included); CUDA kernels may add
rounding noise. ``torch`` and ``sentence_transformers`` are imported inside functions:
importing this module costs nothing.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
Batch = Sequence[tuple[str, str]]  # (query, code) pairs
Progress = Callable[[int, int, float], None]  # step (1-based), steps, loss


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """Hyperparameters; recorded in the model's manifest as they are."""

    # 5e-5 and 128 word-pieces: as good on the held-out sets as 2e-5 and 256, and much
    # cheaper on a CPU (bench/results/eval.md, "The command's defaults").
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int = 128  # word-pieces kept in training; the saved window is the base's
    scale: float = 20.0  # MultipleNegativesRankingLoss: cosine similarities times this
    max_grad_norm: float = 1.0
    freeze_embeddings: bool = True  # the word-piece table: half the weights, a third of a step
    seed: int = 0
    torch_threads: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrainResult:
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    device: str


def _device(device: Device) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to torch here")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def train(
    base: Path,
    out: Path,
    batches: Sequence[Batch],
    options: TrainOptions,
    *,
    device: Device = "cpu",
    progress: Progress | None = None,
) -> TrainResult:
    """Fine-tune the model folder ``base`` on ``batches`` (one optimiser step each, in the
    order given) and save it to ``out`` (created; must not hold a model already)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if not batches:
        raise ValueError("no batches to train on")
    where = _device(device)
    if options.torch_threads is not None and where == "cpu":
        torch.set_num_threads(options.torch_threads)
    torch.manual_seed(options.seed)
    model = SentenceTransformer(str(base), device=where, local_files_only=True)
    window = model.max_seq_length  # the base's: what the chunker budgets chunks by
    model.max_seq_length = options.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=options.scale)
    if options.freeze_embeddings:
        for name, param in model.named_parameters():
            if "embeddings." in name:
                param.requires_grad_(False)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if not _no_decay(n)]
    no_decay = [p for n, p in trained if _no_decay(n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": options.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=options.learning_rate,
    )
    steps = len(batches)
    warmup = max(1, math.ceil(steps * options.warmup_ratio))

    def factor(step: int) -> float:  # step is 0-based
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    started = time.perf_counter()
    losses: list[float] = []
    for step, batch in enumerate(batches, start=1):
        queries = [q for q, _ in batch]
        codes = [c for _, c in batch]
        features = [_features(model, queries, where), _features(model, codes, where)]
        loss = loss_fn(features, labels=None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in trained], options.max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach().cpu()))
        if progress is not None:
            progress(step, steps, losses[-1])
    seconds = time.perf_counter() - started
    model.eval()
    # Training may truncate shorter to save time; the saved model keeps the base's window,
    # so the chunks an index cuts (and their word-pieces) stay those of the base model.
    model.max_seq_length = window
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    keep_base_layout(base, out)
    return TrainResult(steps, seconds, losses[0], losses[-1], where)


def keep_base_layout(base: Path, out: Path) -> None:
    """Give ``out`` the base's module files (modules.json, sentence_bert_config.json,
    each module folder's config.json): the module stack is the base's, only the weights
    changed. sentence-transformers 6 saves them in a newer layout (module types, a
    ``pooling_mode`` key, no ``max_seq_length``) that the ONNX query export and the
    chunker's window (``torch_embedder.model_window``) do not read."""
    import shutil

    names = ["modules.json", "sentence_bert_config.json"]
    names += [f.relative_to(base).as_posix() for f in base.glob("*/config.json")]
    for name in names:
        if (base / name).is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / name, out / name)


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name


def _features(model: Any, texts: list[str], device: str) -> dict[str, Any]:
    features = model.preprocess(texts)
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
