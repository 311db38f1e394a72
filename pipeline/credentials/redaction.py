"""Scrubbing secrets out of text before it reaches a job record, a log or an answer.

git and ssh write their own messages; a server may echo what it was sent. Whatever the
fetcher reports goes through :func:`redact` with the fragments of the credential in use:
the token itself, its Basic-auth form and its URL-encoded form, or every line of a
private key's body.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import quote

from pipeline.credentials.material import CredentialKind, GitCredential

MASK = "***"
_MIN_FRAGMENT_CHARS = 4


def secret_fragments(credential: GitCredential) -> list[str]:
    """The strings that must never appear in a message about a fetch with ``credential``."""
    secret = credential.secret
    if credential.kind is CredentialKind.HTTPS_TOKEN:
        basic = base64.b64encode(f"{credential.username}:{secret}".encode()).decode()
        return [secret, quote(secret, safe=""), basic]
    body = [line.strip() for line in secret.splitlines() if not line.startswith("-----")]
    return [line for line in body if line]


def redact(text: str, fragments: Iterable[str]) -> str:
    """``text`` with every fragment (the longest first) replaced by ``***``."""
    for fragment in sorted({f for f in fragments if len(f) >= _MIN_FRAGMENT_CHARS}, key=len)[::-1]:
        text = text.replace(fragment, MASK)
    return text
