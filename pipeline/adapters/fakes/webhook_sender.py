"""The in-memory :class:`~pipeline.ports.WebhookSender` fake: records what it would have
POSTed and answers from a script, under the same URL and address policy and the same
status classification as the real sender (both from :mod:`pipeline.webhooks.events`).

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.errors import InvalidInputError, WebhookDeliveryError, WebhookRejectedError
from pipeline.webhooks.events import (
    Resolver,
    address_categories,
    callback_target,
    check_addresses,
    check_status,
    literal_address,
    redact_url,
)

Response = int | str
"""A scripted answer: an HTTP status, ``"timeout"`` or ``"connect-error"``."""
FAILURES = frozenset({"timeout", "connect-error"})
LOCAL_HOSTS: Mapping[str, list[str]] = {"localhost": ["127.0.0.1", "::1"]}


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One POST that reached the (fake) receiver."""

    url: str
    body: bytes
    headers: dict[str, str]


def resolve_local(host: str, port: int) -> list[str]:
    """The fake's default resolver: ``localhost`` only, every other name is unknown."""
    try:
        return list(LOCAL_HOSTS[host.lower()])
    except KeyError:
        raise OSError(f"unknown host {host!r} (fake resolver)") from None


class InMemoryWebhookSender:
    """Answers each send with the next scripted response (200 once the script is out).

    A refused URL or address raises before anything is recorded or consumed, as the real
    sender sends nothing then. ``"timeout"`` is recorded (the receiver got the request
    but did not answer in time); ``"connect-error"`` is not.
    """

    def __init__(
        self,
        *,
        allow: frozenset[str] = frozenset(),
        resolve: Resolver | None = None,
        responses: tuple[Response, ...] = (),
    ) -> None:
        self._allow = address_categories(allow)
        self._resolve = resolve or resolve_local
        self._script: deque[Response] = deque()
        self.requests: list[WebhookRequest] = []
        self.script(*responses)

    def script(self, *responses: Response) -> None:
        """Queue answers for the next sends, in order."""
        for response in responses:
            if isinstance(response, str) and response not in FAILURES:
                raise ValueError(f"scripted response {response!r}: a status or {FAILURES}")
        self._script.extend(responses)

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            host, port = callback_target(url)
        except InvalidInputError as exc:
            raise WebhookRejectedError(str(exc)) from exc
        if literal_address(host) is not None:
            addresses = [host]
        else:
            try:
                addresses = self._resolve(host, port)
            except OSError as exc:
                raise WebhookDeliveryError(
                    f"callback {redact_url(url)}: cannot resolve {host!r}: {exc}"
                ) from exc
        check_addresses(url, host, addresses, self._allow)
        response = self._script.popleft() if self._script else 200
        where = f"callback {redact_url(url)}"
        if response == "connect-error":
            raise WebhookDeliveryError(f"{where}: ConnectError: connection refused (fake)")
        self.requests.append(WebhookRequest(url, bytes(body), dict(headers)))
        if response == "timeout":
            raise WebhookDeliveryError(f"{where}: timed out (fake)")
        assert isinstance(response, int)
        return check_status(url, response)
