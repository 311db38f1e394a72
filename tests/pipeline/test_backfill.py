"""The embed stage during a model switch: the live models' services, and the vectors of
the model being backfilled riding along in the WRITE message (the registry is a fake
here; tests/pipeline/stores/test_model_registry.py runs the real one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.fakes.vector_store import InMemoryEmbeddingCache
from pipeline.embedding_models import ModelSpec, RegisteredModel
from pipeline.errors import ConfigError, ConflictError, InvalidInputError, StoreUnavailableError
from pipeline.messages import FileChunks, decode_more_vectors, encode_file_chunks
from pipeline.models import Chunk, ChunkKind, FileVersion, RepoRef, Span
from pipeline.stages.backfill import Key, LiveModels, backfill_step
from pipeline.stages.embed import Buffered, embed_messages
from pipeline.stages.embedding import EmbeddingService


def model(model_id: str, state: str, dimension: int, row: int = 1) -> RegisteredModel:
    storage = "chunks" if row == 1 else f"chunk_vectors_{row}"
    return RegisteredModel(row, model_id, model_id, "torch", dimension, "", storage, state)  # type: ignore[arg-type]


class FakeRegistry:
    def __init__(self, live: list[RegisteredModel]) -> None:
        self.rows, self.down, self.registered = live, False, []

    def live(self) -> list[RegisteredModel]:
        if self.down:
            raise StoreUnavailableError("postgres", "postgres unavailable")
        return list(self.rows)

    def models(self) -> list[RegisteredModel]:
        return self.live()

    def ensure_active(self, spec: ModelSpec) -> RegisteredModel:
        self.registered.append(spec)
        self.rows = [model(spec.model_id, "active", spec.dimension)]
        return self.rows[0]

    def missing(self, model: RegisteredModel, after: Key | None, limit: int) -> list[Any]:
        return []

    def write_vectors(self, model: RegisteredModel, rows: Mapping[Key, Any]) -> int:
        return 0

    def progress(self, model: RegisteredModel) -> tuple[int, int]:
        return 0, 0

    def switch(self, model: RegisteredModel) -> int:
        return 0

    def drop_retired(self) -> list[str]:
        return []

    def cancel(self, model: RegisteredModel, error: str | None = None) -> bool:
        return True


def service(model_id: str, dimension: int) -> EmbeddingService:
    embedder = InMemoryEmbedder(dimension=dimension, model_id=model_id)
    cache = InMemoryEmbeddingCache(dimension=dimension)
    return EmbeddingService(embedder, cache, batch_tokens=1024, max_chunks=16)


def live_models(registry: FakeRegistry, loaded: dict[str, EmbeddingService]) -> LiveModels:
    configured = service("model-a", 8)
    spec = ModelSpec("model-a", "model-a", "torch", 8)
    return LiveModels(registry, configured, spec, lambda m: loaded[m.model_id], refresh_s=0)


def test_an_empty_registry_registers_the_configured_model_as_active() -> None:
    registry = FakeRegistry([])
    primary, extra = live_models(registry, {}).services()
    assert primary.model_id == "model-a" and extra == []
    assert [s.model_id for s in registry.registered] == ["model-a"]


def test_during_a_backfill_both_models_embed_and_write_carries_both() -> None:
    registry = FakeRegistry([model("model-a", "active", 8), model("model-b", "backfilling", 4, 2)])
    live = live_models(registry, {"model-b": service("model-b", 4)})
    primary, extra = live.services()
    assert (primary.model_id, [s.model_id for s in extra]) == ("model-a", ["model-b"])
    span = Span(1, 1, 0, 9)
    fn = ChunkKind.FUNCTION
    chunks = (Chunk("a.py#1", "a.py", "python", span, "f", fn, "h1", 3, "def f"),
              Chunk("a.py#2", "a.py", "python", span, "g", fn, "h2", 3, "  "))  # fmt: skip
    batch = FileChunks("", RepoRef("t", "r"), FileVersion("a.py", "s", "python", 9), chunks)
    result = embed_messages(None, primary, [Buffered("k", encode_file_chunks(batch))], extra)
    assert result.outgoing is not None
    message = result.outgoing.messages[0]["message"]
    assert message["model_id"] == "model-a"  # type: ignore[index]
    more = decode_more_vectors(message["more_vectors"], 2)  # type: ignore[index]
    assert more["model-b"][0].shape == (4,) and more["model-b"][1] is None  # blank: no vector


def test_a_model_being_backfilled_that_fails_leaves_the_write_to_the_active_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its vectors are left out (the backfill fills them), the active model's are
    written: a failing second model never stops an index job's files."""

    class Broken(InMemoryEmbedder):
        def embed(self, texts: Any) -> Any:
            raise ConfigError("model-b: folder /models/model-b is gone")

    broken = EmbeddingService(
        Broken(dimension=4, model_id="model-b"), InMemoryEmbeddingCache(dimension=4),
        batch_tokens=1024, max_chunks=16,
    )  # fmt: skip
    chunk = Chunk("a.py#1", "a.py", "python", Span(1, 1, 0, 9), "f", ChunkKind.FUNCTION, "h1",
                  3, "def f")  # fmt: skip
    batch = FileChunks("", RepoRef("t", "r"), FileVersion("a.py", "s", "python", 9), (chunk,))
    with caplog.at_level("WARNING", logger="quarry.embed"):
        result = embed_messages(
            None, service("model-a", 8), [Buffered("k", encode_file_chunks(batch))], [broken]
        )
    assert result.error is None and result.outgoing is not None
    message = result.outgoing.messages[0]["message"]
    assert message["model_id"] == "model-a" and "more_vectors" not in message  # type: ignore[index,operator]
    assert "model-b failed" in caplog.text and "folder /models/model-b is gone" in caplog.text


def test_after_the_switch_the_new_model_is_the_primary_and_a_registry_outage_keeps_it() -> None:
    registry = FakeRegistry([model("model-b", "active", 4, 2)])
    live = live_models(registry, {"model-b": service("model-b", 4)})
    assert live.services()[0].model_id == "model-b"
    registry.down = True
    assert live.services()[0].model_id == "model-b"


def test_a_registered_model_that_loads_with_another_dimension_is_refused() -> None:
    registry = FakeRegistry([model("model-b", "active", 16, 2)])
    live = live_models(registry, {"model-b": service("model-b", 4)})
    with pytest.raises(InvalidInputError, match="gives 4-dimension vectors but the registry"):
        live.services()


def test_a_step_whose_model_another_chain_switched_stops_quietly() -> None:
    class Switched(FakeRegistry):
        def switch(self, model: RegisteredModel) -> int:
            raise ConflictError(f"model {model.model_id!r} is not being backfilled")

    registry = Switched([model("model-a", "active", 8), model("model-b", "backfilling", 4, 2)])
    step = backfill_step(registry, service("model-b", 4), "model-b",
                         after=None, batch_rows=4, budget_s=5)  # fmt: skip
    assert step.stopped and not step.switched
