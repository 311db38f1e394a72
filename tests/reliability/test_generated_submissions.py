"""Generated hostile job requests: accepted and storable, or refused naming the field.

Sources of every shape (each scheme git knows, ``<transport>::`` helpers, scp-like
forms, credentials, option-like strings, control characters, lone surrogates, archives
and folders), refs, repository names, commits, callback URLs and idempotency keys go
through the checks ``POST /v1/jobs`` makes (:mod:`tests.reliability.submission`).
Refused: a PermanentError whose message names the input (the API's 4xx), or the body
model's ValidationError (422). A request that is accepted only names an https/ssh git
URL or an absolute local path, and every text of it can be stored.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.errors import PermanentError
from pipeline.jobs import SourceKind
from pipeline.sources.locations import check_git_url, check_ref
from pipeline.webhooks.events import check_callback_url
from tests.reliability.profiles import budget, counted
from tests.reliability.submission import context, names_a_field, submit_like_the_api

pytestmark = pytest.mark.timeout(300, method="thread")

TRANSPORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.-]*::")

_PREFIXES = [
    "", "https://", "https://github.com/", "ssh://", "ssh://git@host/", "git@github.com:",
    "http://", "http://user:pw@host/", "https://token@github.com/", "https://u:p@h/",
    "git://", "file://", "file:///", "ftp://", "ext::", "ext::sh -c ", "fd::", "transport::",
    "-", "--upload-pack=", "-oProxyCommand=", "ssh://-oProxyCommand=x/", "git@-x:",
    "/", "/tmp/", "./", "../", "~/", "C:\\", "\\\\server\\", "[::1]:", "https://[::1",
    "https://h:99999/", "HTTPS://", "sSh://", "/abs/archive.tar.gz", "rel.tgz",
]  # fmt: skip
_NASTY = [
    "\x00", "\n", "\r", "\t", " ", "\x7f", "\x1b", "\udcff", "\ud800", "\u202e", "\ufeff",
    "..", "../", "@", ":", "#", "?", "%00", "%2e%2e/", "\\", "'", '"', "`", "$(id)", ";",
    "|", "&", "*", "~", "^", "[", "{", "@{", ".lock", "//", "\u00e9", "\U0001f600",
]  # fmt: skip

anything = st.text(st.characters(codec=None, categories=None), max_size=40)
pieces = st.lists(st.one_of(st.sampled_from(_NASTY), anything), max_size=5).map("".join)
sources = st.builds(lambda p, s: p + s, st.sampled_from(_PREFIXES), pieces)
maybe_text = st.one_of(st.none(), st.none(), pieces, st.text(max_size=300))


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"source": draw(sources)}
    for field in ("repo", "ref", "commit", "idempotency_key"):
        value = draw(maybe_text)
        if value is not None:
            body[field] = value
    callback = draw(st.one_of(st.none(), sources, st.just("https://hooks.example/x" + "a" * 2100)))
    if callback is not None:
        body["callback_url"] = callback
    return body


def storable(text: str) -> None:
    text.encode("utf-8")
    assert "\x00" not in text


@given(bodies())
@budget(900)
@counted
def test_a_hostile_job_request_is_accepted_safely_or_refused_naming_the_field(
    body: dict[str, Any],
) -> None:
    try:
        job = submit_like_the_api(context(), body)
    except ValidationError:
        return  # the body model: 422, naming the field
    except PermanentError as exc:
        assert names_a_field(str(exc)), str(exc)
        return
    source = job.source
    if source.kind is SourceKind.GIT:
        scheme = urlsplit(source.location).scheme.lower() if "://" in source.location else "ssh"
        assert scheme in ("https", "ssh"), source.location
        assert not TRANSPORT.match(source.location)  # git's <transport>::<address>
        assert not source.location.startswith("-")
    else:
        assert source.location.startswith("/"), source.location
    for text in (source.location, source.ref, job.commit, job.callback_url, job.repo.name):
        if text is not None:
            storable(text)


@given(sources, st.one_of(st.none(), pieces))
@budget(300)
@counted
def test_git_url_ref_and_callback_checks_refuse_with_a_named_error(
    text: str, ref: str | None
) -> None:
    for check in (check_git_url, check_callback_url):
        try:
            check(text)
        except PermanentError as exc:
            assert names_a_field(str(exc)), str(exc)
    if ref is not None:
        try:
            check_ref(ref)
        except PermanentError as exc:
            assert "ref" in str(exc)
