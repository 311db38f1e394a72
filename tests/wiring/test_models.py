"""wiring.models: which backend ``embed_backend`` runs, and the embedder it builds.

The CUDA probe is passed in (pure logic); the embedder built for ``auto`` on this
CPU-only machine is the real ONNX fp32 one, whose vectors and model id are torch's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import QuarrySettings, load_settings
from pipeline.adapters.models.onnx_embedder import OnnxEmbedder
from pipeline.adapters.models.onnx_export import cache_file
from pipeline.adapters.models.torch_embedder import BUNDLED_MODEL, resolve_model_path
from wiring.models import (
    CPU_BACKEND,
    embedder,
    export_query_model,
    onnx_export_dir,
    resolved_backend,
)


def _settings(tmp: Path, **env: str) -> QuarrySettings:
    return load_settings(env={f"QUARRY_{k.upper()}": v for k, v in env.items()}, data_dir=tmp)


@pytest.mark.parametrize(
    ("backend", "device", "cuda", "expected"),
    [
        ("auto", "auto", False, CPU_BACKEND),
        ("auto", "auto", True, "torch"),
        ("auto", "cpu", True, CPU_BACKEND),
        ("auto", "cuda", False, "torch"),
        ("torch", "auto", False, "torch"),
        ("onnx-int8", "auto", True, "onnx-int8"),
        ("onnx-fp32", "auto", True, "onnx-fp32"),
    ],
)
def test_auto_runs_torch_only_where_the_model_runs_on_cuda(
    tmp_path: Path, backend: str, device: str, cuda: bool, expected: str
) -> None:
    settings = _settings(tmp_path, embed_backend=backend, embed_device=device)
    assert resolved_backend(settings, cuda=lambda: cuda) == expected


def test_the_default_is_auto_and_the_cpu_backend_keeps_the_torch_model_id(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.embed_backend == "auto"
    assert CPU_BACKEND == "onnx-fp32"


@pytest.mark.timeout(180)
def test_the_onnx_fp32_embedder_stores_under_the_torch_model_id_from_the_api_export(
    tmp_path: Path,
) -> None:
    exports = tmp_path / "exports"
    settings = _settings(
        tmp_path, embed_backend="onnx-fp32", embed_torch_threads="1", query_model_dir=str(exports)
    )
    export_file, made = export_query_model(settings)  # what `quarry model export` does
    assert made
    model = embedder(settings)
    assert model.model_id == "all-MiniLM-L6-v2"
    assert model.device == "cpu (onnxruntime fp32)"
    assert model.embed(["def add(a, b): return a + b"]).shape == (1, 384)
    # The workers run the API's query model export: one file for both, none made again.
    assert isinstance(model, OnnxEmbedder)
    assert (model.onnx_file, model.exports) == (export_file, 0)
    assert not (tmp_path / "models").exists()


def test_without_the_api_export_a_worker_exports_into_its_data_folder(tmp_path: Path) -> None:
    shared = tmp_path / "read-only-install"
    settings = _settings(tmp_path, query_model_dir=str(shared))
    assert onnx_export_dir(settings, "fp32") == tmp_path / "models"
    fp32 = cache_file(shared, resolve_model_path(BUNDLED_MODEL), BUNDLED_MODEL, "fp32")
    fp32.parent.mkdir(parents=True)
    fp32.touch()
    assert onnx_export_dir(settings, "fp32") == shared
    assert onnx_export_dir(settings, "int8") == tmp_path / "models"  # only fp32 is there


def test_a_backend_not_offered_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="onnx-fp16"):
        _settings(tmp_path, embed_backend="onnx-fp16")
