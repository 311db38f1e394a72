"""One contract for every WebhookSender: the fake and httpx against a real local server.

The httpx case POSTs to a ThreadingHTTPServer on 127.0.0.1 that answers from a script
(a status, or ``"timeout"``: it holds the request past the sender's timeout). Both
senders run with ``allow={"loopback"}`` unless a case says otherwise, and with a fake
resolver for names, so that nothing leaves the machine.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from pipeline.adapters.fakes.webhook_sender import InMemoryWebhookSender
from pipeline.adapters.http.webhook_sender import HttpxWebhookSender, httpx_client
from pipeline.errors import ConfigError, WebhookDeliveryError, WebhookRejectedError
from pipeline.ports import WebhookSender
from pipeline.webhooks.events import Resolver, build_event, signed_headers, verify

SECRET = b"contract-secret"
NOW = 1_700_000_000
TIMEOUT_S = 0.5
SLOW_S = 5.0
LOOPBACK = frozenset({"loopback"})


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host!r}")
        return table[host]

    return resolve


@dataclass
class Receiver:
    """Where a contract case sends: one base URL, a script, what arrived."""

    base: str
    script: Callable[[Iterable[int | str]], None]
    received: Callable[[], list[Received]]
    make: Callable[[frozenset[str], Resolver | None], WebhookSender]
    refuse_connections: Callable[[], None]
    port: int

    def answer(self, *answers: int | str) -> None:
        self.script(answers)

    def sender(
        self, allow: frozenset[str] = LOOPBACK, resolve: Resolver | None = None
    ) -> WebhookSender:
        return self.make(allow, resolve)


@dataclass
class _Server:
    script: deque[int | str] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def _handler(state: _Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), body))
                answer = state.script.popleft() if state.script else 200
            if answer == "timeout":
                state.stop.wait(SLOW_S)
                answer = 200
            try:
                self.send_response(int(answer))
                if 300 <= int(answer) < 400:
                    self.send_header("Location", "http://10.0.0.1/internal")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up (timeout): nobody to answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def _memory_receiver() -> Iterator[Receiver]:
    fakes: list[InMemoryWebhookSender] = []
    pending: list[int | str] = []

    def make(allow: frozenset[str], resolve: Resolver | None) -> WebhookSender:
        fake = InMemoryWebhookSender(allow=allow, resolve=resolve, responses=tuple(pending))
        pending.clear()
        fakes.append(fake)
        return fake

    def received() -> list[Received]:
        found = []
        for fake in fakes:
            for r in fake.requests:
                parts = urlsplit(r.url)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                found.append(Received(path, r.headers, r.body))
        return found

    yield Receiver(
        base="http://127.0.0.1:8099",
        script=pending.extend,
        received=received,
        make=make,
        refuse_connections=lambda: pending.insert(0, "connect-error"),
        port=8099,
    )


@contextmanager
def _http_receiver() -> Iterator[Receiver]:
    state = _Server()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    clients: list[httpx.Client] = []
    stopped = threading.Event()

    def make(allow: frozenset[str], resolve: Resolver | None) -> WebhookSender:
        # follow_redirects=True on the client: the sender must not follow them anyway.
        client = httpx.Client(trust_env=False, follow_redirects=True)
        clients.append(client)
        return HttpxWebhookSender(client, allow=allow, resolve=resolve, timeout_s=TIMEOUT_S)

    def stop_server() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()

    try:
        yield Receiver(
            base=f"http://127.0.0.1:{port}",
            script=state.script.extend,
            received=lambda: list(state.received),
            make=make,
            refuse_connections=stop_server,
            port=port,
        )
    finally:
        state.stop.set()
        stop_server()
        thread.join(timeout=5)
        for client in clients:
            client.close()


@pytest.fixture(params=["memory", "httpx"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    with _memory_receiver() if request.param == "memory" else _http_receiver() as made:
        yield made


def _event(delivery_id: str = "d-1") -> tuple[bytes, dict[str, str]]:
    status = {"job_id": "job-1", "status": "done", "repo": "acme/tööls", "percent": 100.0}
    body = build_event("job.done", status, delivery_id=delivery_id, now=NOW)
    headers = signed_headers(SECRET, body, event="job.done", delivery_id=delivery_id, timestamp=NOW)
    return body, headers


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", [200, 202, 204])
def test_2xx_returns_the_status_and_the_receiver_can_verify(
    receiver: Receiver, status: int
) -> None:
    receiver.answer(status)
    body, headers = _event()
    assert receiver.sender().send(receiver.base + "/hooks/quarry?x=1", body, headers) == status
    (got,) = receiver.received()
    assert got.path == "/hooks/quarry?x=1"
    assert got.body == body
    lowered = {name.lower(): value for name, value in got.headers.items()}
    for name, value in headers.items():
        assert lowered[name.lower()] == value
    verify(SECRET, got.headers, got.body, now=NOW + 1)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_5xx_and_429_are_delivery_errors(receiver: Receiver, status: int) -> None:
    receiver.answer(status)
    with pytest.raises(WebhookDeliveryError, match=str(status)):
        receiver.sender().send(receiver.base + "/hook", *_event())
    assert len(receiver.received()) == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_other_4xx_are_rejected(receiver: Receiver, status: int) -> None:
    receiver.answer(status)
    with pytest.raises(WebhookRejectedError, match=str(status)):
        receiver.sender().send(receiver.base + "/hook", *_event())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_rejected_and_not_followed(receiver: Receiver, status: int) -> None:
    receiver.answer(status, 200)
    with pytest.raises(WebhookRejectedError, match=f"{status}: redirects are not followed"):
        receiver.sender().send(receiver.base + "/hook", *_event())
    assert [r.path for r in receiver.received()] == ["/hook"]


@pytest.mark.timeout(30)
def test_a_receiver_too_slow_to_answer_is_a_delivery_error(receiver: Receiver) -> None:
    receiver.answer("timeout")
    with pytest.raises(WebhookDeliveryError, match="timed out"):
        receiver.sender().send(receiver.base + "/hook", *_event())


@pytest.mark.timeout(30)
def test_a_receiver_that_is_down_is_a_delivery_error(receiver: Receiver) -> None:
    receiver.refuse_connections()
    with pytest.raises(WebhookDeliveryError, match="ConnectError"):
        receiver.sender().send(receiver.base + "/hook", *_event())
    assert receiver.received() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("host", "category"),
    [("127.0.0.1", "loopback"), ("[::ffff:127.0.0.1]", "loopback"), ("[::1]", "loopback")],
)
def test_loopback_is_refused_unless_allowed(receiver: Receiver, host: str, category: str) -> None:
    url = f"http://{host}:{receiver.port}/hook"
    with pytest.raises(WebhookRejectedError, match=rf"refused: .*\({category}\)"):
        receiver.sender(allow=frozenset()).send(url, *_event())
    assert receiver.received() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1:8080/hook", "private"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0:{port}/hook", "unspecified"),
    ],
)
def test_private_literal_addresses_are_refused(receiver: Receiver, url: str, category: str) -> None:
    with pytest.raises(WebhookRejectedError, match=rf"\({category}\)"):
        receiver.sender().send(url.format(port=receiver.port), *_event())
    assert receiver.received() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "addresses", [["10.0.0.1"], ["93.184.216.34", "10.0.0.1"], ["127.0.0.1", "169.254.169.254"]]
)
def test_a_name_with_any_refused_address_is_refused(
    receiver: Receiver, addresses: list[str]
) -> None:
    resolve = fake_resolver({"hooks.example": addresses})
    sender = receiver.sender(resolve=resolve)
    with pytest.raises(
        WebhookRejectedError, match=r"'hooks\.example' is .* \((private|link-local)\)"
    ):
        sender.send(f"http://hooks.example:{receiver.port}/hook", *_event())
    assert receiver.received() == []


@pytest.mark.timeout(30)
def test_a_name_resolving_to_an_allowed_address_is_delivered(receiver: Receiver) -> None:
    sender = receiver.sender(resolve=fake_resolver({"hooks.example": ["127.0.0.1"]}))
    body, headers = _event()
    assert sender.send(f"http://hooks.example:{receiver.port}/hook", body, headers) == 200
    (got,) = receiver.received()
    assert got.body == body
    verify(SECRET, got.headers, got.body, now=NOW)


@pytest.mark.timeout(30)
def test_a_name_that_does_not_resolve_is_a_delivery_error(receiver: Receiver) -> None:
    sender = receiver.sender(resolve=fake_resolver({}))
    with pytest.raises(WebhookDeliveryError, match=r"cannot resolve 'nowhere\.example'"):
        sender.send("https://nowhere.example/hook", *_event())
    assert receiver.received() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "url", ["ftp://x", "file:///etc/passwd", "", "javascript:alert(1)", "http://u:pw@{host}/"]
)
def test_bad_urls_are_rejected_without_leaking_credentials(receiver: Receiver, url: str) -> None:
    target = url.format(host=receiver.base.removeprefix("http://"))
    with pytest.raises(WebhookRejectedError, match="callback URL") as caught:
        receiver.sender().send(target, *_event())
    assert "pw" not in str(caught.value)
    assert receiver.received() == []


# --- httpx only -----------------------------------------------------------------------


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    with _http_receiver() as made:
        yield made


@pytest.mark.timeout(30)
def test_a_pinned_request_names_the_host_and_asks_to_close(http_receiver: Receiver) -> None:
    resolve = fake_resolver({"hooks.example": ["127.0.0.1"]})
    url = f"http://hooks.example:{http_receiver.port}/hook"
    assert http_receiver.sender(resolve=resolve).send(url, *_event()) == 200
    (got,) = http_receiver.received()
    lowered = {name.lower(): value for name, value in got.headers.items()}
    assert lowered["host"] == f"hooks.example:{http_receiver.port}"
    assert lowered["connection"] == "close"


@pytest.mark.timeout(30)
def test_the_next_address_of_a_name_is_tried_when_one_refuses(http_receiver: Receiver) -> None:
    # ::1 has no listener (the server binds 127.0.0.1): like a name with a dead address.
    resolve = fake_resolver({"hooks.example": ["::1", "127.0.0.1"]})
    url = f"http://hooks.example:{http_receiver.port}/hook"
    assert http_receiver.sender(resolve=resolve).send(url, *_event()) == 200
    assert len(http_receiver.received()) == 1


@pytest.mark.timeout(30)
def test_the_system_resolver_is_used_by_default(http_receiver: Receiver) -> None:
    url = f"http://localhost:{http_receiver.port}/hook"
    assert http_receiver.sender().send(url, *_event()) == 200
    with pytest.raises(WebhookRejectedError, match=r"'localhost' is .*\(loopback\)"):
        http_receiver.sender(allow=frozenset()).send(url, *_event())
    assert len(http_receiver.received()) == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("host", ["0x7f.1", "2130706433", "127.1"])
def test_odd_spellings_of_loopback_are_resolved_and_refused(
    http_receiver: Receiver, host: str
) -> None:
    # Not IP literals to Python, but the system resolver reads them as 127.0.0.1.
    url = f"http://{host}:{http_receiver.port}/hook"
    with pytest.raises(WebhookRejectedError, match=r"\(loopback\)"):
        http_receiver.sender(allow=frozenset()).send(url, *_event())
    assert http_receiver.received() == []


# --- construction ---------------------------------------------------------------------


def test_unknown_address_categories_are_a_config_error() -> None:
    with httpx.Client(trust_env=False) as client:
        with pytest.raises(ConfigError, match="'intranet'"):
            HttpxWebhookSender(client, allow=frozenset({"intranet"}))
        with pytest.raises(ValueError, match="timeout_s"):
            HttpxWebhookSender(client, timeout_s=0)
    with pytest.raises(ConfigError, match="'intranet'"):
        InMemoryWebhookSender(allow=frozenset({"intranet"}))


def test_the_fake_answers_200_once_its_script_is_out_and_refuses_bad_scripts() -> None:
    fake = InMemoryWebhookSender(allow=LOOPBACK, responses=(503,))
    with pytest.raises(WebhookDeliveryError, match="503"):
        fake.send("http://localhost/hook", b"{}", {})
    assert fake.send("http://localhost/hook", b"{}", {"X": "1"}) == 200
    assert [r.headers for r in fake.requests] == [{}, {"X": "1"}]
    with pytest.raises(ValueError, match="'slow'"):
        fake.script("slow")


@pytest.mark.timeout(30)
def test_the_client_factory_builds_a_client_the_sender_can_use(http_receiver: Receiver) -> None:
    http_receiver.answer(200, 302)
    with httpx_client(timeout_s=TIMEOUT_S) as client:
        assert client.trust_env is False
        assert client.follow_redirects is False
        sender = HttpxWebhookSender(client, allow=LOOPBACK, timeout_s=TIMEOUT_S)
        body, headers = _event()
        assert sender.send(http_receiver.base + "/hook", body, headers) == 200
        with pytest.raises(WebhookRejectedError, match="302"):
            sender.send(http_receiver.base + "/hook", body, headers)
    assert len(http_receiver.received()) == 2
