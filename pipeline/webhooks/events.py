"""Job webhooks, the pure part: event bodies, signatures, the callback URL and address
policy, and how a receiver's status is classified (the retry schedule: retries.py).

A delivery is a POST of a compact JSON body (sorted keys) signed with HMAC-SHA256 over
``f"{timestamp}.".encode() + body``; the timestamp is signed so that a captured delivery
cannot be replayed later (:func:`verify` refuses one older than its tolerance). The
sending adapters (``pipeline/adapters/*webhook_sender.py``) do the I/O and share the
policy and the classification below, so the fake and the real sender agree.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver (httpx included).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pipeline.errors import (
    ConfigError,
    InvalidInputError,
    WebhookDeliveryError,
    WebhookRejectedError,
)

EVENTS = frozenset({"job.done", "job.failed", "job.cancelled", "job.progress"})
_STATUS_EVENTS = {"done": "job.done", "failed": "job.failed", "cancelled": "job.cancelled"}

USER_AGENT = "Quarry-Webhook/1"
EVENT_HEADER = "X-Quarry-Event"
DELIVERY_HEADER = "X-Quarry-Delivery"
TIMESTAMP_HEADER = "X-Quarry-Timestamp"
SIGNATURE_HEADER = "X-Quarry-Signature-256"
SIGNATURE_PREFIX = "sha256="
MAX_SIGNATURES = 4  # a header lists one signature, two during a secret's rotation
DEFAULT_TOLERANCE_S = 300.0

MAX_URL_CHARS = 2048
ADDRESS_CATEGORIES = frozenset(
    {"loopback", "private", "link-local", "reserved", "multicast", "unspecified"}
)
# Carrier-grade NAT space (RFC 6598): not global, yet not ``is_private`` before 3.13.
_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")
_HOST = re.compile(r"^[\w-]+(\.[\w-]+)*\.?$")  # \w: IDN labels too; httpx encodes them
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]  # (host, port) -> the addresses it points at


# --- events and signatures ----------------------------------------------------------


def event_for(status: str) -> str:
    """The event of a terminal job status: ``done`` -> ``job.done`` and so on."""
    try:
        return _STATUS_EVENTS[status]
    except KeyError:
        raise InvalidInputError(f"job status {status!r} has no webhook event") from None


def build_event(event: str, status: Mapping[str, Any], *, delivery_id: str, now: float) -> bytes:
    """The body of one delivery: ``event``, ``delivery_id``, ``sent_at`` and ``job`` (the
    job status JSON of :func:`pipeline.jobs.job_status`), compact with sorted keys."""
    if event not in EVENTS:
        raise InvalidInputError(f"webhook event {event!r}: use one of {sorted(EVENTS)}")
    if not delivery_id:
        raise InvalidInputError(f"webhook {event} needs a delivery id")
    document = {
        "event": event,
        "delivery_id": delivery_id,
        "sent_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "job": status,
    }
    try:
        text = json.dumps(
            document, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"webhook {event} {delivery_id!r}: job status: {exc}") from exc
    return text.encode("utf-8")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body``."""
    if not secret:
        raise ConfigError("webhook secret is empty: set QUARRY_WEBHOOK_SECRET")
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(
    secret: bytes | Sequence[bytes],
    body: bytes,
    *,
    event: str,
    delivery_id: str,
    timestamp: int,
) -> dict[str, str]:
    """The headers of one delivery, signed over ``timestamp`` and ``body`` with each
    secret: ``sha256=<hex>``, or during a rotation's overlap ``sha256=<new>,sha256=<old>``
    (a receiver accepts the delivery if any of them is its secret's)."""
    secrets = [secret] if isinstance(secret, bytes) else list(secret)
    if not secrets:
        raise ConfigError("no webhook secret to sign with")
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: ",".join(sign(key, timestamp, body) for key in secrets),
    }


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise :class:`InvalidInputError` unless ``body`` and the timestamp were signed with
    ``secret`` less than ``tolerance_s`` from ``now``. Header names are case-insensitive."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values: dict[str, str] = {}
    for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
        value = lowered.get(name.lower())
        if value is None:
            raise InvalidInputError(f"webhook header {name} missing")
        values[name] = value.strip()
    raw_ts = values[TIMESTAMP_HEADER]
    if not re.fullmatch(r"[0-9]{1,12}", raw_ts):
        raise InvalidInputError(f"webhook header {TIMESTAMP_HEADER} {raw_ts[:40]!r}: not a number")
    timestamp = int(raw_ts)
    expected = sign(secret, timestamp, body).encode("ascii")
    given = [
        part.strip().encode("utf-8", "backslashreplace")
        for part in values[SIGNATURE_HEADER].split(",")[:MAX_SIGNATURES]
    ]
    # Signature first: "replayed?" is only said of a delivery that we really signed.
    if not any(hmac.compare_digest(expected, one) for one in given):
        raise InvalidInputError(f"webhook {SIGNATURE_HEADER}: signature mismatch")
    age_s = now - timestamp
    if abs(age_s) > tolerance_s:
        why = "too old: replayed?" if age_s > 0 else "in the future: check the clocks"
        raise InvalidInputError(
            f"webhook timestamp {why} (signed at {timestamp}, now {now:.0f}, "
            f"tolerance {tolerance_s:.0f} s)"
        )


# --- callback URLs and addresses ----------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` for messages and logs: userinfo (credentials) replaced, long ones cut."""
    text = _USERINFO.sub("***@", url)
    return text if len(text) <= 200 else text[:200] + "..."


def _split(url: str) -> SplitResult:
    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"callback URL {redact_url(url)!r}: {why}")

    if not url:
        raise bad("empty")
    if len(url) > MAX_URL_CHARS:
        raise bad(f"longer than {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise bad("contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(f"malformed ({exc})") from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise bad("use an http or https URL")
    if "@" in parts.netloc:
        raise bad("credentials in the URL are refused")
    host = parts.hostname or ""
    if not host:
        raise bad("no host")
    if port == 0:
        raise bad("port 0")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"bad IPv6 host {host!r}") from None
    elif not _HOST.match(host):
        raise bad(f"bad host {host!r}")
    return parts


def check_callback_url(url: str) -> str:
    """``url`` unchanged when it is an http(s) URL with a host, no credentials and at most
    2048 characters; else :class:`InvalidInputError` naming it (credentials redacted)."""
    _split(url)
    return url


def callback_target(url: str) -> tuple[str, int]:
    """The host (brackets stripped) and port that a delivery to ``url`` connects to."""
    parts = _split(url)
    default_port = 443 if parts.scheme.lower() == "https" else 80
    return parts.hostname or "", parts.port or default_port


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one (an IPv6 zone is dropped), else None."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def address_categories(names: Iterable[str]) -> frozenset[str]:
    """Validated categories for ``allow``; :class:`ConfigError` names an unknown one."""
    chosen = frozenset(name.strip().lower() for name in names if name.strip())
    unknown = sorted(chosen - ADDRESS_CATEGORIES)
    if unknown:
        raise ConfigError(
            f"webhook address categories {unknown}: use some of {sorted(ADDRESS_CATEGORIES)}"
        )
    return chosen


def _category(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address in IPv6 clothes reaches the IPv4 host: judge that one.
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None:
            return _category(inner)
    checks: tuple[tuple[str, bool], ...] = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        (
            "private",
            ip.is_private
            or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
            or ip in _SHARED_V4,
        ),
        ("reserved", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def refused_address(ip: IPAddress, allow: frozenset[str]) -> str | None:
    """The category of ``ip`` when deliveries to it are refused, None when it is allowed
    (a global address, or one whose category is in ``allow``)."""
    category = _category(ip)
    return None if category is None or category in allow else category


def check_addresses(url: str, host: str, addresses: Iterable[str], allow: frozenset[str]) -> None:
    """Raise :class:`WebhookRejectedError` when ANY address that ``host`` resolved to is
    refused (a name with one private address among public ones is refused), or is not
    an address; :class:`WebhookDeliveryError` when it resolved to none."""
    listed = list(addresses)
    if not listed:
        raise WebhookDeliveryError(f"callback {redact_url(url)}: {host!r} resolved to nothing")
    for text in listed:
        ip = literal_address(text)
        if ip is None:
            raise WebhookRejectedError(
                f"callback {redact_url(url)}: {host!r} resolved to {text!r}, not an address"
            )
        category = refused_address(ip, allow)
        if category is not None:
            raise WebhookRejectedError(
                f"callback {redact_url(url)} refused: {host!r} is {ip} ({category})"
            )


# --- outcomes ---------------------------------------------------------------------


def check_status(url: str, status: int) -> int:
    """``status`` when it is 2xx. 408, 429 and 5xx raise :class:`WebhookDeliveryError`
    (retried); redirects (never followed: the target could be a private address) and
    other statuses raise :class:`WebhookRejectedError`."""
    where = f"callback {redact_url(url)}"
    if 200 <= status < 300:
        return status
    if status in {408, 429} or 500 <= status < 600:
        raise WebhookDeliveryError(f"{where} answered {status}")
    if 300 <= status < 400:
        raise WebhookRejectedError(f"{where} answered {status}: redirects are not followed")
    raise WebhookRejectedError(f"{where} answered {status}")
