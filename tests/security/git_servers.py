"""Real git servers on loopback for the private-repository tests: ``git http-backend``
behind HTTP Basic auth over TLS (a test CA signs its certificate), and OpenSSH's
``sshd`` taking one deploy key. Both serve bare repositories from a folder.

A missing ``git-http-backend`` or ``sshd`` (Debian: git, openssh-server) fails the tests
that need it: `make test` installs them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import getpass
import hmac
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.stackutil import free_ports

HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
SBIN = "/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", "")


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def bare_repo(tree: Path, dest: Path) -> Path:
    """``tree`` committed (branch main) and cloned bare to ``dest``."""
    git("init", "-q", "-b", "main", str(tree))
    git("add", "-A", cwd=tree)
    git("commit", "-q", "-m", "private code", cwd=tree)
    git("clone", "-q", "--bare", str(tree), str(dest))
    return dest


# --- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestCertificates:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def loopback_certificates(folder: Path) -> TestCertificates:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("quarry test CA"))
        .issuer_name(_name("quarry test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TestCertificates(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


# --- git http-backend behind Basic auth --------------------------------------------------------


class _BackendHandler(BaseHTTPRequestHandler):
    server: GitHttpServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        server = self.server
        sent = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{server.user}:{server.token}".encode()).decode()
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            server.refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": server.user,
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(
            [str(HTTP_BACKEND)], input=body, env=env, capture_output=True, check=False
        )
        # A CGI's headers end with an empty line, CRLF or LF.
        crlf, lf = done.stdout.find(b"\r\n\r\n"), done.stdout.find(b"\n\n")
        split, width = (crlf, 4) if crlf != -1 and (lf == -1 or crlf < lf) else (lf, 2)
        head, payload = done.stdout[:split], done.stdout[split + width :]
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        server.served += 1
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


class GitHttpServer(ThreadingHTTPServer):
    """HTTPS git server; ``user``/``token`` may be changed (a rotation on the forge)."""

    daemon_threads = True
    root: Path
    user: str
    token: str
    refused: int
    served: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def git_http_server(
    root: Path, certificates: TestCertificates, *, user: str, token: str
) -> Iterator[GitHttpServer]:
    assert HTTP_BACKEND.exists(), f"{HTTP_BACKEND} is missing: install Debian's git"
    server = GitHttpServer(("127.0.0.1", 0), _BackendHandler)
    server.root, server.user, server.token, server.refused, server.served = root, user, token, 0, 0
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- sshd with a deploy key ----------------------------------------------------------------------


@dataclass
class SshKey:
    private_openssh: str
    public_line: str  # "ssh-ed25519 AAAA..."


def new_ssh_key() -> SshKey:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return SshKey(private, public.decode())


@dataclass
class SshServer:
    port: int
    user: str
    host_key: SshKey
    authorized: list[SshKey] = field(default_factory=list)

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.public_line}"

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def sshd(folder: Path, deploy_key: SshKey) -> Iterator[SshServer]:
    """sshd on a free loopback port, as the current user, taking ``deploy_key`` only."""
    binary = shutil.which("sshd", path=SBIN)
    assert binary is not None, "sshd is missing: install Debian's openssh-server"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    host_key = new_ssh_key()
    host_file = folder / "host_ed25519"
    host_file.write_text(host_key.private_openssh)
    host_file.chmod(0o600)
    (folder / "authorized_keys").write_text(deploy_key.public_line + "\n")
    (port,) = free_ports(1)
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_file}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel VERBOSE\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
    log = (folder / "sshd.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_port(port, proc, folder / "sshd.log")
        yield SshServer(port, getpass.getuser(), host_key, [deploy_key])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"sshd did not listen on {port}: {log.read_text(errors='replace')}")
