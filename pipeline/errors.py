"""The error tree of the pipeline: every error Quarry raises on purpose.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver. Adapters
translate foreign exceptions into these, once, at the edge (``raise ... from exc``).

::

    PipelineError
    ├── TransientError                 retried by tasks, counted by circuit breakers
    │   ├── StoreUnavailableError      a store (PostgreSQL, graph, Redis) cannot be reached
    │   │   └── BreakerOpenError       the store's breaker is open: retry after ``retry_after_s``
    │   ├── EmbeddingOutOfMemoryError  the device ran out of memory for a batch
    │   ├── WebhookDeliveryError       a callback timed out or answered 5xx
    │   └── QueueFullError             admission refused: a bounded queue is full
    └── PermanentError                 never retried, never opens a breaker
        ├── ConfigError                a setting is unknown or invalid (names key and value)
        │   └── ModelNotExportedError  the API's query model has no ONNX export (names the command)
        ├── StackError                 the local stack cannot start or stop (names the cause)
        ├── MigrationError             a migration is missing, changed or failed
        ├── UnsupportedInputError      input the pipeline does not handle (names the input)
        ├── InvalidInputError          malformed input: a bad path, URL, archive or payload
        ├── QuotaExceededError         a tenant's quota refuses the work (names it and its limit)
        └── WebhookRejectedError       a callback answered 4xx
"""

from __future__ import annotations

# The roots, and ConfigError, are defined in config (the leaf), which raises ConfigError
# for a bad setting; they are re-exported here, where the tree is drawn.
from config.errors import ConfigError, PermanentError, PipelineError, TransientError

__all__ = [
    "BreakerOpenError",
    "ConfigError",
    "ConflictError",
    "EmbeddingOutOfMemoryError",
    "InvalidInputError",
    "MigrationError",
    "ModelNotExportedError",
    "NotFoundError",
    "PermanentError",
    "PipelineError",
    "QueueFullError",
    "QuotaExceededError",
    "StackError",
    "StoreUnavailableError",
    "TransientError",
    "UnsupportedInputError",
    "WebhookDeliveryError",
    "WebhookRejectedError",
]


class ModelNotExportedError(ConfigError):
    """The ONNX export a model runs from is missing where this process runs; the message
    names the command that makes it (an install step: the API never exports)."""


class StoreUnavailableError(TransientError):
    """A store cannot be reached or failed in a way that is not the data's fault."""

    def __init__(self, store: str, message: str) -> None:
        super().__init__(f"{store} unavailable: {message}")
        self.store = store


class BreakerOpenError(StoreUnavailableError):
    """The store's circuit breaker is open; calls are refused until it may close."""

    def __init__(self, store: str, retry_after_s: float) -> None:
        super().__init__(store, f"circuit breaker open, retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class EmbeddingOutOfMemoryError(TransientError):
    """The embedding device ran out of memory even for the smallest batch."""


class WebhookDeliveryError(TransientError):
    """A webhook delivery timed out or the receiver answered 5xx."""


class QueueFullError(TransientError):
    """Admission refused: the queue is at its bound."""

    def __init__(
        self, queue: str, depth: int, bound: int, retry_after_s: float, message: str = ""
    ) -> None:
        super().__init__(message or f"queue {queue!r} is full ({depth}/{bound})")
        self.queue = queue
        self.depth = depth
        self.bound = bound
        self.retry_after_s = retry_after_s


class QuotaExceededError(PermanentError):
    """A tenant's quota refuses the work: ``quota`` names it (pipeline.quotas.Quota),
    ``limit`` and ``used`` are its figures; ``retry_after_s`` says when it may pass again
    (None: not by waiting, e.g. stored chunks)."""

    def __init__(
        self, quota: str, limit: int, used: int, message: str, retry_after_s: float | None
    ) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.used = used
        self.retry_after_s = retry_after_s


class StackError(PermanentError):
    """The local development stack cannot be started, checked or stopped."""


class MigrationError(PermanentError):
    """A migration is missing, was changed after it was applied, or failed."""


class UnsupportedInputError(PermanentError):
    """The input is of a kind the pipeline does not handle."""


class InvalidInputError(PermanentError):
    """The input is malformed: a bad path, URL, archive or payload."""


class NotFoundError(InvalidInputError):
    """The input names something that does not exist (a repository, a job)."""


class ConflictError(PermanentError):
    """The request conflicts with work in progress (a job of the same repository)."""


class WebhookRejectedError(PermanentError):
    """The webhook receiver answered 4xx: retrying the same request will not help."""
