"""``quarry model train`` end to end on a tiny folder: one real optimiser step on the CPU,
a model folder the embedder loads and embeds with, a manifest, the same seed the same
weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import cli.model
from pipeline.adapters.models.onnx_export import check_modules
from pipeline.adapters.models.torch_embedder import (
    SentenceTransformerEmbedder,
    model_id_for,
    model_window,
    resolve_model_path,
)

PY = '''def add(a, b):
    """Return the sum of two numbers given to it."""
    return a + b


def scale(v, k):
    """Multiply every element of a vector by a factor."""
    return [x * k for x in v]
'''
GO = """package calc

// Sub returns the difference of two integers.
func Sub(a, b int) int {
\treturn a - b
}
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-src")
    (root / "m.py").write_text(PY)
    (root / "calc.go").write_text(GO)
    return root


def _train(source: Path, out: Path) -> None:
    app = typer.Typer()
    cli.model.register(app)

    @app.callback()
    def main() -> None:
        """Quarry."""

    args = ["model", "train", str(source), "--out", str(out), "--batch-size", "3"]
    args += ["--max-seq-length", "32", "--seed", "7", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "step 1/1" in result.stderr and "quarry model switch" in result.stderr


@pytest.mark.timeout(300)
def test_one_step_gives_a_model_folder_that_loads_and_embeds(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "code-model"
    _train(source, out)
    manifest = json.loads((out / "quarry_model.json").read_text())
    assert manifest["base_model"] == "all-MiniLM-L6-v2" and manifest["seed"] == 7
    assert manifest["pairs_per_language"] == {"go": 1, "python": 2}
    assert manifest["steps"] == 1 and manifest["hyperparameters"]["batch_size"] == 3
    assert manifest["sources"] == [{"folder": source.name, "pairs": 3}]
    base_path = resolve_model_path("all-MiniLM-L6-v2")
    assert model_window(out) == 256  # trained at 32 word-pieces, the base's window kept
    for name in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        assert (out / name).read_bytes() == (base_path / name).read_bytes()
    check_modules(out, "onnx-fp32")  # the API's query export takes it (quarry model export)
    path = resolve_model_path(str(out))  # what QUARRY_EMBED_MODEL=<folder> resolves
    embedder = SentenceTransformerEmbedder(path, model_id=model_id_for(str(out)), device="cpu")
    vectors = embedder.embed(["add two numbers", "func Sub(a, b int) int"])
    assert vectors.shape == (2, 384) and embedder.model_id == "code-model"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    base = SentenceTransformerEmbedder(base_path, model_id="base", device="cpu")
    assert not np.allclose(vectors, base.embed(["add two numbers", "func Sub(a, b int) int"]))

    again = tmp_path / "again"
    _train(source, again)
    same = SentenceTransformerEmbedder(again, model_id="again", device="cpu")
    assert np.array_equal(vectors, same.embed(["add two numbers", "func Sub(a, b int) int"]))
