"""The JSON form of a dead letter: the one format every dead-letter store keeps.

Pure: no I/O, no clock. ``to_json`` refuses a letter that JSON cannot carry unchanged
(a payload with a set, a NaN or a non-string key), so what is stored is what a replay
sends; ``from_json`` refuses anything but a letter this module wrote, naming the letter.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pipeline.errors import InvalidInputError
from pipeline.models import DeadLetter

FORMAT_VERSION = 1
_FIELDS = frozenset({"v", "letter_id", "task", "payload", "error", "attempts", "failed_at"})


def to_json(letter: DeadLetter) -> str:
    """One line of JSON holding every field of ``letter``; UTF-8 text kept as is.

    Raises :class:`InvalidInputError` naming the letter when a field has the wrong type
    or the payload is not plain JSON (objects with string keys, arrays, strings, finite
    numbers, booleans, null). Tuples in the payload come back as lists.
    """
    name = _name(letter.letter_id)
    if not isinstance(letter.letter_id, str) or not letter.letter_id:
        raise InvalidInputError(f"{name}: letter_id must be a non-empty string")
    _check_fields(name, letter.task, letter.error, letter.attempts, letter.failed_at)
    if not isinstance(letter.payload, Mapping):
        raise InvalidInputError(f"{name}: payload must be a JSON object")
    _check_json(name, letter.payload, "payload")
    document = {
        "v": FORMAT_VERSION,
        "letter_id": letter.letter_id,
        "task": letter.task,
        "payload": letter.payload,
        "error": letter.error,
        "attempts": letter.attempts,
        "failed_at": letter.failed_at,
    }
    return json.dumps(
        document, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=dict
    )


def from_json(text: str | bytes, *, letter_id: str | None = None) -> DeadLetter:
    """The letter ``to_json`` wrote; ``letter_id`` is the id it was stored under.

    Raises :class:`InvalidInputError` naming the letter when ``text`` is not such a
    letter (bad JSON, missing or unknown fields, wrong types, another format version)
    or holds another letter than ``letter_id``.
    """
    name = _name(letter_id)
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{name}: malformed JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidInputError(f"{name}: expected a JSON object, got {type(document).__name__}")
    if set(document) != _FIELDS:
        missing = sorted(_FIELDS - set(document))
        unknown = sorted(set(document) - _FIELDS)
        raise InvalidInputError(f"{name}: missing fields {missing}, unknown fields {unknown}")
    if document["v"] != FORMAT_VERSION:
        raise InvalidInputError(f"{name}: unknown format version {document['v']!r}")
    stored_id = document["letter_id"]
    if not isinstance(stored_id, str) or not stored_id:
        raise InvalidInputError(f"{name}: letter_id must be a non-empty string")
    if letter_id is not None and stored_id != letter_id:
        raise InvalidInputError(f"{name}: holds letter {stored_id!r}")
    name = _name(stored_id)
    task, error = document["task"], document["error"]
    attempts, failed_at = document["attempts"], document["failed_at"]
    _check_fields(name, task, error, attempts, failed_at)
    if not isinstance(document["payload"], dict):
        raise InvalidInputError(f"{name}: payload must be a JSON object")
    return DeadLetter(
        letter_id=stored_id,
        task=task,
        payload=document["payload"],
        error=error,
        attempts=attempts,
        failed_at=float(failed_at),
    )


def _name(letter_id: object) -> str:
    return f"dead letter {letter_id!r}" if letter_id else "dead letter (no id)"


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _check_fields(name: str, task: Any, error: Any, attempts: Any, failed_at: Any) -> None:
    if not isinstance(task, str) or not task:
        raise InvalidInputError(f"{name}: task must be a non-empty string")
    if not isinstance(error, str):
        raise InvalidInputError(f"{name}: error must be a string")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise InvalidInputError(f"{name}: attempts must be a whole number >= 0")
    if (
        isinstance(failed_at, bool)
        or not isinstance(failed_at, int | float)
        or not math.isfinite(failed_at)
    ):
        raise InvalidInputError(f"{name}: failed_at must be a finite number of seconds")


def _check_json(name: str, value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{name}: {where} is {value}, which JSON cannot hold")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(name, item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{name}: {where} has a non-string key {key!r}")
            _check_json(name, item, f"{where}.{key}")
        return
    raise InvalidInputError(f"{name}: {where} is a {type(value).__name__}, which is not JSON")
