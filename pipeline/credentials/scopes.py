"""Which git URLs a credential applies to: its scope, a URL prefix.

A scope is ``https://host[:port][/path]`` for a token or ``ssh://[user@]host[:port][/path]``
(or scp-like ``user@host:path``) for a deploy key. A job's URL is in scope when scheme,
host and port are the same (the default port written or not), the scope's user (if it
names one) is the URL's, and the URL's path is the scope's path or lies below it at a
``/`` boundary (a trailing ``.git`` is ignored on both sides): the scope
``https://git.example.com/acme`` covers ``https://git.example.com/acme/api.git`` but not
``https://git.example.com/acme-evil/x`` nor ``https://git.example.com.evil.org/acme``.
Among a tenant's credentials the longest matching path wins; a tenant's scopes are
unique, so the choice is never ambiguous.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.errors import InvalidInputError

DEFAULT_PORTS = {"https": 443, "ssh": 22}
MAX_SCOPE_CHARS = 1024
_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]*$|^\[[0-9a-f:.]+\]$")
_USER = re.compile(r"^[A-Za-z0-9._~-]+$")
_SCP = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._~-]+)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.*)$"
)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class GitAddress:
    """A git URL taken apart: scheme (https or ssh), user, host, port and path."""

    scheme: str
    user: str | None
    host: str
    port: int
    path: str  # no leading or trailing '/', no trailing '.git'

    def text(self) -> str:
        """The canonical scope string of this address."""
        user = f"{self.user}@" if self.user else ""
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{user}{self.host}{port}/{self.path}".rstrip("/")

    def known_hosts_name(self) -> str:
        """How ssh names this host in known_hosts: ``host``, or ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def covers(self, other: GitAddress) -> bool:
        if (self.scheme, self.host, self.port) != (other.scheme, other.host, other.port):
            return False
        if self.user is not None and self.user != other.user:
            return False
        return not self.path or other.path == self.path or other.path.startswith(self.path + "/")


def address_of(url: str) -> GitAddress | None:
    """The address of an https, ssh or scp-like git URL; None for anything else (a
    ``file://`` URL, a local path), which no credential applies to."""
    try:
        return _parse(url.strip(), "url")
    except InvalidInputError:
        return None


def parse_scope(scope: str) -> GitAddress:
    """A scope as a client wrote it; InvalidInputError naming ``scope`` otherwise."""
    if len(scope) > MAX_SCOPE_CHARS:
        raise InvalidInputError(f"scope: use at most {MAX_SCOPE_CHARS} characters")
    return _parse(scope.strip(), "scope")


def _parse(text: str, field: str) -> GitAddress:
    if not text or _CONTROL.search(text):
        raise InvalidInputError(f"{field}: empty or holds spaces or control characters")
    if "://" not in text:
        scp = _SCP.match(text)
        if scp is None:
            raise InvalidInputError(
                f"{field}: use https://host/path, ssh://[user@]host[:port]/path or user@host:path"
            )
        return _address(
            "ssh",
            scp.group("user"),
            scp.group("host"),
            port=None,
            path=scp.group("path"),
            field=field,
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"{field}: malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidInputError(f"{field}: scheme {scheme!r}; use https:// or ssh://")
    if parts.password is not None or (scheme == "https" and parts.username):
        raise InvalidInputError(f"{field}: must not hold a password or token")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"{field}: must not hold a query or fragment")
    return _address(
        scheme, parts.username, parts.hostname or "", port=port, path=parts.path, field=field
    )


def _address(
    scheme: str, user: str | None, host: str, *, port: int | None, path: str, field: str
) -> GitAddress:
    host = host.lower()
    if not _HOST.match(host):
        raise InvalidInputError(f"{field}: no valid host")
    if user is not None and not _USER.match(user):
        raise InvalidInputError(f"{field}: the user holds characters ssh does not take")
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    if any(part in {".", ".."} for part in path.split("/")):
        raise InvalidInputError(f"{field}: the path must not hold '.' or '..' components")
    return GitAddress(scheme, user, host, port or DEFAULT_PORTS[scheme], path)


def best_scope(url: str, scopes: list[str]) -> str | None:
    """The scope among ``scopes`` (canonical strings) that covers ``url`` most narrowly."""
    target = address_of(url)
    if target is None:
        return None
    covering = [s for s in scopes if parse_scope(s).covers(target)]
    return max(covering, key=lambda s: len(parse_scope(s).path), default=None)
