"""Job sources: which strings become git, archive or folder sources, and which are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.locations import check_ref, parse_source, redact_url, repo_name_from

GOOD_URLS = [
    "https://github.com/psf/requests.git",
    "https://github.com/psf/requests",
    "https://git.example.com:8443/team/repo.git",
    "ssh://git@github.com/psf/requests.git",
    "ssh://git@host.example.com:2222/srv/repo.git",
    "git@github.com:psf/requests.git",
    "github.com:psf/requests.git",
    "git@[::1]:repo.git",
    "gitserver:/srv/repo.git",  # scp-like with an absolute path: not a broken scheme
    "git@https:/srv/repo.git",  # a user names it: a host called https, oddly
]

# (source, a fragment the error message must hold)
REFUSED = [
    ("file:///etc", "'file' is refused"),
    ("FILE:///etc/passwd", "'file' is refused"),
    ("ext::sh -c touch% /tmp/pwned", "'<transport>::' syntax"),
    ("fd::17", "'<transport>::' syntax"),
    ("transport::https://github.com/x/y", "'<transport>::' syntax"),
    ("--upload-pack=touch /tmp/pwned", "must not start with '-'"),
    ("-oProxyCommand=touch /tmp/pwned", "must not start with '-'"),
    ("git://github.com/psf/requests.git", "'git' is refused"),
    ("http://github.com/psf/requests.git", "'http' is refused"),
    ("ftp://example.com/repo.git", "'ftp' is refused"),
    ("ssh://-oProxyCommand=touch%20x/repo", "no valid host"),
    ("ssh://host/", "names no repository path"),
    ("https://", "no valid host"),
    ("https://host:notaport/x.git", "malformed"),
    ("https://user:secret@github.com/x/y.git", "holds credentials"),
    ("https://ghp_token@github.com/x/y.git", "holds credentials"),
    ("git@host:-x/repo.git", "must not start with '-'"),
    ("repo\n--upload-pack=x", "control characters"),
    ("   ", "source is empty"),
    ("htps:/broken url", "holds whitespace"),
    ("https://github.com/a b/c.git", "holds whitespace"),
    ("htps:/github.com/psf/requests", "'htps:' looks like the scheme 'https://'"),
    ("https:/github.com/psf/requests", "'https:' looks like the scheme 'https://'"),
    ("ssh:/git@host/repo.git", "'ssh:' looks like the scheme 'ssh://'"),
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_https_ssh_and_scp_like_urls_are_git_sources(url: str) -> None:
    assert parse_source(url) == JobSource(SourceKind.GIT, url)
    assert parse_source(f"  {url}\n", "main") == JobSource(SourceKind.GIT, url, "main")


@pytest.mark.parametrize(("text", "fragment"), REFUSED)
def test_unsafe_sources_are_refused_naming_the_source_and_the_allowed_schemes(
    text: str, fragment: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_source(text)
    message = str(caught.value)
    assert fragment in message
    assert "secret" not in message and "ghp_token" not in message
    if text.strip():
        assert redact_url(text.strip()).split("\n")[0][:12] in message


def test_refusals_of_a_scheme_list_what_is_allowed() -> None:
    with pytest.raises(InvalidInputError, match=r"use https://, ssh:// or user@host:path"):
        parse_source("http://example.com/x.git")


def test_file_urls_are_git_sources_only_when_allowed(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/repo.git"
    assert parse_source(url, allow_file_urls=True).kind is SourceKind.GIT
    with pytest.raises(InvalidInputError, match="'file' is refused"):
        parse_source(url)
    with pytest.raises(InvalidInputError, match="absolute path"):
        parse_source("file://relative/repo", allow_file_urls=True)


def test_archives_and_folders(tmp_path: Path) -> None:
    archive = tmp_path / "pkg-1.0.tar.gz"
    archive.write_bytes(b"")
    folder_named_like_archive = tmp_path / "odd.tgz"
    folder_named_like_archive.mkdir()
    assert parse_source(str(archive)).kind is SourceKind.ARCHIVE
    assert (
        parse_source(str(tmp_path / "PKG.TGZ")).kind is SourceKind.ARCHIVE
    )  # missing: fetcher says so
    assert parse_source(str(folder_named_like_archive)).kind is SourceKind.PATH
    assert parse_source(str(tmp_path)) == JobSource(SourceKind.PATH, str(tmp_path))
    assert parse_source("./a:b").kind is SourceKind.PATH


def test_an_archive_ref_names_only_the_ref_and_a_folder_ref_is_left_to_the_folder_check() -> None:
    # Nothing to fetch at a ref in an archive: the ref the job publishes to is the
    # request's (pipeline/refs.py), and the source carries none.
    assert parse_source("/srv/pkg.tar.gz", "main") == JobSource(
        SourceKind.ARCHIVE, "/srv/pkg.tar.gz"
    )
    with pytest.raises(InvalidInputError, match="ref"):
        parse_source("/srv/pkg.tar.gz", "bad..ref")
    # A folder may be a bare repository: the policy decides where the folder is seen.
    assert parse_source("/srv/repo.git", "main") == JobSource(
        SourceKind.PATH, "/srv/repo.git", "main"
    )
    with pytest.raises(InvalidInputError, match="ref"):
        parse_source("/srv/repo.git", "bad..ref")


GOOD_REFS = [
    "main",
    "v1.2.3",
    "release/2.x",
    "feature/a-b_c",
    "HEAD",
    "a" * 40,
    "0123456789abcdef0123456789abcdef01234567",
    "@foo",
    "x" * 255,
]
BAD_REFS = [
    "",
    "-x",
    "--upload-pack=touch /tmp/pwned",
    "-oProxyCommand=x",
    "a..b",
    "a b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[b",
    "a\\b",
    "a\x00b",
    "a\x7fb",
    "/main",
    "main/",
    "a//b",
    "main.",
    ".hidden",
    "a/.b",
    "x.lock",
    "a/b.lock/c",
    "a@{1}",
    "@",
    "x" * 256,
]


@pytest.mark.parametrize("ref", GOOD_REFS)
def test_valid_refs_pass(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", BAD_REFS)
def test_invalid_refs_are_refused_naming_the_ref(ref: str) -> None:
    with pytest.raises(InvalidInputError, match="git ref"):
        check_ref(ref)
    with pytest.raises(InvalidInputError):
        parse_source("https://github.com/psf/requests.git", ref)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        (JobSource(SourceKind.GIT, "https://github.com/psf/requests.git"), "psf/requests"),
        (JobSource(SourceKind.GIT, "https://github.com/psf/requests/"), "psf/requests"),
        (JobSource(SourceKind.GIT, "git@github.com:psf/requests.git"), "psf/requests"),
        (JobSource(SourceKind.GIT, "github.com:psf/requests.git"), "psf/requests"),
        (JobSource(SourceKind.GIT, "ssh://git@host:22/srv/My Repo.git"), "srv/My-Repo"),
        (JobSource(SourceKind.GIT, "https://gl/group/sub/project.git"), "group/sub/project"),
        (JobSource(SourceKind.GIT, "https://h/org-a/utils.git"), "org-a/utils"),
        (JobSource(SourceKind.GIT, "https://h/org-b/utils.git"), "org-b/utils"),
        (JobSource(SourceKind.GIT, "https://h/.org/..x/.git"), "org/x"),
        (JobSource(SourceKind.GIT, "https://h/" + "a" * 150 + "/" + "b" * 100), "b" * 100),
        (JobSource(SourceKind.GIT, "file:///tmp/work/origin"), "origin"),
        (JobSource(SourceKind.ARCHIVE, "/data/requests-2.32.3.tar.gz"), "requests-2.32.3"),
        (JobSource(SourceKind.ARCHIVE, "pkg.TGZ"), "pkg"),
        (JobSource(SourceKind.PATH, "/srv/code/quarry/"), "quarry"),
        (JobSource(SourceKind.PATH, "/srv/code/.hidden"), "hidden"),
    ],
)
def test_default_repository_name_is_the_urls_path_or_the_last_component(
    source: JobSource, name: str
) -> None:
    assert repo_name_from(source) == name


def test_the_current_folder_is_named_after_itself() -> None:
    assert repo_name_from(JobSource(SourceKind.PATH, ".")) == Path.cwd().name


def test_a_source_with_no_usable_name_asks_for_one() -> None:
    with pytest.raises(InvalidInputError, match="name it"):
        repo_name_from(JobSource(SourceKind.ARCHIVE, "/data/.tar.gz"))


def test_redact_url_hides_user_and_password() -> None:
    text = "fatal: could not read from https://bob:s3cret@host/x.git and ssh://git@h/y"
    assert redact_url(text) == "fatal: could not read from https://***@host/x.git and ssh://***@h/y"
