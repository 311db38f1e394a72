"""The API's query embedder: the workers' vector space per backend, torch fp32 parity, no torch.

One fp32 export per module (into a temporary ``data_dir/models``, as the workers lay it
out) keeps this file fast; the reference vectors come from the workers' torch path
(SentenceTransformerEmbedder, CPU fp32) on chunks of real code (two stdlib modules,
chunked by the pipeline itself) and on short natural-language queries.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from config.settings import QuarrySettings, load_settings
from pipeline.adapters.models.onnx_embedder import OnnxEmbedder, OnnxInt8Embedder, cache_file
from pipeline.adapters.models.onnx_export import model_fingerprint
from pipeline.adapters.models.query_embedder import (
    export_query_model,
    query_embedder_from,
    start_warming,
)
from pipeline.adapters.models.torch_embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    model_id_for,
    resolve_model_path,
)
from pipeline.errors import ConfigError, ModelNotExportedError
from tests.pipeline.adapters.stdlib_chunks import stdlib_chunks
from wiring.models import configured_model_id

# The module's one export takes 5-30 s (torch import included) on a 2-core machine.
pytestmark = pytest.mark.timeout(180)

MODEL = resolve_model_path(BUNDLED_MODEL)
REPO = Path(__file__).resolve().parents[3]
QUERIES = [
    "parse an http header line",
    "where is the database connection pool closed",
    "retry a request with exponential backoff",
    "wrap text to a fixed width",
    "split a shell command line into arguments",
    "How do I configure the log level?",
    "jwt token validation",
    "x",
    "",
    "class that caches embeddings by content hash",
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> QuarrySettings:
    return load_settings(env={}, data_dir=tmp_path_factory.mktemp("quarry-data"))


@pytest.fixture(scope="module")
def embedder(offline: None, settings: QuarrySettings) -> OnnxEmbedder:
    model = query_embedder_from(settings, exporting=True)
    model.load()
    return model


@pytest.fixture(scope="module")
def reference() -> Iterator[SentenceTransformerEmbedder]:
    torch_fp32 = SentenceTransformerEmbedder(
        MODEL, model_id=model_id_for(BUNDLED_MODEL), device="cpu"
    )
    yield torch_fp32
    torch_fp32.unload()


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    assert a.shape == b.shape
    cosine: npt.NDArray[np.float32] = np.sum(a * b, axis=1)
    return cosine


def test_the_default_backend_gets_fp32_vectors_under_the_torch_model_id(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    assert settings.embed_backend == "auto"
    assert embedder.model_id == model_id_for(settings.embed_model) == "all-MiniLM-L6-v2"
    assert embedder.precision == "fp32"
    assert embedder.device == "cpu (onnxruntime fp32)"
    assert (embedder.dimension, embedder.max_tokens) == (384, 256)
    assert embedder.onnx_file is not None
    assert embedder.onnx_file.parent == settings.data_dir / "models"
    assert embedder.onnx_file.name.endswith("-fp32.onnx")


def test_the_onnx_int8_backend_gets_the_workers_int8_model_id(settings: QuarrySettings) -> None:
    int8_settings = settings.model_copy(update={"embed_backend": "onnx-int8"})
    query = query_embedder_from(int8_settings)
    worker = OnnxInt8Embedder(MODEL, settings.data_dir / "models", base_model_id=BUNDLED_MODEL)
    assert query.model_id == worker.model_id == "all-MiniLM-L6-v2+onnx-int8"
    assert (query.precision, query.device) == ("int8", "cpu (onnxruntime int8)")
    assert not query.loaded


def test_the_onnx_int8_smooth_backend_gets_the_workers_model_id(settings: QuarrySettings) -> None:
    smooth_settings = settings.model_copy(update={"embed_backend": "onnx-int8-smooth"})
    query = query_embedder_from(smooth_settings)
    worker = OnnxEmbedder(
        MODEL, settings.data_dir / "models", precision="int8-smooth", base_model_id=BUNDLED_MODEL
    )
    assert query.model_id == worker.model_id == "all-MiniLM-L6-v2+onnx-int8-smooth"
    assert query.export_file() == worker.export_file()
    assert configured_model_id(smooth_settings) == query.model_id
    assert not query.loaded


@pytest.mark.parametrize("backend", ["torch", "onnx-fp32", "auto"])
def test_every_fp32_backend_gets_the_fp32_export_under_the_model_id(
    settings: QuarrySettings, backend: str
) -> None:
    query = query_embedder_from(settings.model_copy(update={"embed_backend": backend}))
    assert (query.model_id, query.precision) == ("all-MiniLM-L6-v2", "fp32")


def test_an_unknown_backend_is_a_config_error_naming_it(settings: QuarrySettings) -> None:
    odd = settings.model_copy(update={"embed_backend": "onnx-fp16"})
    with pytest.raises(ConfigError, match="onnx-fp16"):
        query_embedder_from(odd)


def test_fp32_onnx_matches_torch_fp32_on_real_code_chunks(
    embedder: OnnxEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    chunks = stdlib_chunks()
    assert len(chunks) >= 40
    for start in range(0, len(chunks), 16):
        batch = chunks[start : start + 16]
        cosine = _cosines(embedder.embed(batch), reference.embed(batch))
        # Seen on 53 chunks of textwrap.py + shlex.py: min 0.99999994 (float32 rounding).
        assert float(cosine.min()) >= 0.9999, f"chunks from {start}: min {cosine.min():.7f}"


def test_fp32_onnx_matches_torch_fp32_on_short_queries_one_at_a_time(
    embedder: OnnxEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    alone = np.concatenate([embedder.embed([query]) for query in QUERIES])
    cosine = _cosines(alone, reference.embed(QUERIES))
    # Seen on these 10 queries: min 0.99999988.
    assert float(cosine.min()) >= 0.9999, f"min cosine {cosine.min():.7f}"
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)


def test_concurrent_requests_get_the_vectors_of_sequential_ones(embedder: OnnxEmbedder) -> None:
    sequential = [embedder.embed([query]) for query in QUERIES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda query: embedder.embed([query]), QUERIES * 4))
    for index, vectors in enumerate(concurrent):
        np.testing.assert_array_equal(vectors, sequential[index % len(QUERIES)])


def test_token_counts_agree_with_the_torch_tokenizer(
    embedder: OnnxEmbedder, reference: SentenceTransformerEmbedder
) -> None:
    texts = [*QUERIES, "def f(x):\n    return x * 2\n" * 80]
    assert embedder.count_tokens(texts) == reference.count_tokens(texts)


def test_a_second_query_embedder_reuses_the_export(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    exported = embedder.onnx_file
    assert exported is not None
    mtime_ns = exported.stat().st_mtime_ns
    second = query_embedder_from(settings)
    second.load()
    assert (embedder.exports, second.exports) == (1, 0)
    assert second.onnx_file == exported
    assert exported.stat().st_mtime_ns == mtime_ns
    np.testing.assert_array_equal(second.embed(QUERIES[:3]), embedder.embed(QUERIES[:3]))


def test_cache_files_differ_by_precision_and_the_int8_name_is_unchanged(tmp_path: Path) -> None:
    fp32 = cache_file(tmp_path, MODEL, BUNDLED_MODEL, "fp32")
    int8 = cache_file(tmp_path, MODEL, BUNDLED_MODEL, "int8")
    assert fp32 != int8
    assert fp32.name.endswith("-fp32.onnx")
    # The int8 export keeps the name scheme it had before fp32 existed.
    assert int8 == tmp_path / f"{BUNDLED_MODEL}-{model_fingerprint(MODEL)[:16]}-int8.onnx"
    assert cache_file(tmp_path, MODEL, BUNDLED_MODEL) == int8


def test_warming_loads_the_embedder_in_a_background_thread(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    cold = query_embedder_from(settings)
    assert not cold.loaded
    thread = start_warming(cold)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert thread.daemon
    assert cold.loaded
    assert cold.exports == 0


def test_a_failed_warm_up_is_logged_and_raised_again_by_the_first_query(
    offline: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "weightless-model"
    broken.mkdir()
    for name in ("config.json", "modules.json", "tokenizer.json", "sentence_bert_config.json"):
        shutil.copy(MODEL / name, broken / name)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    settings = load_settings(env={}, data_dir=tmp_path / "data", embed_model=str(broken))
    model = query_embedder_from(settings, exporting=True)
    assert model.model_id == "weightless-model"
    with caplog.at_level(logging.ERROR, logger="quarry.embed"):
        start_warming(model).join(timeout=60)
    assert "weightless-model" in caplog.text
    assert not model.loaded
    with pytest.raises(ConfigError, match="weightless-model"):
        model.embed(["a query"])


def _run_isolated(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_query_embedder_imports_no_torch() -> None:
    loaded = _run_isolated(
        """
        import sys
        import pipeline.adapters.models.query_embedder
        heavy = ("torch", "sentence_transformers", "transformers", "onnxruntime")
        print(sorted(name for name in heavy if name in sys.modules))
        """
    )
    assert loaded == "[]"


def test_embedding_with_a_cached_export_imports_no_torch(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    loaded = _run_isolated(
        f"""
        import sys
        from pathlib import Path
        from config.settings import load_settings
        from pipeline.adapters.models.query_embedder import query_embedder_from
        settings = load_settings(env={{}}, data_dir=Path({str(settings.data_dir)!r}))
        model = query_embedder_from(settings)
        assert model.embed(["a query"]).shape == (1, 384)
        assert model.exports == 0
        print(sorted(n for n in ("torch", "sentence_transformers") if n in sys.modules))
        """
    )
    assert loaded == "[]"


def test_the_export_keeps_its_weights_and_its_word_table_beside_the_graph(
    embedder: OnnxEmbedder,
) -> None:
    exported = embedder.onnx_file
    assert exported is not None
    weights = exported.with_name(exported.name + ".data")
    words = exported.with_name(exported.name + ".words")
    # onnxruntime maps the weights file; the word table is read a row at a time; the
    # graph itself is a few kB.
    assert weights.stat().st_size > 30_000_000
    assert words.stat().st_size == 30522 * 384 * 4
    assert exported.stat().st_size < 1_000_000


def test_exporting_again_is_a_no_op_naming_the_same_file(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    assert export_query_model(settings) == (embedder.onnx_file, False)


def test_a_missing_export_names_the_command_and_imports_no_torch(tmp_path: Path) -> None:
    said = _run_isolated(
        f"""
        import sys
        from pathlib import Path
        from config.settings import load_settings
        from pipeline.adapters.models.query_embedder import query_embedder_from
        from pipeline.errors import ModelNotExportedError
        model = query_embedder_from(load_settings(env={{}}, data_dir=Path({str(tmp_path)!r})))
        try:
            model.embed(["a query"])
        except ModelNotExportedError as exc:
            print(exc)
        print(sorted(n for n in ("torch", "scipy", "transformers") if n in sys.modules))
        """
    )
    message, loaded = said.splitlines()
    assert "run `quarry model export`" in message
    assert str(tmp_path / "models") in message
    assert loaded == "[]"
    assert issubclass(ModelNotExportedError, ConfigError)


def test_an_idle_model_is_unloaded_and_the_next_query_loads_it_again(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    loads: list[float] = []
    model = query_embedder_from(settings, idle_unload_s=0.3, on_load=loads.append)
    first = model.embed(["a query"])
    assert model.loaded
    for _ in range(100):
        if not model.loaded:
            break
        time.sleep(0.05)
    assert not model.loaded
    np.testing.assert_array_equal(model.embed(["a query"]), first)
    assert model.loaded
    assert model.loads == len(loads) == 2
    assert all(seconds > 0 for seconds in loads)
    model.unload()


def test_queries_keep_a_model_loaded_past_its_idle_time(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    model = query_embedder_from(settings, idle_unload_s=0.5)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        model.embed(["a query"])
        time.sleep(0.1)
    assert model.loaded
    assert model.loads == 1
    model.unload()
    assert not model.loaded


def test_a_warmed_model_that_gets_no_query_is_unloaded_too(
    embedder: OnnxEmbedder, settings: QuarrySettings
) -> None:
    model = query_embedder_from(settings, idle_unload_s=0.3)
    model.load()
    for _ in range(100):
        if not model.loaded:
            break
        time.sleep(0.05)
    assert not model.loaded
