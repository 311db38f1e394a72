"""Webhook bodies, signatures, URL and address policy, status classes and the retry schedule."""

from __future__ import annotations

import ipaddress
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import (
    ConfigError,
    InvalidInputError,
    WebhookDeliveryError,
    WebhookRejectedError,
)
from pipeline.jobs import Job, JobSource, JobStatus, SourceKind, job_status
from pipeline.models import RepoRef
from pipeline.webhooks.events import (
    address_categories,
    build_event,
    callback_target,
    check_addresses,
    check_callback_url,
    check_status,
    event_for,
    redact_url,
    refused_address,
    sign,
    signed_headers,
    verify,
)
from pipeline.webhooks.retries import RetrySchedule

SECRET = b"whsec-test"
TS = 1_700_000_000
BODY = b'{"event":"job.done"}'

# --- build_event ----------------------------------------------------------------------


def _job() -> Job:
    return Job(
        job_id="job-1",
        repo=RepoRef("acme", "tööls"),
        commit="c0ffee",
        status=JobStatus.DONE,
        stage="done",
        source=JobSource(SourceKind.GIT, "https://git.example/acme/tools.git", "main"),
        counters={"files.total": 3, "files.written": 3},
        created_at=TS - 60.0,
        started_at=TS - 50.0,
        finished_at=TS - 1.0,
    )


def test_event_embeds_the_job_status_compact_with_sorted_keys() -> None:
    status = job_status(_job(), now=TS)
    body = build_event("job.done", status, delivery_id="d-1", now=TS + 0.5)
    document = json.loads(body)
    assert document == {
        "event": "job.done",
        "delivery_id": "d-1",
        "sent_at": "2023-11-14T22:13:20.500000+00:00",
        "job": json.loads(json.dumps(status)),
    }
    compact = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    assert body == compact.encode()
    assert body.startswith(b'{"delivery_id":"d-1","event":"job.done","job":{')
    assert "tööls".encode() in body


def test_event_for_terminal_statuses() -> None:
    assert [event_for(s) for s in ("done", "failed", "cancelled")] == [
        "job.done",
        "job.failed",
        "job.cancelled",
    ]
    with pytest.raises(InvalidInputError, match="'running'"):
        event_for("running")


@pytest.mark.parametrize(
    ("event", "status", "delivery_id", "reason"),
    [
        ("job.finished", {}, "d", "'job.finished'"),
        ("", {}, "d", "webhook event ''"),
        ("job.done", {}, "", "needs a delivery id"),
        ("job.done", {"eta_s": float("nan")}, "d-9", "'d-9'"),
        ("job.done", {"when": object()}, "d-9", "'d-9'"),
    ],
)
def test_bad_events_are_refused_naming_them(
    event: str, status: dict[str, Any], delivery_id: str, reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        build_event(event, status, delivery_id=delivery_id, now=TS)


# --- sign and verify ------------------------------------------------------------------


def test_signature_matches_a_known_answer() -> None:
    # printf '1700000000.{"event":"job.done"}' | openssl dgst -sha256 -hmac whsec-test
    assert sign(SECRET, TS, BODY) == (
        "sha256=5ed12693b4589b7e5dc12126e4b599f848f90956c6889167250f9673c45ead6f"
    )


def test_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="QUARRY_WEBHOOK_SECRET"):
        sign(b"", TS, BODY)


def test_signed_headers_carry_event_delivery_timestamp_and_signature() -> None:
    headers = signed_headers(SECRET, BODY, event="job.done", delivery_id="d-1", timestamp=TS)
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "Quarry-Webhook/1",
        "X-Quarry-Event": "job.done",
        "X-Quarry-Delivery": "d-1",
        "X-Quarry-Timestamp": "1700000000",
        "X-Quarry-Signature-256": sign(SECRET, TS, BODY),
    }


def _headers(**changes: str | None) -> dict[str, str]:
    headers = signed_headers(SECRET, BODY, event="job.done", delivery_id="d-1", timestamp=TS)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            del headers[key]
        else:
            headers[key] = value
    return headers


def _other_signature() -> str:
    return sign(b"another-secret", TS, BODY)


VERIFY_CASES: list[tuple[str, dict[str, str], bytes, float, str | None]] = [
    ("good", _headers(), BODY, TS + 10, None),
    ("good-at-the-tolerance", _headers(), BODY, TS + 300, None),
    ("clock-skew-within-tolerance", _headers(), BODY, TS - 299, None),
    ("tampered-body", _headers(), BODY + b" ", TS, "signature mismatch"),
    ("tampered-timestamp", _headers(X_Quarry_Timestamp=str(TS + 1)), BODY, TS, "mismatch"),
    ("other-secret", _headers(X_Quarry_Signature_256=_other_signature()), BODY, TS, "mismatch"),
    ("no-prefix", _headers(X_Quarry_Signature_256=sign(SECRET, TS, BODY)[7:]), BODY, TS, "mis"),
    ("non-ascii-signature", _headers(X_Quarry_Signature_256="sha256=é"), BODY, TS, "mismatch"),
    ("old-replayed", _headers(), BODY, TS + 301, "timestamp too old: replayed?"),
    ("far-future", _headers(), BODY, TS - 301, "in the future"),
    ("no-signature", _headers(X_Quarry_Signature_256=None), BODY, TS, "Signature-256 missing"),
    ("no-timestamp", _headers(X_Quarry_Timestamp=None), BODY, TS, "Timestamp missing"),
    ("timestamp-not-int", _headers(X_Quarry_Timestamp="17e8"), BODY, TS, "not a number"),
    ("timestamp-negative", _headers(X_Quarry_Timestamp="-1"), BODY, TS, "not a number"),
]


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [case[1:] for case in VERIFY_CASES],
    ids=[case[0] for case in VERIFY_CASES],
)
def test_verify(headers: dict[str, str], body: bytes, now: float, reason: str | None) -> None:
    if reason is None:
        verify(SECRET, headers, body, now=now)
        return
    with pytest.raises(InvalidInputError, match=reason.replace("?", r"\?")):
        verify(SECRET, headers, body, now=now)


def test_verify_looks_headers_up_in_any_case() -> None:
    lowered = {name.lower(): value for name, value in _headers().items()}
    verify(SECRET, lowered, BODY, now=TS)
    upper = {name.upper(): value for name, value in _headers().items()}
    verify(SECRET, upper, BODY, now=TS)


def test_verify_honours_a_custom_tolerance() -> None:
    verify(SECRET, _headers(), BODY, now=TS + 30, tolerance_s=30)
    with pytest.raises(InvalidInputError, match="replayed"):
        verify(SECRET, _headers(), BODY, now=TS + 31, tolerance_s=30)


def _documented_verifier() -> Any:
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)
    return namespace["verify_quarry_webhook"]


def test_the_documented_python_verifier_accepts_a_delivery_and_refuses_forgeries() -> None:
    check = _documented_verifier()
    now = int(time.time())
    body = build_event("job.failed", {"job_id": "j", "repo": "é"}, delivery_id="d", now=now)
    headers = signed_headers(SECRET, body, event="job.failed", delivery_id="d", timestamp=now)
    check(SECRET, headers, body)
    check(SECRET, {k.lower(): v for k, v in headers.items()}, body)
    with pytest.raises(ValueError, match="mismatch"):
        check(SECRET, headers, body + b" ")
    with pytest.raises(ValueError, match="mismatch"):
        check(b"other", headers, body)
    old = signed_headers(SECRET, body, event="job.failed", delivery_id="d", timestamp=now - 301)
    with pytest.raises(ValueError, match="replayed"):
        check(SECRET, old, body)
    with pytest.raises(ValueError, match="missing"):
        check(SECRET, {"Content-Type": "application/json"}, body)


# --- callback URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://example.com/hook", ("example.com", 80)),
        ("https://hooks.example.com:8443/a/b?c=d#e", ("hooks.example.com", 8443)),
        ("HTTPS://EXAMPLE.COM/", ("example.com", 443)),
        ("http://127.0.0.1:8080/", ("127.0.0.1", 8080)),
        ("http://[::1]:9000/x", ("::1", 9000)),
        ("https://bücher.example/hook", ("bücher.example", 443)),
        ("http://my_host.internal./x", ("my_host.internal.", 80)),
    ],
)
def test_good_callback_urls_are_kept(url: str, target: tuple[str, int]) -> None:
    assert check_callback_url(url) == url
    assert callback_target(url) == target


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("ftp://x", "http or https"),
        ("ftp://x/file", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("mailto:ops@example.com", "http or https"),
        ("data:text/plain,hi", "http or https"),
        ("example.com/hook", "http or https"),
        ("//example.com/hook", "http or https"),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://:8080/", "no host"),
        ("http://user:pw@host/", "credentials"),
        ("http://token@host/", "credentials"),
        ("https://user:pw@[::1]:99999/", "credentials|malformed"),
        ("http://host:99999/", "malformed"),
        ("http://host:port/", "malformed"),
        ("http://host:0/", "port 0"),
        ("http://[::1/", "malformed"),
        ("http://[zz::1]/", "IPv6|malformed"),
        ("http://exa mple.com/", "whitespace"),
        ("http://host/\n", "whitespace"),
        ("http://host/\x00", "control"),
        ("http://a..b/", "bad host"),
        ("http://a/b/" + "c" * 2048, "longer than 2048"),
    ],
)
def test_bad_callback_urls_are_refused_naming_them(url: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason) as caught:
        check_callback_url(url)
    message = str(caught.value)
    assert "callback URL" in message
    assert "pw" not in message
    assert "token" not in message
    assert len(message) < 400


def test_redaction_hides_credentials_but_keeps_the_rest() -> None:
    assert redact_url("https://user:s3cret@hooks.example/a?b") == "https://***@hooks.example/a?b"
    assert redact_url("http://hooks.example/a") == "http://hooks.example/a"


# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allow", "category"),
    [
        ("127.0.0.1", frozenset(), "loopback"),
        ("127.8.9.10", frozenset(), "loopback"),
        ("::1", frozenset(), "loopback"),
        ("10.0.0.1", frozenset(), "private"),
        ("172.16.0.1", frozenset(), "private"),
        ("172.31.255.254", frozenset(), "private"),
        ("192.168.1.1", frozenset(), "private"),
        ("100.64.0.1", frozenset(), "private"),
        ("fc00::1", frozenset(), "private"),
        ("fec0::1", frozenset(), "private"),
        ("169.254.169.254", frozenset(), "link-local"),
        ("fe80::1", frozenset(), "link-local"),
        ("::ffff:127.0.0.1", frozenset(), "loopback"),
        ("::ffff:10.0.0.1", frozenset(), "private"),
        ("::ffff:169.254.169.254", frozenset(), "link-local"),
        ("2002:7f00:1::", frozenset(), "loopback"),
        ("0.0.0.0", frozenset(), "unspecified"),
        ("::", frozenset(), "unspecified"),
        ("224.0.0.1", frozenset(), "multicast"),
        ("ff02::1", frozenset(), "multicast"),
        ("240.0.0.1", frozenset(), "reserved"),
        ("255.255.255.255", frozenset(), "reserved"),
        ("::127.0.0.1", frozenset(), "reserved"),
        ("8.8.8.8", frozenset(), None),
        ("1.1.1.1", frozenset(), None),
        ("2606:4700::1111", frozenset(), None),
        ("::ffff:8.8.8.8", frozenset(), None),
        ("127.0.0.1", frozenset({"loopback"}), None),
        ("::1", frozenset({"loopback"}), None),
        ("::ffff:127.0.0.1", frozenset({"loopback"}), None),
        ("10.0.0.1", frozenset({"loopback"}), "private"),
        ("169.254.169.254", frozenset({"loopback"}), "link-local"),
        ("127.0.0.1", frozenset({"private"}), "loopback"),
        ("192.168.1.1", frozenset({"private"}), None),
    ],
)
def test_refused_address(address: str, allow: frozenset[str], category: str | None) -> None:
    assert refused_address(ipaddress.ip_address(address), allow) == category


def test_any_refused_address_of_a_name_refuses_it() -> None:
    url = "https://hooks.example/x"
    check_addresses(url, "hooks.example", ["8.8.8.8", "2606:4700::1111"], frozenset())
    with pytest.raises(WebhookRejectedError, match=r"hooks\.example.*10\.0\.0\.1 \(private\)"):
        check_addresses(url, "hooks.example", ["8.8.8.8", "10.0.0.1"], frozenset())
    with pytest.raises(WebhookRejectedError, match="link-local"):
        check_addresses(url, "hooks.example", ["fe80::1%eth0"], frozenset())
    with pytest.raises(WebhookRejectedError, match="not an address"):
        check_addresses(url, "hooks.example", ["nonsense"], frozenset())
    with pytest.raises(WebhookDeliveryError, match="resolved to nothing"):
        check_addresses(url, "hooks.example", [], frozenset())


def test_address_categories_are_validated() -> None:
    assert address_categories([" Loopback ", "private", ""]) == {"loopback", "private"}
    with pytest.raises(ConfigError, match="'intranet'"):
        address_categories(["loopback", "intranet"])


# --- statuses and retries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (201, None),
        (204, None),
        (500, WebhookDeliveryError),
        (502, WebhookDeliveryError),
        (503, WebhookDeliveryError),
        (429, WebhookDeliveryError),
        (408, WebhookDeliveryError),
        (400, WebhookRejectedError),
        (401, WebhookRejectedError),
        (404, WebhookRejectedError),
        (410, WebhookRejectedError),
        (301, WebhookRejectedError),
        (302, WebhookRejectedError),
        (307, WebhookRejectedError),
        (304, WebhookRejectedError),
        (101, WebhookRejectedError),
    ],
)
def test_status_classes(status: int, outcome: type[Exception] | None) -> None:
    url = "https://u:p@hooks.example/x"
    if outcome is None:
        assert check_status(url, status) == status
        return
    with pytest.raises(outcome, match=rf"hooks\.example/x answered {status}") as caught:
        check_status(url, status)
    assert "u:p" not in str(caught.value)


# --- the retry schedule -------------------------------------------------------------

DEFAULT_SCHEDULE = RetrySchedule(base_s=40.0, cap_s=600.0, max_attempts=10)


@pytest.mark.parametrize(
    ("attempt", "longest_s"),
    [(1, 40.0), (2, 80.0), (3, 160.0), (4, 320.0), (5, 600.0), (9, 600.0), (10**6, 600.0)],
)
def test_the_default_waits_double_from_40_s_up_to_600_s(attempt: int, longest_s: float) -> None:
    assert DEFAULT_SCHEDULE.longest_s(attempt) == longest_s
    assert DEFAULT_SCHEDULE.delay_s(attempt, rng=lambda: 0.0) == longest_s / 2
    assert DEFAULT_SCHEDULE.delay_s(attempt, rng=lambda: 0.999999) == pytest.approx(longest_s)


def test_the_default_schedule_spans_30_to_60_minutes_over_10_attempts() -> None:
    assert DEFAULT_SCHEDULE.window_s() == (1800.0, 3600.0)
    assert [DEFAULT_SCHEDULE.gives_up(n) for n in range(1, 11)] == [False] * 9 + [True]


@pytest.mark.parametrize("seed", range(20))
def test_every_drawn_schedule_lies_within_the_stated_window(seed: int) -> None:
    rng = random.Random(seed).random
    shortest_s, longest_s = DEFAULT_SCHEDULE.window_s()
    waits = [DEFAULT_SCHEDULE.delay_s(n, rng=rng) for n in range(1, 10)]
    assert shortest_s <= sum(waits) <= longest_s
    for n, wait_s in enumerate(waits, start=1):
        assert DEFAULT_SCHEDULE.longest_s(n) / 2 <= wait_s <= DEFAULT_SCHEDULE.longest_s(n)


@pytest.mark.parametrize(
    "schedule",
    [
        DEFAULT_SCHEDULE,
        RetrySchedule(base_s=0.5, cap_s=2.0, max_attempts=4),
        RetrySchedule(base_s=900.0, cap_s=60.0, max_attempts=3),  # base above the cap
        RetrySchedule(base_s=1.0, cap_s=86400.0, max_attempts=50),
    ],
)
def test_the_longest_waits_never_shrink_and_never_pass_the_cap(schedule: RetrySchedule) -> None:
    longest = [schedule.longest_s(n) for n in range(1, 200)]
    assert longest == sorted(longest)
    assert max(longest) <= schedule.cap_s
    assert all(math.isfinite(x) and x > 0 for x in longest)
    shortest_s, longest_s = schedule.window_s()
    assert longest_s == sum(longest[: schedule.max_attempts - 1])
    assert shortest_s == longest_s / 2
    assert longest_s <= schedule.cap_s * (schedule.max_attempts - 1)


@pytest.mark.parametrize("drawn", [-5.0, -0.0, 0.0, 0.5, 1.0, 7.0])
def test_jitter_stays_between_half_and_all_of_the_wait_whatever_the_draw(drawn: float) -> None:
    for attempt in (1, 5, 10):
        wait_s = DEFAULT_SCHEDULE.delay_s(attempt, rng=lambda: drawn)
        longest_s = DEFAULT_SCHEDULE.longest_s(attempt)
        assert longest_s / 2 <= wait_s <= longest_s


def test_one_attempt_has_no_window_and_gives_up_at_once() -> None:
    once = RetrySchedule(base_s=40.0, cap_s=600.0, max_attempts=1)
    assert once.window_s() == (0.0, 0.0)
    assert once.gives_up(1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_s": 0.0, "cap_s": 1.0, "max_attempts": 3}, "must be > 0"),
        ({"base_s": 1.0, "cap_s": -1.0, "max_attempts": 3}, "must be > 0"),
        ({"base_s": 1.0, "cap_s": 1.0, "max_attempts": 0}, "at least one attempt"),
    ],
)
def test_a_schedule_refuses_nonsense(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetrySchedule(**kwargs)


def test_retry_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt 0"):
        DEFAULT_SCHEDULE.delay_s(0)
