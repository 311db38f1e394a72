"""A second embedding model for the model-switch tests, made from the bundled one.

Models cannot be downloaded, so the tests cut one out of all-MiniLM-L6-v2: its first
``layers`` transformer layers and the first ``heads`` of its 12 attention heads (32
dimensions each), so that its vectors really have another dimension (``32 * heads``).
Only Transformer, mean Pooling and Normalize, like the bundled model: the API's ONNX
query embedder computes it too. Its vectors are worse than the original's; a switch
test needs them different and working, not good.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.adapters.models.torch_embedder import BUNDLED_MODEL, resolve_model_path

HEAD_DIMENSION = 32


def cut_model(target: Path, *, layers: int = 2, heads: int = 6) -> Path:
    """Write the cut model's folder to ``target`` (made if missing); its path."""
    import torch
    from transformers import BertConfig, BertModel

    source = resolve_model_path(BUNDLED_MODEL)
    hidden = HEAD_DIMENSION * heads
    original = BertModel.from_pretrained(str(source))
    config = BertConfig(**original.config.to_dict())
    config.hidden_size, config.num_attention_heads = hidden, heads
    config.intermediate_size, config.num_hidden_layers = 4 * hidden, layers
    cut = BertModel(config)
    weights = original.state_dict()
    with torch.no_grad():
        cut.load_state_dict(
            {
                name: weights[name][tuple(slice(0, n) for n in value.shape)].clone()
                for name, value in cut.state_dict().items()
            }
        )
    target.mkdir(parents=True, exist_ok=True)
    cut.save_pretrained(str(target), safe_serialization=True)
    for item in source.iterdir():
        if item.is_file() and item.name not in ("config.json", "model.safetensors",
                                                "pytorch_model.bin", "README.md"):  # fmt: skip
            shutil.copy2(item, target / item.name)
    for folder in ("1_Pooling", "2_Normalize"):
        if (source / folder).is_dir():
            shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)
    pooling = target / "1_Pooling" / "config.json"
    settings = json.loads(pooling.read_text(encoding="utf-8"))
    settings["word_embedding_dimension"] = hidden
    pooling.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return target
