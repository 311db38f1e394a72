"""One contract for every DeadLetters store (the fake and real Redis), and the JSON codec.

Each Redis case keeps its letters under its own key prefix on the session stack's Redis.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
import redis

from config.endpoints import Endpoints
from pipeline.adapters.fakes.dead_letters import InMemoryDeadLetters
from pipeline.adapters.redis.dead_letters import RedisDeadLetters
from pipeline.errors import InvalidInputError, StoreUnavailableError
from pipeline.models import DeadLetter
from pipeline.ports import DeadLetters
from pipeline.stages.dead_letters import from_json, to_json
from tests.stackutil import free_ports

NESTED_PAYLOAD: dict[str, Any] = {
    "repo": {"tenant": "acme", "name": "naïve-重構"},
    "paths": ["src/main.py", "docs/ünïcode ✓.md", "emoji/🦀.rs"],
    "batch": [{"id": 1, "vector": [0.5, -1.25e-7, 3.0]}, {"id": 2, "vector": None}],
    "flags": {"force": True, "dry_run": False, "depth": 0},
    "quote": 'a "quoted"\nline\twith\\escapes\u0000',
}


def letter(letter_id: str, failed_at: float = 1_700_000_000.0, **changes: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "letter_id": letter_id,
        "task": "quarry.write.graph",
        "payload": {"repo": "acme/app", "paths": ["a.py"]},
        "error": "graph unavailable: connection refused",
        "attempts": 21,
        "failed_at": failed_at,
    }
    fields.update(changes)
    return DeadLetter(**fields)


@pytest.fixture(params=["memory", "redis"])
def letters(request: pytest.FixtureRequest) -> Iterator[DeadLetters]:
    if request.param == "memory":
        yield InMemoryDeadLetters()
        return
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url)
    prefix = f"quarry:test:dlq:{uuid.uuid4().hex[:12]}"
    try:
        yield RedisDeadLetters(client, key_prefix=prefix)
    finally:
        client.delete(f"{prefix}:letters", f"{prefix}:order")
        client.close()


def test_letters_are_listed_oldest_first(letters: DeadLetters) -> None:
    letters.add(letter("c", failed_at=30.0))
    letters.add(letter("a", failed_at=10.5))
    letters.add(letter("b", failed_at=20.0))
    assert [x.letter_id for x in letters.list()] == ["a", "b", "c"]
    assert [x.letter_id for x in letters.list(limit=2)] == ["a", "b"]
    assert letters.list(limit=0) == []


def test_letters_failed_at_the_same_time_are_ordered_by_id(letters: DeadLetters) -> None:
    for letter_id in ["b", "é", "a", "Z"]:
        letters.add(letter(letter_id, failed_at=5.0))
    assert [x.letter_id for x in letters.list()] == ["Z", "a", "b", "é"]


def test_get_returns_the_letter_as_added(letters: DeadLetters) -> None:
    added = letter("job-1:write")
    letters.add(added)
    assert letters.get("job-1:write") == added


def test_remove_drops_one_letter(letters: DeadLetters) -> None:
    letters.add(letter("a", failed_at=1.0))
    letters.add(letter("b", failed_at=2.0))
    assert letters.remove("a") is True
    assert letters.get("a") is None
    assert [x.letter_id for x in letters.list()] == ["b"]
    assert letters.remove("a") is False


def test_adding_a_letter_again_keeps_the_first(letters: DeadLetters) -> None:
    first = letter("a", failed_at=1.0)
    letters.add(first)
    letters.add(letter("b", failed_at=2.0))
    letters.add(letter("a", failed_at=3.0, error="another error", attempts=99))
    letters.add(first)
    assert letters.list() == [first, letter("b", failed_at=2.0)]
    assert letters.get("a") == first


def test_unknown_letter_is_none_and_not_removed(letters: DeadLetters) -> None:
    assert letters.get("nope") is None
    assert letters.remove("nope") is False
    assert letters.list() == []


def test_payload_round_trips_unchanged(letters: DeadLetters) -> None:
    letters.add(letter("nested", payload=NESTED_PAYLOAD))
    stored = letters.get("nested")
    assert stored is not None
    assert stored.payload == NESTED_PAYLOAD
    assert json.dumps(stored.payload) == json.dumps(NESTED_PAYLOAD)
    assert letters.list()[0].payload == NESTED_PAYLOAD


@pytest.mark.parametrize(
    "payload",
    [{"ids": {1, 2}}, {"score": float("nan")}, {"nested": {1: "int key"}}, {"when": object()}],
    ids=["set", "nan", "int-key", "object"],
)
def test_payload_that_json_cannot_hold_is_refused(letters: DeadLetters, payload: Any) -> None:
    with pytest.raises(InvalidInputError, match="'bad-1'"):
        letters.add(letter("bad-1", payload=payload))
    assert letters.get("bad-1") is None


# --- Redis only -----------------------------------------------------------------------


def test_corrupt_stored_letter_is_reported_by_id(endpoints: Endpoints) -> None:
    client: redis.Redis[Any] = redis.Redis.from_url(endpoints.redis_url, decode_responses=True)
    prefix = f"quarry:test:dlq:{uuid.uuid4().hex[:12]}"
    try:
        store = RedisDeadLetters(client, key_prefix=prefix)
        store.add(letter("good", failed_at=1.0))
        client.hset(f"{prefix}:letters", "broken", "{not json")
        client.zadd(f"{prefix}:order", {"broken": 2.0})
        with pytest.raises(InvalidInputError, match="'broken'"):
            store.get("broken")
        with pytest.raises(InvalidInputError, match="'broken'"):
            store.list()
        assert store.remove("broken") is True
        assert store.list() == [letter("good", failed_at=1.0)]
    finally:
        client.delete(f"{prefix}:letters", f"{prefix}:order")
        client.close()


def test_unreachable_redis_is_a_transient_error() -> None:
    (port,) = free_ports(1)
    store = RedisDeadLetters(redis.Redis(host="127.0.0.1", port=port, retry=None))
    with pytest.raises(StoreUnavailableError, match="redis"):
        store.add(letter("a"))
    with pytest.raises(StoreUnavailableError):
        store.list()


# --- the codec ------------------------------------------------------------------------


def test_codec_round_trips_every_field() -> None:
    original = letter("x", payload=NESTED_PAYLOAD, failed_at=1_700_000_123.456789)
    text = to_json(original)
    assert "\n" not in text
    assert "naïve-重構" in text
    assert from_json(text, letter_id="x") == original
    assert from_json(text.encode()) == original


def test_codec_takes_any_mapping_as_payload() -> None:
    proxy = MappingProxyType({"inner": MappingProxyType({"k": (1, 2)})})
    decoded = from_json(to_json(letter("x", payload=proxy)))
    assert decoded.payload == {"inner": {"k": [1, 2]}}


def _fields(**changes: Any) -> str:
    document: dict[str, Any] = json.loads(to_json(letter("job-7")))
    document.update(changes)
    return json.dumps(document)


def _without(field: str) -> str:
    document: dict[str, Any] = json.loads(to_json(letter("job-7")))
    del document[field]
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "malformed JSON"),
        ("", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        ('{"v": NaN}', "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_without("task"), r"missing fields \['task'\]"),
        (_fields(extra=1), r"unknown fields \['extra'\]"),
        (_fields(v=2), "unknown format version 2"),
        (_fields(payload=[1]), "payload must be a JSON object"),
        (_fields(attempts="3"), "attempts"),
        (_fields(attempts=True), "attempts"),
        (_fields(attempts=-1), "attempts"),
        (_fields(failed_at="yesterday"), "failed_at"),
        (_fields(task=""), "task"),
        (_fields(error=None), "error"),
        (_fields(letter_id="job-8"), "holds letter 'job-8'"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_codec_rejects_what_it_did_not_write_naming_the_letter(
    text: str | bytes, reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason) as caught:
        from_json(text, letter_id="job-7")
    assert "dead letter 'job-7'" in str(caught.value)


def test_codec_refuses_a_letter_without_an_id() -> None:
    with pytest.raises(InvalidInputError, match="letter_id"):
        to_json(letter(""))
    with pytest.raises(InvalidInputError, match="no id"):
        from_json("{")


def test_codec_refuses_bad_fields_naming_the_letter() -> None:
    bad: list[Mapping[str, Any]] = [
        {"attempts": -1},
        {"failed_at": float("inf")},
        {"task": ""},
        {"payload": ["not", "an", "object"]},
    ]
    for changes in bad:
        with pytest.raises(InvalidInputError, match="dead letter 'job-9'"):
            to_json(letter("job-9", **changes))
