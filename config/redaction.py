"""Redaction of credentials in URLs and DSNs before they are printed or logged.

A password hides in a URL's userinfo (``redis://:pw@host``) or in its query: libpq
reads ``postgresql://host/db?password=pw`` and redis-py ``redis://host?password=pw``,
so both places are redacted.

Must not import: anything of Quarry (config is the leaf).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that carry a credential (compared in lower case).
SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pass", "pwd", "sslpassword", "secret", "token", "access_token"}
)


def _query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_PARAMETERS for name, _ in pairs):
        return query
    hidden = [(n, "***" if n.lower() in SECRET_PARAMETERS else v) for n, v in pairs]
    return urlencode(hidden, safe="*")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (in the userinfo and in the
    query's password-like parameters); the user name stays."""
    try:
        parts = urlsplit(url)
        port = None if parts.password is None else parts.port
    except ValueError:
        return "<unparsable url>"
    query = _query(parts.query)
    if query != parts.query:  # in place: urlunsplit would drop the // of unix:///path
        head, _, rest = url.partition("?")
        _, hash_mark, fragment = rest.partition("#")
        url = f"{head}?{query}{hash_mark}{fragment}"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
