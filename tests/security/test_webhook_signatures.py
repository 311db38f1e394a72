"""A webhook delivered by the session stack's workers verifies with the secret over the
exact body, and ``pipeline.webhooks.events.verify`` refuses it tampered, signed with another
secret, replayed after the tolerance (an old timestamp) or from the future.

The timestamp is inside the signature (HMAC-SHA256 over ``f"{timestamp}."`` + body), so
a replay cannot carry a fresh one; within the tolerance a receiver can drop repeats by
``X-Quarry-Delivery``, which equals the body's ``delivery_id``.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from pipeline.errors import InvalidInputError
from pipeline.webhooks.events import (
    DEFAULT_TOLERANCE_S,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from tests.security.helpers import Receiver, Tenant, enqueue, wait
from tests.stackutil import run_quarry
from tests.workers.jobs_api import tenant_secret_of

pytestmark = pytest.mark.timeout(120)


def _delivery(
    api: httpx.Client, source: Path, receiver: Receiver
) -> tuple[dict[str, str], bytes, str]:
    """The next delivery ``receiver`` gets, of a new job over ``source``."""
    seen = len(receiver.received)
    url = f"http://127.0.0.1:{receiver.port}/hook"
    job_id = enqueue(api, source=str(source), repo=f"hook-{uuid.uuid4().hex[:8]}", callback_url=url)
    assert wait(api, job_id)["status"] == "done"
    deadline = time.monotonic() + 30
    while len(receiver.received) <= seen and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.received) > seen, "no delivery"
    headers, body = receiver.received[seen]
    return headers, body, job_id


def _refusals(
    secret: bytes, headers: dict[str, str], body: bytes, now: float
) -> dict[str, tuple[bytes, dict[str, str], bytes, float, str]]:
    """Each way a delivery must be refused: (secret, headers, body, now, reason)."""
    ts = int(headers[TIMESTAMP_HEADER])
    without = {k: v for k, v in headers.items() if k.lower() != SIGNATURE_HEADER.lower()}
    cases: dict[str, tuple[bytes, dict[str, str], bytes, float, str]] = {}
    for at in (0, len(body) // 2, len(body) - 1):
        flipped = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
        cases[f"a byte of the body flipped at {at}"] = (secret, headers, flipped, now, "mismatch")
    reformatted = json.dumps(json.loads(body), indent=1).encode()
    tampered = json.loads(body)
    tampered["job"]["status"] = "failed"
    for name, other in {
        "a byte appended": body + b" ",
        "the last byte dropped": body[:-1],
        "the same JSON, other bytes": reformatted,
        "the status changed": json.dumps(tampered, separators=(",", ":"), sort_keys=True).encode(),
        "an empty body": b"",
    }.items():
        cases[name] = (secret, headers, other, now, "mismatch")
    for name, key in {
        "another secret": b"not-the-secret",
        "the secret and a byte": secret + b"x",
        "the secret less a byte": secret[:-1],
    }.items():
        cases[name] = (key, headers, body, now, "mismatch")
    for name, value in {
        "timestamp + 1": {TIMESTAMP_HEADER: str(ts + 1)},
        "timestamp - 1": {TIMESTAMP_HEADER: str(ts - 1)},
        "timestamp not a number": {TIMESTAMP_HEADER: "soon"},
        "signature upper case": {SIGNATURE_HEADER: headers[SIGNATURE_HEADER].upper()},
        "signature of another body": {SIGNATURE_HEADER: sign(secret, ts, b"{}")},
        "signature empty": {SIGNATURE_HEADER: ""},
    }.items():
        cases[name] = (secret, {**headers, **value}, body, now, "mismatch|not a number")
    cases["no signature"] = (secret, without, body, now, "missing")
    tolerance = DEFAULT_TOLERANCE_S
    cases["replayed after the tolerance"] = (secret, headers, body, ts + tolerance + 1, "replayed")
    cases["replayed a day later"] = (secret, headers, body, ts + 86_400, "replayed")
    cases["from the future"] = (secret, headers, body, ts - tolerance - 1, "future")
    # A replay re-signed with a fresh timestamp needs the secret:
    fresh = {**headers, TIMESTAMP_HEADER: str(int(now) + 3600)}
    cases["an old signature, a fresh timestamp"] = (secret, fresh, body, now + 3600, "mismatch")
    return cases


def test_a_delivered_webhook_verifies_and_tampered_replayed_or_future_ones_do_not(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
    receiver: Receiver,
    endpoints: Endpoints,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = client_for(new_tenant("hook"))
    headers, body, job_id = _delivery(api, tiny_repo("hooked"), receiver)
    secret = tenant_secret_of(api)
    assert secret.startswith(b"whsec_"), "the tenant's own secret"
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    now = time.time()
    verify(secret, headers, body, now=now)
    assert compared, "verify compares signatures with hmac.compare_digest"
    event = json.loads(body)
    assert event["job"]["job_id"] == job_id and event["event"] == "job.done"
    assert headers[DELIVERY_HEADER] == event["delivery_id"]
    ts = int(headers[TIMESTAMP_HEADER])
    assert abs(now - ts) < 120
    lowered = {k.lower(): v for k, v in headers.items()}
    verify(secret, lowered, body, now=now)  # header names are case-insensitive
    for edge in (ts + DEFAULT_TOLERANCE_S, ts - DEFAULT_TOLERANCE_S):
        verify(secret, headers, body, now=edge)

    cases = _refusals(secret, headers, body, now)
    for name, (key, sent, content, at, reason) in cases.items():
        with pytest.raises(InvalidInputError, match=reason):
            verify(key, sent, content, now=at)
        assert name
    assert secret.decode() not in json.dumps(headers) and secret not in body
    print(f"\nwebhook: 1 delivery verified, {len(cases)} tampered/replayed variants refused")


def test_each_tenant_signs_with_its_own_secret_and_a_rotation_overlaps_then_ends(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
    receiver: Receiver,
    endpoints: Endpoints,
) -> None:
    alice, bob = client_for(new_tenant("alice")), client_for(new_tenant("bob"))
    first, bobs = tenant_secret_of(alice), tenant_secret_of(bob)
    assert first != bobs
    headers, body, _ = _delivery(alice, tiny_repo("rotating"), receiver)
    verify(first, headers, body, now=time.time())
    # Neither the service's master secret nor another tenant's verifies it: bob cannot
    # forge alice's events, nor alice bob's.
    for other in (endpoints.webhook_secret.encode(), bobs):
        with pytest.raises(InvalidInputError, match="mismatch"):
            verify(other, headers, body, now=time.time())

    rotated = alice.post("/v1/webhooks/secret/rotate", json={"overlap_s": 3600})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"].encode()
    assert second != first and rotated.json()["generation"] == 2
    assert rotated.json()["previous_signs_until"] is not None
    headers, body, _ = _delivery(alice, tiny_repo("overlap"), receiver)
    assert headers[SIGNATURE_HEADER].count("sha256=") == 2
    for key in (second, first):  # a receiver on either secret accepts it
        verify(key, headers, body, now=time.time())
    assert tenant_secret_of(bob) == bobs  # another tenant's rotation changes nothing

    ended = alice.post("/v1/webhooks/secret/rotate", json={"overlap_s": 0})
    assert ended.status_code == 200 and ended.json()["previous_signs_until"] is None
    third = ended.json()["secret"].encode()
    headers, body, _ = _delivery(alice, tiny_repo("ended"), receiver)
    assert headers[SIGNATURE_HEADER].count("sha256=") == 1
    verify(third, headers, body, now=time.time())
    with pytest.raises(InvalidInputError, match="mismatch"):
        verify(second, headers, body, now=time.time())
    for bad in (-5, 30 * 24 * 3600 + 1, "soon"):
        refused = alice.post("/v1/webhooks/secret/rotate", json={"overlap_s": bad})
        assert refused.status_code == 422 and "overlap_s" in refused.json()["detail"]
    assert tenant_secret_of(alice) == third  # a refused rotation rotates nothing


def test_the_cli_prints_the_tenants_secret_alone_and_rotates_it(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    tenant = new_tenant("cli-hook")
    env = {
        "QUARRY_DATA_DIR": str(tmp_path / "data"),
        "QUARRY_API_URL": endpoints.api_url,
        "QUARRY_API_TOKEN": tenant.token,
    }
    shown = run_quarry("webhook", "secret", env=env, timeout_s=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.encode() == tenant_secret_of(client_for(tenant)) + b"\n"
    rotated = run_quarry("webhook", "secret", "--rotate", "--overlap-s", "60", env=env,
                         timeout_s=60)  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout not in ("", shown.stdout)
    assert "previous secret signs too until" in rotated.stderr
    assert rotated.stdout.encode() == tenant_secret_of(client_for(tenant)) + b"\n"
