"""Dead letters in Redis (the fake: adapters/fakes/dead_letters.py); both keep the JSON of
pipeline.stages.dead_letters.

Redis layout under ``key_prefix`` (default ``quarry:dlq``): a hash ``<prefix>:letters``
of letter id -> JSON, and a sorted set ``<prefix>:order`` of letter ids scored by
``failed_at``, so that listing is oldest first (ties by id). Both keys change together
in one MULTI/EXEC. The client may or may not decode responses.

A Redis that cannot be reached raises :class:`~pipeline.errors.StoreUnavailableError`
(transient: the caller retries rather than losing the letter).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from pipeline.errors import StoreUnavailableError
from pipeline.models import DeadLetter
from pipeline.stages.dead_letters import from_json, to_json

DEFAULT_KEY_PREFIX = "quarry:dlq"


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailableError("redis", f"dead letters: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisDeadLetters:
    """A :class:`~pipeline.ports.DeadLetters` in Redis.

    ``add`` keeps the first letter stored under an id: adding it again changes nothing
    (neither the letter nor its place in the order). A stored letter that is not valid
    JSON makes ``get`` and ``list`` raise :class:`~pipeline.errors.InvalidInputError`
    naming it; ``remove`` still drops it.
    """

    def __init__(self, client: redis.Redis[Any], *, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        self._client = client
        self._letters_key = f"{key_prefix}:letters"
        self._order_key = f"{key_prefix}:order"

    def add(self, letter: DeadLetter) -> None:
        text = to_json(letter)
        with _redis_errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.hsetnx(self._letters_key, letter.letter_id, text)
            pipe.zadd(self._order_key, {letter.letter_id: letter.failed_at}, nx=True)
            pipe.execute()

    def list(self, limit: int = 100) -> builtins.list[DeadLetter]:
        if limit <= 0:
            return []
        with _redis_errors():
            ids = [_text(raw) for raw in self._client.zrange(self._order_key, 0, limit - 1)]
            texts = self._client.hmget(self._letters_key, ids) if ids else []
        # A letter removed between the two reads is left out.
        return [
            from_json(text, letter_id=letter_id)
            for letter_id, text in zip(ids, texts, strict=True)
            if text is not None
        ]

    def get(self, letter_id: str) -> DeadLetter | None:
        with _redis_errors():
            text = self._client.hget(self._letters_key, letter_id)
        return None if text is None else from_json(text, letter_id=letter_id)

    def remove(self, letter_id: str) -> bool:
        with _redis_errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.hdel(self._letters_key, letter_id)
            pipe.zrem(self._order_key, letter_id)
            removed, _ = pipe.execute()
        return bool(removed)
