"""The live state of running jobs in Redis (the fake: adapters/fakes/job_board.py).

Redis layout for job ``J`` under ``quarry:job:J``: ``:counters`` a hash of counter ->
int (HINCRBY inside the mark script, so concurrent workers never lose an update),
``:errors`` a list of JSON errors, ``:throttle:<marker>`` keys set with NX, ``:cancel``
and ``:waits`` a hash of store -> JSON wait. Every
key expires ``ttl_s`` after its last write (a day by default): the durable record is
the job row in PostgreSQL, to which the counters are flushed.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from pipeline.errors import StoreUnavailableError
from pipeline.jobs import JobError, StoreWait

DEFAULT_TTL_S = 86400

_MARK = """
local added = {}
local deltas = cjson.decode(ARGV[2])
local counted = false
for i = 3, #ARGV do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    added[#added + 1] = ARGV[i]
    local add = deltas[ARGV[i]]
    if add then
      for name, delta in pairs(add) do
        redis.call('HINCRBY', KEYS[4], name, delta)
        counted = true
      end
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[3])
redis.call('EXPIRE', KEYS[2], ARGV[1])
if counted then redis.call('EXPIRE', KEYS[4], ARGV[1]) end
return added
"""

# A lease: taken when free, renewed by its holder, refused to anyone else.
_LEASE = """
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_UNLEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailableError("redis", f"job board {what}: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _error_json(error: JobError) -> str:
    return json.dumps({"path": error.path, "message": error.message, "at": error.at})


def _wait_from(store: str, raw: str) -> StoreWait:
    data = json.loads(raw)
    return StoreWait(store, float(data["until"]), str(data["reason"]))


def _error_from(raw: str) -> JobError:
    data = json.loads(raw)
    return JobError(str(data["path"]), str(data["message"]), float(data["at"]))


class RedisJobBoard:
    """A :class:`~pipeline.ports.JobBoard` in Redis."""

    def __init__(self, client: redis.Redis[Any], *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._mark_script = client.register_script(_MARK)
        self._lease_script = client.register_script(_LEASE)
        self._unlease_script = client.register_script(_UNLEASE)

    def _key(self, job_id: str, part: str) -> str:
        return f"quarry:job:{job_id}:{part}"

    def set_counters(self, job_id: str, values: Mapping[str, int]) -> None:
        if not values:
            return
        key = self._key(job_id, "counters")
        mapping: dict[str | bytes, bytes | float | int | str] = {
            k: int(v) for k, v in values.items()
        }
        with _redis_errors("set_counters"):
            self._client.pipeline().hset(key, mapping=mapping).expire(key, self._ttl_s).execute()

    def mark(
        self,
        job_id: str,
        counter: str,
        members: Sequence[str],
        deltas: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[str]:
        if not members:
            return []
        keys = [
            self._key(job_id, f"set:{counter}"),
            self._key(job_id, "sets"),
            counter,
            self._key(job_id, "counters"),
        ]
        adds = {m: {k: int(v) for k, v in d.items()} for m, d in (deltas or {}).items() if d}
        with _redis_errors("mark"):
            added = self._mark_script(keys=keys, args=[self._ttl_s, json.dumps(adds), *members])
        return [_text(m) for m in added]

    def counters(self, job_id: str) -> dict[str, int]:
        with _redis_errors("counters"):
            raw, names = (
                self._client.pipeline()
                .hgetall(self._key(job_id, "counters"))
                .smembers(self._key(job_id, "sets"))
                .execute()
            )
            set_names = sorted(_text(n) for n in names)
            pipe = self._client.pipeline()
            for name in set_names:
                pipe.scard(self._key(job_id, f"set:{name}"))
            sizes = pipe.execute()
        counters = {_text(k): int(v) for k, v in raw.items()}
        counters.update(zip(set_names, (int(n) for n in sizes), strict=True))
        return counters

    def push_error(self, job_id: str, error: JobError) -> None:
        key = self._key(job_id, "errors")
        with _redis_errors("push_error"):
            self._client.pipeline().rpush(key, _error_json(error)).expire(
                key, self._ttl_s
            ).execute()

    def take_errors(self, job_id: str) -> list[JobError]:
        key = self._key(job_id, "errors")
        with _redis_errors("take_errors"):
            raw, _ = self._client.pipeline().lrange(key, 0, -1).delete(key).execute()
        return [_error_from(_text(item)) for item in raw]

    def throttle(self, job_id: str, marker: str, interval_s: float) -> bool:
        px = max(1, int(interval_s * 1000))
        with _redis_errors("throttle"):
            return bool(
                self._client.set(self._key(job_id, f"throttle:{marker}"), 1, nx=True, px=px)
            )

    def lease(self, job_id: str, marker: str, holder: str, ttl_s: float) -> bool:
        px = max(1, int(ttl_s * 1000))
        with _redis_errors("lease"):
            key = self._key(job_id, f"lease:{marker}")
            return bool(self._lease_script(keys=[key], args=[holder, px]))

    def release_lease(self, job_id: str, marker: str, holder: str) -> None:
        with _redis_errors("release_lease"):
            self._unlease_script(keys=[self._key(job_id, f"lease:{marker}")], args=[holder])

    def cancel(self, job_id: str) -> None:
        with _redis_errors("cancel"):
            self._client.set(self._key(job_id, "cancel"), 1, ex=self._ttl_s)

    def cancelled(self, job_id: str) -> bool:
        with _redis_errors("cancelled"):
            return bool(self._client.exists(self._key(job_id, "cancel")))

    def members(self, job_id: str, counter: str) -> set[str]:
        with _redis_errors("members"):
            return {_text(m) for m in self._client.smembers(self._key(job_id, f"set:{counter}"))}

    def among(self, job_id: str, counter: str, candidates: Sequence[str]) -> set[str]:
        if not candidates:
            return set()
        key = self._key(job_id, f"set:{counter}")
        with _redis_errors("among"):
            found = self._client.smismember(key, list(candidates))  # type: ignore[no-untyped-call]
        return {c for c, hit in zip(candidates, found, strict=True) if hit}

    def clear(self, job_id: str) -> None:
        with _redis_errors("clear"):
            self._client.delete(self._key(job_id, "errors"), self._key(job_id, "waits"))

    def wait_on(self, job_id: str, wait: StoreWait) -> None:
        key = self._key(job_id, "waits")
        raw = json.dumps({"until": wait.until, "reason": wait.reason})
        with _redis_errors("wait_on"):
            self._client.pipeline().hset(key, wait.store, raw).expire(key, self._ttl_s).execute()

    def waits(self, job_id: str) -> list[StoreWait]:
        with _redis_errors("waits"):
            raw = self._client.hgetall(self._key(job_id, "waits"))
        return sorted(
            (_wait_from(_text(k), _text(v)) for k, v in raw.items()), key=lambda w: w.store
        )
