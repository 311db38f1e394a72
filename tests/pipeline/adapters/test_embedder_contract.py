"""One contract over every Embedder: the fake, sentence-transformers, and both ONNX exports."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.models.onnx_embedder import OnnxEmbedder, OnnxInt8Embedder
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    resolve_model_path,
)
from pipeline.ports import Embedder

CODE = [
    "def parse_header(line):\n    key, _, value = line.partition(':')\n    return key, value",
    "class Session:\n    def close(self):\n        self.adapter.close()",
    "SELECT id FROM users WHERE name = %s",
    "x",
]


@pytest.fixture(
    scope="module", params=["memory", "torch", "onnx-int8", "onnx-int8-smooth", "onnx-fp32"]
)
def embedder(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Embedder]:
    if request.param == "memory":
        yield InMemoryEmbedder()
        return
    if request.param == "onnx-int8":
        onnx = OnnxInt8Embedder(
            resolve_model_path(BUNDLED_MODEL), tmp_path_factory.mktemp("onnx-models")
        )
        yield onnx
        onnx.unload()
        return
    if request.param in ("onnx-fp32", "onnx-int8-smooth"):
        fp32 = OnnxEmbedder(
            resolve_model_path(BUNDLED_MODEL),
            tmp_path_factory.mktemp("onnx-models"),
            precision="fp32" if request.param == "onnx-fp32" else "int8-smooth",
        )
        yield fp32
        fp32.unload()
        return
    real = SentenceTransformerEmbedder(
        resolve_model_path(BUNDLED_MODEL), model_id=BUNDLED_MODEL, device="cpu"
    )
    yield real
    real.unload()


def test_rows_are_unit_float32_of_the_model_dimension(embedder: Embedder) -> None:
    vectors = embedder.embed(CODE)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(CODE), embedder.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.isfinite(vectors).all()


def test_identical_texts_give_identical_vectors(embedder: Embedder) -> None:
    vectors = embedder.embed([CODE[0], CODE[1], CODE[0]])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.99


def test_an_empty_batch_is_an_empty_matrix(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_token_counts_include_special_tokens_and_grow_with_text(embedder: Embedder) -> None:
    short, long = embedder.count_tokens(["x", "x " * 400])
    assert short >= 3
    assert long > embedder.max_tokens


def test_a_text_beyond_the_window_still_gets_a_finite_vector(embedder: Embedder) -> None:
    vector = embedder.embed(["token " * 2000])[0]
    assert np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_the_dimension_is_read_from_the_model(embedder: Embedder) -> None:
    assert embedder.dimension == 384  # both the fake's default and all-MiniLM-L6-v2


def test_an_empty_text_gets_a_finite_vector(embedder: Embedder) -> None:
    assert np.isfinite(embedder.embed([""])).all()


def test_model_id_is_stable_and_non_empty(embedder: Embedder) -> None:
    assert embedder.model_id
    assert embedder.model_id == embedder.model_id


def test_vectors_do_not_depend_on_batch_company(embedder: Embedder) -> None:
    alone = embedder.embed([CODE[2]])[0]
    together = embedder.embed(CODE)[2]
    # int8 activations are quantised per batch, so company moves a vector a little
    assert float(alone @ together) > 0.99
