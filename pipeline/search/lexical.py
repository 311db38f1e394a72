"""The text behind full-text search: words of code, with identifiers split into their parts.

``lexical_text`` turns chunk text (and, later, search queries: the same function on both
sides keeps them matching) into lower-case words separated by single spaces. Every
identifier is kept whole and followed by its parts when it has more than one:
``getUserName`` gives ``getusername get user name``, ``parse_http_header`` gives
``parse_http_header parse http header``, ``HTTPServer`` gives ``httpserver http server``.
Digits stay with the letters before them (``utf8Decode`` -> ``utf8 decode``); leading and
trailing underscores are dropped (``__init__`` -> ``init``). Punctuation never reaches the
output, so PostgreSQL's parser cannot read paths, hosts or versions as single tokens.

PostgreSQL's default text-search parser splits words at ``_``, so in the ``simple``
tsvector a snake_case identifier is present through its parts (with positions, so a phrase
query still finds them in order) while a camelCase one is also present whole.

Camel-case splitting applies to ASCII identifiers only; other identifiers are split at
underscores and lower-cased.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["identifier_parts", "lexical_text"]

_WORD = re.compile(r"\w+")
# An acronym (stopping before the capital that starts the next word), a capitalised or
# lower-case word, or a run of digits; digits after letters belong to those letters.
_PART = re.compile(r"[A-Z]+(?![a-z])[0-9]*|[A-Z]?[a-z]+[0-9]*|[0-9]+")
_CACHE_SIZE = 1 << 16


def identifier_parts(identifier: str) -> list[str]:
    """The lower-case words of one identifier (``HTTPServer`` -> ``["http", "server"]``)."""
    core = identifier.strip("_")
    if core.isascii():
        return [p.lower() for segment in core.split("_") for p in _PART.findall(segment)]
    return [segment.lower() for segment in core.split("_") if segment]


@lru_cache(maxsize=_CACHE_SIZE)
def _expand(token: str) -> str:
    # Code repeats its identifiers, so the cache answers most tokens.
    whole = token.strip("_").lower()
    if not whole:
        return ""
    parts = identifier_parts(token)
    if len(parts) <= 1:
        return whole
    return f"{whole} {' '.join(parts)}"


def lexical_text(text: str) -> str:
    """Lower-case words of ``text``, each identifier whole and then split into its parts."""
    return " ".join(filter(None, map(_expand, _WORD.findall(text))))
