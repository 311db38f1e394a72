"""The local-source policy: allowed roots, never the service's own folders, no way out by
``..`` or a symlink, and the same answer whether a path exists or not."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.policy import LocalSourcePolicy


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """An allowed root with a repository, the service's data folder beside it, and
    symlinks from inside the root to outside places."""
    allowed, data, outside = tmp_path / "allowed", tmp_path / "data", tmp_path / "outside"
    for folder in (allowed / "repo", data / "stack", data / "uploads", outside):
        folder.mkdir(parents=True)
    (allowed / "repo" / "a.py").write_text("x = 1\n")
    (data / "stack" / "secrets.json").write_text('{"api_token": "s3cret"}')
    (data / "uploads" / "u.tar.gz").write_bytes(b"")
    (allowed / "to-outside").symlink_to(outside)
    (allowed / "to-data").symlink_to(data / "stack")
    (allowed / "to-etc").symlink_to("/etc")
    (allowed / "to-repo").symlink_to(allowed / "repo")
    (allowed / "data-link").symlink_to(data)
    return {"allowed": allowed, "data": data, "outside": outside}


def policy(layout: dict[str, Path]) -> LocalSourcePolicy:
    return LocalSourcePolicy.build(
        [layout["allowed"]], [layout["data"]], uploads=layout["data"] / "uploads"
    )


def path_source(location: str) -> JobSource:
    kind = SourceKind.ARCHIVE if location.endswith(".tar.gz") else SourceKind.PATH
    return JobSource(kind, location)


@pytest.mark.parametrize(
    ("relative", "fragment"),
    [
        ("outside", "not under a folder this service allows"),
        ("data", "service's own data"),
        ("data/stack", "service's own data"),
        ("data/stack/secrets.json", "service's own data"),
        ("data/uploads/u.tar.gz", "service's own data"),
        ("allowed/to-outside", "not under a folder this service allows"),
        ("allowed/to-etc", "not under a folder this service allows"),
        ("allowed/to-data", "service's own data"),
        ("allowed/data-link/stack", "service's own data"),
        ("allowed/repo/../../outside", "'..'"),
        ("allowed/repo/..", "'..'"),
        ("allowed/no-such-folder/../../data", "'..'"),
        (".", "service's own data"),  # tmp_path itself holds the data folder
        ("outside/missing", "not under a folder this service allows"),
    ],
)
def test_a_tenant_cannot_name_a_path_out_of_the_allowed_roots(
    layout: dict[str, Path], relative: str, fragment: str
) -> None:
    location = str(layout["allowed"].parent) + "/" + relative
    with pytest.raises(InvalidInputError) as caught:
        policy(layout).check_submission(path_source(location))
    assert fragment in str(caught.value)
    assert repr(location) in str(caught.value)  # the message names the source


@pytest.mark.parametrize("location", ["/etc", "/etc/passwd", "/", "/proc/self/environ"])
def test_system_paths_are_refused(layout: dict[str, Path], location: str) -> None:
    # "/" holds the data folder as well as being out of the roots: either reason will do.
    with pytest.raises(InvalidInputError, match=f"source '{location}' is refused"):
        policy(layout).check_submission(path_source(location))


def test_a_missing_path_and_an_existing_one_outside_get_the_same_answer(
    layout: dict[str, Path],
) -> None:
    answers = []
    for name in ("outside", "outside-missing"):
        with pytest.raises(InvalidInputError) as caught:
            policy(layout).check_submission(path_source(str(layout["outside"].parent / name)))
        answers.append(str(caught.value).replace(name, "NAME"))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("relative", ["allowed/repo", "allowed/to-repo", "allowed/repo/a.py"])
def test_paths_under_an_allowed_root_are_accepted(layout: dict[str, Path], relative: str) -> None:
    source = path_source(str(layout["allowed"].parent / relative))
    assert policy(layout).check_submission(source) == source


@pytest.mark.parametrize("relative", ["allowed/new.tar.gz", "allowed/gone", "allowed/repo/b.py"])
def test_a_missing_path_under_an_allowed_root_is_refused_at_submission(
    layout: dict[str, Path], relative: str
) -> None:
    location = str(layout["allowed"].parent / relative)
    with pytest.raises(InvalidInputError, match=f"source '{location}' does not exist"):
        policy(layout).check_submission(path_source(location))


def test_a_root_this_host_does_not_mount_leaves_the_check_to_the_ingest_hosts(
    tmp_path: Path,
) -> None:
    unmounted = tmp_path / "mounted-on-workers-only"
    source = path_source(str(unmounted / "repo"))
    checked = LocalSourcePolicy.build([unmounted], [tmp_path / "data"])
    assert checked.check_submission(source) == source


def test_no_allowed_roots_refuses_every_local_path(layout: dict[str, Path]) -> None:
    closed = LocalSourcePolicy.build([], [layout["data"]])
    with pytest.raises(InvalidInputError, match="local paths are not allowed on this service"):
        closed.check_submission(path_source(str(layout["allowed"] / "repo")))


def test_a_relative_path_is_refused(layout: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="must be absolute"):
        policy(layout).check_submission(path_source("allowed/repo"))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("file:///etc", "not under a folder this service allows"),
        ("file://localhost/etc", "must be absolute"),
        ("file://{data}/stack", "service's own data"),
        ("file://{allowed}/to-etc", "not under a folder this service allows"),
        ("file://{allowed}/repo/%2e%2e/%2e%2e/outside", "'%'"),
        ("file://{allowed}/repo/../../outside", "'..'"),
    ],
)
def test_file_urls_follow_the_same_rule(layout: dict[str, Path], url: str, fragment: str) -> None:
    location = url.format(allowed=layout["allowed"], data=layout["data"])
    with pytest.raises(InvalidInputError, match=fragment):
        policy(layout).check_submission(JobSource(SourceKind.GIT, location))


def test_remote_git_urls_are_not_local_paths(layout: dict[str, Path]) -> None:
    source = JobSource(SourceKind.GIT, "https://example.com/org/repo.git")
    assert policy(layout).check_submission(source) == source
    assert policy(layout).check_fetch(source) is None


def test_the_api_upload_folder_is_readable_by_the_worker_only(layout: dict[str, Path]) -> None:
    upload = JobSource(SourceKind.ARCHIVE, str(layout["data"] / "uploads" / "u.tar.gz"))
    with pytest.raises(InvalidInputError, match="service's own data"):
        policy(layout).check_submission(upload)
    assert policy(layout).check_fetch(upload) == (layout["data"] / "uploads" / "u.tar.gz")
    # Only archives, and only directly in the upload folder.
    for source in (
        JobSource(SourceKind.PATH, str(layout["data"] / "uploads")),
        JobSource(SourceKind.ARCHIVE, str(layout["data"] / "stack" / "x.tar.gz")),
        JobSource(SourceKind.ARCHIVE, str(layout["data"] / "uploads" / ".." / "x.tar.gz")),
    ):
        with pytest.raises(InvalidInputError):
            policy(layout).check_fetch(source)


def test_the_fetcher_checks_again_after_a_symlink_was_swapped(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    """Accepted at submission, the link then points at the data folder: the worker's
    fetch refuses it and reads nothing."""
    link = layout["allowed"] / "swapped"
    link.symlink_to(layout["allowed"] / "repo")
    source = path_source(str(link))
    checks = policy(layout)
    checks.check_submission(source)
    link.unlink()
    link.symlink_to(layout["data"])
    fetcher = LocalSourceFetcher(
        policy=checks,
        max_archive_bytes=1,
        max_extracted_bytes=1,
        max_members=1,
        clone_timeout_s=5.0,
    )
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(InvalidInputError, match="service's own data"):
        fetcher.fetch(source, work)
    assert list(work.iterdir()) == []


def test_a_local_archive_that_is_no_tar_gz_is_refused_at_submission(
    layout: dict[str, Path],
) -> None:
    good = layout["allowed"] / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(layout["allowed"] / "repo", arcname="repo")
    assert policy(layout).check_submission(path_source(str(good))).location == str(good)
    zipped = layout["allowed"] / "zipped.tar.gz"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.py", "x = 1\n")
    with pytest.raises(InvalidInputError, match=f"source '{zipped}': it is a zip file"):
        policy(layout).check_submission(path_source(str(zipped)))
    folder = layout["allowed"] / "folder.tar.gz"
    folder.mkdir()
    with pytest.raises(InvalidInputError, match=f"source '{folder}' is not a file"):
        policy(layout).check_submission(path_source(str(folder)))


def test_a_ref_for_a_folder_is_refused_at_submission_unless_it_is_a_bare_repository(
    layout: dict[str, Path],
) -> None:
    plain = str(layout["allowed"] / "repo")
    with pytest.raises(InvalidInputError, match=f"folder '{plain}', which is no bare git"):
        policy(layout).check_submission(JobSource(SourceKind.PATH, plain, "main"))
    bare = layout["allowed"] / "bare.git"
    for part in ("objects", "refs"):
        (bare / part).mkdir(parents=True)
    (bare / "HEAD").write_text("ref: refs/heads/main\n")
    source = JobSource(SourceKind.PATH, str(bare), "main")
    assert policy(layout).check_submission(source) is source
