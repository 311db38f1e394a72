"""The sentence-transformers embedder: lazy, unloadable, clear about a bad model, GPU parity."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    model_id_for,
    resolve_model_path,
)
from pipeline.errors import ConfigError

MODEL = resolve_model_path(BUNDLED_MODEL)
REPO = Path(__file__).resolve().parents[3]


def _real_chunks(count: int) -> list[str]:
    texts: list[str] = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        source = path.read_text("utf-8")
        texts.extend(source[i : i + 900] for i in range(0, len(source), 900))
    return texts[:count]


def test_a_missing_model_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match=r"no-such-model.*no such model folder"):
        resolve_model_path(str(missing))


def test_a_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        resolve_model_path(str(tmp_path))


def test_a_model_that_does_not_load_fails_at_load_naming_the_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "modules.json").write_text("[{not json")
    embedder = SentenceTransformerEmbedder(broken, model_id="broken", device="cpu")
    with pytest.raises(ConfigError, match="broken-model does not load"):
        embedder.load()


def test_the_model_loads_lazily_once_and_unloads_when_idle() -> None:
    embedder = SentenceTransformerEmbedder(
        MODEL, model_id=BUNDLED_MODEL, device="cpu", idle_unload_s=0.3
    )
    assert embedder.loads == 0
    embedder.embed(["a"])
    embedder.embed(["b"])
    assert embedder.loads == 1
    deadline = time.monotonic() + 10
    while embedder.loaded and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not embedder.loaded
    embedder.embed(["c"])
    assert embedder.loads == 2
    embedder.unload()


def test_cuda_requested_without_a_gpu_is_a_config_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    embedder = SentenceTransformerEmbedder(MODEL, model_id=BUNDLED_MODEL, device="cuda")
    with pytest.raises(ConfigError, match="no CUDA device"):
        embedder.load()


def test_the_model_id_of_a_path_is_its_folder_name(tmp_path: Path) -> None:
    assert model_id_for(BUNDLED_MODEL) == BUNDLED_MODEL
    assert model_id_for(str(tmp_path / "my-model")) == "my-model"


def test_an_fp16_checkpoint_runs_in_fp32_on_the_cpu(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    def packed(name: str, config_dtype: str | None) -> Path:
        folder = tmp_path / name
        shutil.copytree(MODEL, folder, ignore=shutil.ignore_patterns("model.safetensors"))
        tensors = load_file(str(MODEL / "model.safetensors"))
        half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(half, str(folder / "model.safetensors"), metadata={"format": "pt"})
        config = json.loads((folder / "config.json").read_text())
        config.pop("torch_dtype", None)
        if config_dtype:
            config["dtype"] = config_dtype
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    texts = _real_chunks(4)
    stored = SentenceTransformerEmbedder(packed("stored", None), model_id="m", device="cpu")
    fp32 = SentenceTransformerEmbedder(packed("fp32", "float32"), model_id="m", device="cpu")
    # Same fp16-rounded weights, both computed in fp32: equal to float32 rounding. An
    # fp16 computation differs by about 1e-3.
    np.testing.assert_allclose(stored.embed(texts), fp32.embed(texts), atol=1e-5)


@pytest.mark.gpu
def test_gpu_fp16_and_cpu_fp32_vectors_agree() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: GPU/CPU parity needs one (run on a GPU host)")
    texts = _real_chunks(256)
    gpu = SentenceTransformerEmbedder(MODEL, model_id=BUNDLED_MODEL, device="cuda")
    cpu = SentenceTransformerEmbedder(MODEL, model_id=BUNDLED_MODEL, device="cpu")
    assert gpu.device.startswith("cuda")
    on_gpu, on_cpu = gpu.embed(texts), cpu.embed(texts)
    assert np.isfinite(on_gpu).all()
    cosine = np.sum(on_gpu * on_cpu, axis=1)
    assert float(cosine.min()) >= 0.999, f"min cosine {cosine.min():.5f}"
