"""The real :class:`~pipeline.ports.WebhookSender`: one POST through an injected
``httpx.Client``, after the address policy of :mod:`pipeline.webhooks.events`.

Server-side request forgery is the risk: a client picks the URL, a worker inside the
network POSTs to it. So the host is resolved here (``socket.getaddrinfo`` unless a
resolver is given) and the delivery is refused if ANY address is in a refused category.
The request then goes to the address that was checked (the URL's host replaced by the
IP, the name kept in ``Host`` and in TLS SNI and certificate checks), so a DNS answer
that changes between the check and the connection (rebinding) cannot reach a private
address. Pinned requests send ``Connection: close``: the pool keys connections by
address, and one verified for another name must not be reused. Redirects are never
followed, as the target could be a private address. The client's proxy settings
should be off (``trust_env=False``, as in :func:`httpx_client`): a proxy would
resolve the name again.

httpx exceptions are mapped here and nowhere else: timeouts and connection errors are
:class:`~pipeline.errors.WebhookDeliveryError`; the status is classified by
:func:`pipeline.webhooks.events.check_status`.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from pipeline.errors import InvalidInputError, WebhookDeliveryError, WebhookRejectedError
from pipeline.webhooks.events import (
    USER_AGENT,
    Resolver,
    address_categories,
    callback_target,
    check_addresses,
    check_status,
    literal_address,
    redact_url,
)

DEFAULT_TIMEOUT_S = 10.0


def httpx_client(timeout_s: float = DEFAULT_TIMEOUT_S) -> httpx.Client:
    """A client fit for :class:`HttpxWebhookSender`: no proxies from the environment (a
    proxy would resolve the name again), no redirects, ``timeout_s`` per operation."""
    return httpx.Client(
        trust_env=False,
        follow_redirects=False,
        timeout=timeout_s,
        headers={"User-Agent": USER_AGENT},
    )


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in resolver order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _ConnectFailedError(WebhookDeliveryError):
    """No connection to one address: the next one of the name may still answer."""


@contextmanager
def _httpx_errors(url: str) -> Iterator[None]:
    where = f"callback {redact_url(url)}"
    try:
        yield
    except httpx.TimeoutException as exc:
        raise WebhookDeliveryError(f"{where}: timed out ({type(exc).__name__})") from exc
    except httpx.ConnectError as exc:
        raise _ConnectFailedError(f"{where}: ConnectError: {exc}") from exc
    except httpx.TransportError as exc:
        raise WebhookDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise WebhookDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except httpx.InvalidURL as exc:
        raise WebhookRejectedError(f"{where}: invalid URL: {exc}") from exc


class HttpxWebhookSender:
    """A :class:`~pipeline.ports.WebhookSender` over ``client``.

    ``allow`` lists address categories that are delivered to anyway (``loopback`` for
    a local receiver); ``timeout_s`` bounds connecting and each read and write.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        allow: frozenset[str] = frozenset(),
        resolve: Resolver | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self._client = client
        self._allow = address_categories(allow)
        self._resolve = resolve or resolve_host
        self._timeout_s = timeout_s

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            host, port = callback_target(url)
        except InvalidInputError as exc:
            raise WebhookRejectedError(str(exc)) from exc
        addresses = self._addresses(url, host, port)
        check_addresses(url, host, addresses, self._allow)
        if literal_address(host) is not None:
            return self._post(url, url, body, dict(headers), None)
        # Try each checked address in turn, as a connection to the name would.
        last: WebhookDeliveryError | None = None
        for address in dict.fromkeys(addresses):
            try:
                return self._post_pinned(url, host, address, body, headers)
            except _ConnectFailedError as exc:
                last = exc
        assert last is not None  # check_addresses refused an empty list
        raise last

    def _addresses(self, url: str, host: str, port: int) -> list[str]:
        if literal_address(host) is not None:
            return [host]
        try:
            return self._resolve(host, port)
        except OSError as exc:
            raise WebhookDeliveryError(
                f"callback {redact_url(url)}: cannot resolve {host!r}: {exc}"
            ) from exc

    def _post_pinned(
        self, url: str, host: str, address: str, body: bytes, headers: Mapping[str, str]
    ) -> int:
        netloc = urlsplit(url).netloc  # host[:port] as written: no userinfo is allowed
        pinned = str(httpx.URL(url).copy_with(host=address.split("%", 1)[0]))
        sent = {**headers, "Host": netloc, "Connection": "close"}
        https = urlsplit(url).scheme.lower() == "https"
        return self._post(url, pinned, body, sent, {"sni_hostname": host} if https else None)

    def _post(
        self,
        url: str,
        target: str,
        body: bytes,
        headers: dict[str, str],
        extensions: dict[str, str] | None,
    ) -> int:
        with (
            _httpx_errors(url),
            self._client.stream(
                "POST",
                target,
                content=body,
                headers=headers,
                follow_redirects=False,
                timeout=self._timeout_s,
                extensions=extensions,
            ) as response,
        ):
            # The body is not read: only the status matters, and it may be large.
            status = response.status_code
        return check_status(url, status)
