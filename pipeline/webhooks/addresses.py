"""A callback URL's host when a job is submitted: numeric IPv4 notations and the policy.

Resolvers read ``2130706433``, ``0x7f.1`` or ``0177.0.0.1`` as 127.0.0.1 (inet_aton(3):
one to four parts, each decimal, octal after a leading 0 or hex after 0x, the last part
filling the bytes that remain), so a URL host in one of those forms is an address, not
a name. :func:`check_callback_destination` refuses at submission a callback whose host
is an address of a refused category in any notation, or a ``localhost`` name (RFC 6761:
always loopback). Other names are judged when a delivery resolves them: the senders
check every address a name resolves to then, since a DNS answer can change.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O (no DNS).
"""

from __future__ import annotations

import ipaddress
import re

from pipeline.errors import InvalidInputError
from pipeline.webhooks.events import (
    IPAddress,
    address_categories,
    callback_target,
    literal_address,
    redact_url,
    refused_address,
)

_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_OCTAL = re.compile(r"0[0-7]*")
_DECIMAL = re.compile(r"[1-9][0-9]*")


def _part(text: str) -> int | None:
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _OCTAL.fullmatch(text):
        return int(text, 8)
    if _DECIMAL.fullmatch(text):
        return int(text)
    return None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read as inet_aton(3) reads it (one trailing dot ignored), else None:
    ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` are all 127.0.0.1."""
    text = host[:-1] if host.endswith(".") else host
    parts = [_part(piece) for piece in text.split(".")]
    if not 1 <= len(parts) <= 4:
        return None
    values = [value for value in parts if value is not None]
    if len(values) != len(parts):
        return None
    *head, last = values
    last_bytes = 5 - len(values)  # the last part fills the bytes the others leave
    if any(value > 0xFF for value in head) or last >= 1 << (8 * last_bytes):
        return None
    number = 0
    for value in head:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << (8 * last_bytes) | last)


def host_address(host: str) -> IPAddress | None:
    """The address a URL host denotes without DNS (IPv4 in any inet_aton notation, or
    IPv6), else None (a name)."""
    found = literal_address(host)
    return found if found is not None else numeric_ipv4(host)


def check_callback_destination(url: str, allow: frozenset[str]) -> str:
    """``url`` unchanged when it is a well-formed callback URL (see
    :func:`pipeline.webhooks.events.check_callback_url`) whose host is a name, or an address
    that deliveries are allowed to reach (a global one, or one whose category is in
    ``allow``); else :class:`InvalidInputError` naming it and the category."""
    host, _port = callback_target(url)
    categories = address_categories(allow)
    name = host.rstrip(".").lower()
    what, category = "", None
    if name == "localhost" or name.endswith(".localhost"):
        what, category = "a loopback name", "loopback"
    elif (ip := host_address(host)) is not None:
        what, category = str(ip), refused_address(ip, frozenset())
    if category is None or category in categories:
        return url
    raise InvalidInputError(
        f"callback URL {redact_url(url)!r} refused: {host!r} is {what} ({category}); "
        "callbacks to loopback, private, link-local and reserved addresses are refused"
    )
