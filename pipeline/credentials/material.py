"""What a credential is and what a client may send: names, tokens, SSH private keys and
the known_hosts lines that pin a server's host key.

Every check raises InvalidInputError naming the field (``name``, ``username``, ``token``,
``private_key``, ``known_hosts``) and never quoting a secret. A private key is kept in
OpenSSH format whatever format it came in (PEM or OpenSSH, unencrypted: a passphrase
would have to be stored next to it); a known_hosts entry is kept as one line per key,
``<host> <type> <key>``, with the host written as ssh looks it up (``[host]:port`` off
port 22): hashed names (``|1|salt|hash``) are checked against the scope's host, wildcards
and negations are refused, and so are ``@cert-authority`` / ``@revoked`` markers.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pipeline.credentials.scopes import GitAddress
from pipeline.errors import InvalidInputError

MAX_TOKEN_CHARS = 4096
MAX_KEY_CHARS = 16_384
MAX_KNOWN_HOSTS_LINES = 8
DEFAULT_USERNAME = "x-access-token"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
_TOKEN_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_SSH_KEY_TYPES = (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)


class CredentialKind(StrEnum):
    HTTPS_TOKEN = "https_token"  # noqa: S105 (a kind's name, not a password)
    SSH_KEY = "ssh_key"

    @property
    def scheme(self) -> str:
        return "https" if self is CredentialKind.HTTPS_TOKEN else "ssh"


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential as stored: everything but the secret in clear, the secret sealed."""

    tenant: str
    name: str
    kind: CredentialKind
    scope: str
    username: str | None
    known_hosts: str | None
    fingerprint: str | None
    key_id: str
    ciphertext: bytes = field(repr=False)
    created_at: float
    rotated_at: float

    def public(self) -> dict[str, object]:
        """What the API lists: never the secret, nor its ciphertext."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "scope": self.scope,
            "username": self.username,
            "fingerprint": self.fingerprint,
            "known_hosts": self.known_hosts,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
        }


@dataclass(frozen=True, slots=True)
class GitCredential:
    """A credential opened for one fetch: the fetcher hands it to git, never to a log."""

    name: str
    kind: CredentialKind
    scope: str
    username: str | None
    secret: str = field(repr=False)
    known_hosts: str | None = None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            "name: use 1-63 characters, lower-case letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def check_username(username: str | None) -> str:
    if username is None or username == "":
        return DEFAULT_USERNAME
    if not _USERNAME.match(username):
        raise InvalidInputError("username: use 1-100 letters, digits or . _ @ + -")
    return username


def check_token(token: str) -> str:
    if not token:
        raise InvalidInputError("token: empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidInputError(f"token: longer than {MAX_TOKEN_CHARS} characters")
    if _TOKEN_FORBIDDEN.search(token):
        raise InvalidInputError("token: must not hold newlines, spaces or control characters")
    return token


def check_private_key(text: str) -> tuple[str, str]:
    """The key in OpenSSH format and its public key's fingerprint (``SHA256:...``)."""
    if not text.strip() or len(text) > MAX_KEY_CHARS:
        raise InvalidInputError(f"private_key: empty or longer than {MAX_KEY_CHARS} characters")
    data = text.strip().encode("utf-8", "replace") + b"\n"
    key: object
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidInputError(
            "private_key: the key is protected by a passphrase; give an unencrypted deploy key"
        ) from None
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise InvalidInputError(
            "private_key: not an SSH private key (OpenSSH or PEM format, Ed25519, RSA or ECDSA)"
        ) from None
    if not isinstance(key, _SSH_KEY_TYPES):
        raise InvalidInputError("private_key: use an Ed25519, RSA or ECDSA key")
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return openssh, fingerprint_of(public.split()[1])


def fingerprint_of(blob_b64: bytes | str) -> str:
    """ssh-keygen's ``SHA256:...`` fingerprint of a base64 public key blob."""
    raw = base64.b64decode(blob_b64)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def check_known_hosts(text: str | None, address: GitAddress) -> tuple[str, str]:
    """The pinned lines for ``address``'s host, and the first key's fingerprint."""
    lines = [ln.strip() for ln in (text or "").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    host = address.known_hosts_name()
    if not lines:
        raise InvalidInputError(
            f"known_hosts: required for an SSH key: the server's host key line for {host}"
            f" (`ssh-keyscan -p {address.port} {address.host}`, checked out of band)"
        )
    if len(lines) > MAX_KNOWN_HOSTS_LINES:
        raise InvalidInputError(f"known_hosts: at most {MAX_KNOWN_HOSTS_LINES} lines")
    pinned = [_pinned_line(line, host) for line in lines]
    return "\n".join(pinned) + "\n", fingerprint_of(pinned[0].split()[2])


def _pinned_line(line: str, host: str) -> str:
    fields = line.split()
    if fields[0].startswith("@"):
        raise InvalidInputError(f"known_hosts: {fields[0]} lines are not taken; pin the host key")
    if len(fields) < 3:
        raise InvalidInputError("known_hosts: a line is '<host> <key type> <base64 key>'")
    names, key_type, blob = fields[0], fields[1], fields[2]
    if not any(_names_host(pattern, host) for pattern in names.split(",")):
        raise InvalidInputError(
            f"known_hosts: the line is for {names.split(',')[0]!r}, not for {host!r} (the"
            " scope's host; off port 22 ssh names it [host]:port)"
        )
    try:
        serialization.load_ssh_public_key(f"{key_type} {blob}".encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error, UnsupportedAlgorithm):
        raise InvalidInputError(f"known_hosts: the {key_type!r} key does not parse") from None
    return f"{host} {key_type} {blob}"


def _names_host(pattern: str, host: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt, digest = pattern.split("|")
            mac = hmac.new(base64.b64decode(salt), host.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, binascii.Error):
            raise InvalidInputError("known_hosts: a hashed host name does not parse") from None
    if any(c in pattern for c in "*?!"):
        raise InvalidInputError("known_hosts: wildcards and negations are refused; pin one host")
    return pattern.lower() == host
