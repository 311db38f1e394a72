"""The embedding models of a deployment: the registry's rows and the rules of a switch.

The index is versioned by embedding model (issue 21 item 5). Each registered model has
a ``model_id`` (what every vector and cache key carries: the model's name, with
``+onnx-int8`` or ``+onnx-int8-smooth`` for those backends), the ``name`` the workers
load it by (the bundled model's name or a folder's path), its ``backend``,
``dimension``, ``fingerprint`` (the weights' digest: its revision), the ``storage`` that
holds its vectors and a ``state``:

* ``active``: search reads its vectors and embeds queries with it; index jobs embed with it;
* ``backfilling``: a backfill is embedding every chunk with it; index jobs embed with it
  too (their WRITE messages carry both vectors); search does not read it yet;
* ``retired``: switched away from; its vectors (and their index) are dropped.

A switch is one row update (:data:`SWITCH_STEPS`): the backfilling model becomes active
and the active one retired, in one transaction that first checks that the new model
covers every chunk row. Model switching is deployment-wide: an operator's command over
PostgreSQL (``quarry model``), never an API route, so no tenant token reaches it.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pipeline.errors import ConflictError, InvalidInputError

ModelState = Literal["active", "backfilling", "retired"]
# As embed_backend takes them: auto, torch and onnx-fp32 give the same vectors (one model
# id), each worker resolving auto where it runs (onnx-fp32 on a CPU, torch on CUDA).
BACKENDS = ("auto", "torch", "onnx-fp32", "onnx-int8", "onnx-int8-smooth")
LEGACY_STORAGE = "chunks"  # chunks.embedding, vector(384): the first model's
LEGACY_DIMENSION = 384
_STORAGE = re.compile(r"chunks|chunk_vectors_[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as the workers load it, with what loading it told: its id and dimension."""

    model_id: str
    name: str
    backend: str
    dimension: int
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """One row of the registry; ``chunks_done`` / ``chunks_total`` are a backfill's
    progress (chunk rows holding a vector row of this model / all chunk rows)."""

    id: int
    model_id: str
    name: str
    backend: str
    dimension: int
    fingerprint: str
    storage: str
    state: ModelState
    chunks_total: int = 0
    chunks_done: int = 0
    error: str | None = None
    dropped: bool = False

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.model_id, self.name, self.backend, self.dimension, self.fingerprint)

    @property
    def in_chunks_table(self) -> bool:
        return self.storage == LEGACY_STORAGE


def check_storage(name: str) -> str:
    """A storage name as SQL may name it (it cannot be a bound parameter)."""
    if not _STORAGE.fullmatch(name):
        raise InvalidInputError(f"vector storage {name!r} is not a chunk_vectors_<n> table")
    return name


def side_storage(model_row_id: int) -> str:
    return check_storage(f"chunk_vectors_{int(model_row_id)}")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def check_switch(spec: ModelSpec, models: list[RegisteredModel]) -> None:
    """Refuse a switch that cannot start, naming why: one is running, the model is
    already active, or a model of that id was registered with other weights."""
    for model in models:
        if model.state == "backfilling":
            raise ConflictError(
                f"a switch to {model.model_id!r} is running ({model.chunks_done} of"
                f" {model.chunks_total} chunks): wait for it, or `quarry model cancel`"
            )
    for model in models:
        if model.model_id != spec.model_id:
            continue
        if model.state == "active":
            raise ConflictError(f"model {spec.model_id!r} is already the active model")
        if model.dimension != spec.dimension:
            raise InvalidInputError(
                f"model {spec.model_id!r} gives {spec.dimension}-dimension vectors but the"
                f" registry holds it with {model.dimension}: give the new model another"
                " folder name"
            )
        if model.fingerprint and spec.fingerprint and model.fingerprint != spec.fingerprint:
            # Same id, other weights (a folder trained again under the same name): the
            # embedding cache keeps vectors by model id, so the backfill would reuse
            # the old weights' vectors for every unchanged text.
            raise InvalidInputError(
                f"model {spec.model_id!r} ({spec.name}) has other weights than the model"
                f" of that id the registry holds (fingerprint {spec.fingerprint[:12]} vs"
                f" {model.fingerprint[:12]}): give the new model another folder name"
            )


def check_loaded(model: RegisteredModel, dimension: int) -> None:
    """A worker that loaded ``model`` got vectors of the registered dimension."""
    if dimension != model.dimension:
        raise InvalidInputError(
            f"model {model.model_id!r} ({model.name}) gives {dimension}-dimension vectors"
            f" but the registry holds it with {model.dimension}: its folder changed after"
            " it was registered"
        )
