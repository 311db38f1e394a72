"""A push hook: which tenant's repository a platform's push events index, where Quarry
clones it from, and how a delivery proves it came from the platform.

The clone URL is the tenant's, given when it registered the hook (and checked then by
the source policy); a delivery never names what is cloned. The hook id in the hook's URL
is random and opaque (not the tenant, not the repository).

A hook's secret is derived, never stored: HMAC-SHA256 of the hook id, tenant and
platform under the service's webhook secret (``QUARRY_WEBHOOK_SECRET``), as each
tenant's delivery secret is (pipeline/webhooks/tenant_keys.py), with its own context.
GitHub's signature check needs the secret itself, so it must be kept somewhere: derived,
a copy of the database holds none, and no credentials key (``QUARRY_CREDENTIALS_KEY``,
optional) is needed for hooks to work. It is answered once, at registration; a new
secret is a new hook. Changing the master secret changes every hook's secret.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from pipeline.errors import ConfigError, InvalidInputError
from pipeline.models import RepoRef

SECRET_PREFIX: Final = "phsec_"  # noqa: S105 (a prefix, not a secret)
HOOK_ID_PREFIX: Final = "ph_"
GITHUB_SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
GITLAB_TOKEN_HEADER: Final = "X-Gitlab-Token"  # noqa: S105 (a header's name)
_CONTEXT: Final = b"quarry.push-hook.secret.v1"
_HOOK_ID = re.compile(r"^ph_[0-9a-f]{32}$")
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>.+)$")


class Platform(enum.StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


def check_platform(text: str) -> Platform:
    try:
        return Platform(text)
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        raise InvalidInputError(f"platform: {text[:40]!r} is not one of {known}") from None


@dataclass(frozen=True, slots=True)
class PushHook:
    """A registered hook: ``credential`` is the name of the tenant's git credential that
    covers ``clone_url`` (None for a public repository)."""

    hook_id: str
    tenant: str
    repo: str
    platform: Platform
    clone_url: str
    credential: str | None
    created_at: float

    @property
    def repo_ref(self) -> RepoRef:
        return RepoRef(self.tenant, self.repo)

    def public(self) -> dict[str, Any]:
        """The hook as the API lists it: no secret."""
        return {
            "hook_id": self.hook_id,
            "repo": self.repo,
            "platform": self.platform.value,
            "clone_url": self.clone_url,
            "credential": self.credential,
            "created_at": self.created_at,
        }


def new_hook_id() -> str:
    return HOOK_ID_PREFIX + secrets.token_hex(16)


def is_hook_id(text: str) -> bool:
    return _HOOK_ID.match(text) is not None


def hook_secret(master: bytes, hook: PushHook) -> str:
    """The secret the platform signs (GitHub) or sends (GitLab) with ``hook``'s deliveries."""
    if not master:
        raise ConfigError("webhook secret is empty: set QUARRY_WEBHOOK_SECRET")
    parts = (hook.hook_id, hook.tenant, hook.platform.value)
    message = b"\x00".join((_CONTEXT, *(p.encode("utf-8") for p in parts)))
    digest = hmac.new(master, message, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def github_signature(secret: str, body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` value: ``sha256=`` + HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def github_signed(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not header:
        return False
    try:
        given = header.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, github_signature(secret, body).encode("ascii"))


def gitlab_token_matches(secret: str, header: str | None) -> bool:
    """Whether GitLab's ``X-Gitlab-Token`` is the hook's secret (constant time)."""
    if not header:
        return False
    try:
        given = header.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, secret.encode("ascii"))


def repo_key(url: str) -> tuple[str, str] | None:
    """The host and project path a git URL names, for comparing a payload's repository
    with the registered one: ``https://GitHub.com/Acme/W.git``, ``ssh://git@github.com/acme/w``
    and ``git@github.com:acme/w.git`` are all ``("github.com", "acme/w")``. The user, the
    port, the scheme and a ``.git`` suffix do not count; names compare case-insensitively
    (GitHub's and GitLab's do). None for text that is no such URL."""
    if not isinstance(url, str) or not url:
        return None
    if "://" in url:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return None
        path = parts.path
    else:
        scp = _SCP.match(url)
        if scp is None:
            return None
        host, path = scp.group("host"), scp.group("path")
    path = path.strip("/")
    path = path.removesuffix(".git").strip("/")
    if not host or not path:
        return None
    return host.lower(), path.casefold()
