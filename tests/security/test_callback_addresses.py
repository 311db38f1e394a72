"""Callbacks to private addresses are refused by default: at job submission (422 naming
``callback_url``), for every notation of an address a resolver accepts; and at delivery,
where a name is resolved and every address it resolves to is checked again.

The session stack allows loopback callbacks (``QUARRY_WEBHOOK_ALLOW_ADDRESSES=loopback``,
for its own webhook tests), so the default is tested on an app and a sender built from
the DEFAULT settings (``webhook_allow_addresses`` left empty), with the stack's stores.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from config.endpoints import Endpoints
from config.settings import QuarrySettings, load_settings
from pipeline.adapters.http.webhook_sender import HttpxWebhookSender, httpx_client
from pipeline.errors import InvalidInputError, WebhookRejectedError
from pipeline.webhooks.addresses import check_callback_destination, numeric_ipv4
from tests.security.helpers import Receiver

pytestmark = pytest.mark.timeout(120)

REFUSED = {
    "http://127.0.0.1/hook": "loopback",
    "http://127.8.9.10:8080/": "loopback",
    "http://localhost/hook": "loopback",
    "http://LocalHost./hook": "loopback",
    "http://api.localhost:9000/": "loopback",
    "http://[::1]/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://10.0.0.1/": "private",
    "http://172.16.5.4/": "private",
    "http://172.31.255.254/": "private",
    "http://192.168.1.1/": "private",
    "https://[fd12:3456::1]/": "private",
    "http://[fc00::1]/": "private",
    "http://100.64.0.1/": "private",  # CGNAT, RFC 6598
    "http://100.127.255.254/": "private",
    "http://169.254.169.254/latest/meta-data/": "link-local",  # cloud metadata
    "http://[fe80::1]/": "link-local",
    "http://[::ffff:a9fe:a9fe]/": "link-local",
    "http://0.0.0.0/": "unspecified",
    "http://[::]/": "unspecified",
    "http://0/": "unspecified",
    "http://2130706433/": "loopback",  # decimal
    "http://0x7f.1/": "loopback",  # hex, short form
    "http://0x7f000001/": "loopback",
    "http://0177.0.0.1/": "loopback",  # octal
    "http://017700000001/": "loopback",
    "http://127.1/": "loopback",
    "http://127.0.0.1./": "loopback",
    "http://2852039166/": "link-local",  # 169.254.169.254
    "http://0xa9.0xfe.0xa9.0xfe/": "link-local",
    "http://0251.0376.0251.0376/": "link-local",
    "http://10.1/": "private",
    "http://0300.0250.0.1/": "private",  # 192.168.0.1
    "http://224.0.0.1/": "multicast",
    "http://240.0.0.1/": "reserved",
}
ACCEPTED = (
    "https://hooks.example.com/quarry",
    "http://93.184.216.34/hook",
    "http://8.8.8.8:8080/",
    "https://[2606:4700:4700::1111]/x",
    "http://1.1/",  # 1.0.0.1, a global address
    "http://internal.corp.example/",  # a name: judged when a delivery resolves it
)


@pytest.fixture(scope="module")
def defaults() -> QuarrySettings:
    settings = load_settings(env={})
    assert settings.webhook_allow_addresses == ()
    assert QuarrySettings.model_fields["webhook_allow_addresses"].default == ()
    return settings


@pytest.fixture(scope="module")
def default_api(
    stack_settings: QuarrySettings, defaults: QuarrySettings, endpoints: Endpoints
) -> Iterator[TestClient]:
    """The API on the stack's stores with the default callback policy."""
    from api.app import create_app

    settings = stack_settings.model_copy(
        update={
            "webhook_allow_addresses": defaults.webhook_allow_addresses,
            "search_warm_on_start": False,
        }
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {endpoints.api_token}"
        yield client


def test_private_callbacks_are_refused_at_submission_by_default(
    default_api: TestClient, tmp_path: Path
) -> None:
    (tmp_path / "a.py").write_text("def a():\n    return 1\n", encoding="utf-8")
    repo = f"callbacks-{uuid.uuid4().hex[:8]}"
    for url, category in REFUSED.items():
        body = {"source": str(tmp_path), "repo": repo, "callback_url": url}
        response = default_api.post("/v1/jobs", json=body)
        assert response.status_code == 422, (url, response.text)
        detail = response.json()["detail"]
        assert detail.startswith("callback_url: ") and f"({category})" in detail, (url, detail)
        upload = default_api.post(
            "/v1/jobs/archive", params={"repo": repo, "callback_url": url}, content=b"x"
        )
        assert upload.status_code == 422 and "callback_url" in upload.json()["detail"], url
    assert default_api.get("/v1/jobs", params={"repo": repo}).json()["jobs"] == []
    for url in ACCEPTED:
        body = {"source": str(tmp_path), "repo": repo, "callback_url": url}
        response = default_api.post("/v1/jobs", params={"dry_run": "true"}, json=body)
        assert response.status_code == 200, (url, response.text)
    print(
        f"\ncallbacks at submission: {len(REFUSED)} URLs x 2 routes refused, "
        f"{len(ACCEPTED)} accepted"
    )


def test_the_stack_allowing_loopback_still_refuses_private_and_metadata(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as http:
        for url, category in REFUSED.items():
            if category == "loopback":
                continue
            body = {"source": str(tmp_path), "repo": "x", "callback_url": url}
            response = http.post("/v1/jobs", json=body)
            assert response.status_code == 422, (url, response.text)
            assert "callback_url" in response.json()["detail"]


@pytest.mark.parametrize("allow", [frozenset(), frozenset({"private", "link-local"})])
def test_the_policy_checks_each_notation_and_names_the_category(allow: frozenset[str]) -> None:
    for url, category in REFUSED.items():
        if category in allow:
            assert check_callback_destination(url, allow) == url
            continue
        with pytest.raises(InvalidInputError, match=rf"callback URL .*\({category}\)"):
            check_callback_destination(url, allow)
    for url in ACCEPTED:
        assert check_callback_destination(url, allow) == url


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f.1", "0X7F.0.0.1", "0177.0.0.1", "017700000001", "127.1", "10.1",
     "1.2.3", "0", "00", "0x0", "4294967295", "255.255.255.255", "0xff.0xffffff",
     "4294967296", "256.1.1.1", "1.2.3.4.5", "08.1.1.1", "0x", "1..2", "", ".", "a.b",
     "example.com", "1.2.3.0x100", "0xfffffffff", "127.0.0.1 "],
)  # fmt: skip
def test_numeric_hosts_are_read_as_the_resolver_reads_them(host: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None
    if host.endswith(" "):  # inet_aton stops at a space; URL hosts have none (refused)
        expected = None
    assert numeric_ipv4(host) == expected


def _resolver(addresses: list[str]) -> Callable[[str, int], list[str]]:
    return lambda _host, _port: addresses


def test_delivery_refuses_names_and_notations_resolving_to_private_addresses(
    receiver: Receiver, defaults: QuarrySettings
) -> None:
    """The sender as the workers build it (workers/resources.py) from default settings."""
    port = receiver.port
    with httpx_client(defaults.webhook_timeout_s) as client:
        sender = HttpxWebhookSender(
            client,
            allow=frozenset(defaults.webhook_allow_addresses),
            timeout_s=defaults.webhook_timeout_s,
        )
        for host in ("localhost", "127.0.0.1", "2130706433", "0x7f.1", "127.1", "0177.0.0.1",
                     "[::ffff:127.0.0.1]", "LOCALHOST"):  # fmt: skip
            with pytest.raises(WebhookRejectedError, match="loopback"):
                sender.send(f"http://{host}:{port}/hook", b"{}", {})
        for answer, category in (
            (["93.184.216.34", "10.0.0.7"], "private"),
            (["169.254.169.254"], "link-local"),
            (["2606:4700::1111", "fd00::5"], "private"),
            (["127.0.0.1"], "loopback"),
        ):
            resolving = HttpxWebhookSender(client, resolve=_resolver(answer))
            with pytest.raises(WebhookRejectedError, match=category):
                resolving.send("https://hooks.example.com/x", b"{}", {})
        assert receiver.received == []
        # The same sender allowing loopback reaches the receiver: the refusals above were
        # the policy, not a failed connection.
        allowing = HttpxWebhookSender(client, allow=frozenset({"loopback"}))
        assert allowing.send(f"http://localhost:{port}/hook", b"{}", {}) == 200
    assert len(receiver.received) == 1
