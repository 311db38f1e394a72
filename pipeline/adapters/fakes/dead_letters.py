"""The in-memory fake of the dead letters: InMemoryDeadLetters, the same contract as the
real adapter (pipeline.adapters.redis.dead_letters) without its server; the contract
tests run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import builtins

from pipeline.models import DeadLetter
from pipeline.stages.dead_letters import from_json, to_json


class InMemoryDeadLetters:
    """The fake: the same JSON, order and idempotence, in a dict."""

    def __init__(self) -> None:
        self._letters: dict[str, tuple[float, str]] = {}

    def add(self, letter: DeadLetter) -> None:
        text = to_json(letter)
        self._letters.setdefault(letter.letter_id, (float(letter.failed_at), text))

    def list(self, limit: int = 100) -> builtins.list[DeadLetter]:
        if limit <= 0:
            return []
        # Redis orders equal scores by member bytes; str order is the same for UTF-8.
        ordered = sorted(self._letters.items(), key=lambda item: (item[1][0], item[0]))
        return [from_json(text, letter_id=key) for key, (_, text) in ordered[:limit]]

    def get(self, letter_id: str) -> DeadLetter | None:
        item = self._letters.get(letter_id)
        return None if item is None else from_json(item[1], letter_id=letter_id)

    def remove(self, letter_id: str) -> bool:
        return self._letters.pop(letter_id, None) is not None
