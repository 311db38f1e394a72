"""Hand-written hostile sources: refused at submission naming the source (the API's 4xx),
and refused again by the fetcher before git runs, should one reach it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.errors import InvalidInputError, PermanentError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.policy import LocalSourcePolicy
from tests.reliability.submission import context, names_a_field, submit_like_the_api

pytestmark = pytest.mark.timeout(60)

MARKER = "/tmp/quarry-reliability-pwned"

REFUSED_SOURCES = [
    "file:///etc",
    "file:///tmp/repo.git",
    "file://localhost/etc",
    f"ext::sh -c touch% {MARKER}",
    f"ext::sh -c 'touch {MARKER}'",
    "fd::17",
    "fd::0,1/repo",
    "git://github.com/psf/requests.git",
    "http://github.com/psf/requests.git",
    "http://user:secret@github.com/psf/requests.git",
    "https://user:secret@github.com/psf/requests.git",
    "https://ghp_token@github.com/psf/requests.git",
    "ssh://user:secret@host/repo.git",
    "ftp://host/repo.git",
    "gopher://host/repo",
    f"--upload-pack=touch {MARKER}",
    f"-c core.sshCommand='touch {MARKER}' https://h/r",
    f"ssh://-oProxyCommand=touch%20{MARKER}/repo",
    "ssh://-oProxyCommand=x@host/repo",
    "git@-oProxyCommand=x:repo",
    "host:-upload-pack=x",
    "https://github.com",
    "https://",
    "https:///path",
    "https://[::1/repo",
    "https://host:99999/repo",
    "https://exa mple.com/repo",
    "https://host/repo\nfatal",
    "https://host/\x00repo",
    "relative/folder",
    "relative.tar.gz",
    "uploads/pkg.tgz",
    "./repo",
    "~/repo",
    "\udcff/repo",
]


@pytest.mark.parametrize("source", REFUSED_SOURCES)
def test_a_hostile_source_is_refused_at_submission_naming_it(source: str) -> None:
    with pytest.raises((PermanentError, ValidationError)) as caught:
        submit_like_the_api(context(), {"source": source, "repo": "r"})
    message = str(caught.value)
    assert names_a_field(message), message
    assert "secret" not in message and "ghp_token" not in message  # credentials redacted
    assert not Path(MARKER).exists()


@pytest.mark.parametrize(
    "source",
    [s for s in REFUSED_SOURCES if "://" in s or "::" in s or s.startswith(("-", "git@"))],
)
def test_the_fetcher_refuses_a_hostile_git_source_before_running_git(
    source: str, tmp_path: Path
) -> None:
    fetcher = LocalSourceFetcher(
        policy=LocalSourcePolicy.build([Path("/tmp")], []),
        max_archive_bytes=1,
        max_extracted_bytes=1,
        max_members=1,
        clone_timeout_s=5.0,
    )
    with pytest.raises(InvalidInputError) as caught:
        fetcher.fetch(JobSource(SourceKind.GIT, source), tmp_path)
    assert "secret" not in str(caught.value)
    assert not (tmp_path / "checkout").exists()
    assert not Path(MARKER).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ref": "--upload-pack=x"}, "ref"),
        ({"ref": "main\x00"}, "ref"),
        ({"ref": "a..b"}, "ref"),
        ({"ref": "\udcff"}, "ref"),
        ({"repo": "../etc"}, "repository"),
        ({"repo": "\x00"}, "repository"),
        ({"commit": "abc\x00"}, "commit"),
        ({"commit": "\ud800"}, "commit"),
        ({"idempotency_key": "k\x00"}, "idempotency"),
        ({"callback_url": "file:///etc/passwd"}, "callback URL"),
        ({"callback_url": "http://user:pw@hook.example/x"}, "callback URL"),
        ({"callback_url": "gopher://hook.example/x"}, "callback URL"),
        ({"callback_url": "https://hook.example/\udcff"}, "callback URL"),
    ],
)
def test_other_hostile_fields_are_refused_naming_the_field(
    body: dict[str, str], field: str
) -> None:
    request = {"source": "https://github.com/psf/requests.git", "repo": "requests", **body}
    with pytest.raises((PermanentError, ValidationError)) as caught:
        submit_like_the_api(context(), request)
    # The body model (422) names "callback_url"; the checks say "callback URL".
    assert field.lower().replace(" ", "_") in str(caught.value).lower().replace(" ", "_")
