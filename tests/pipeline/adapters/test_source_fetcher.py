"""The source fetcher with real git and real folders; the fake held to the same contract.

Archives have their own file (test_archives.py). Every refusal is an InvalidInputError
whose message names the source, and nothing is written outside ``workdir``.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.adapters.sources import fetcher as source_fetcher
from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.ports import SourceFetcher
from pipeline.sources.policy import LocalSourcePolicy

LIMITS = {"max_archive_bytes": 10**7, "max_extracted_bytes": 10**8, "max_members": 10_000}


def git(*args: str, cwd: Path | None = None) -> str:
    identity = ["-c", "user.name=Quarry Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def fetcher(**overrides: object) -> LocalSourceFetcher:
    options: dict[str, object] = {
        **LIMITS,
        "clone_timeout_s": 60.0,
        "allow_local_git": True,
        "policy": LocalSourcePolicy.build([Path("/")], []),
    }
    options.update(overrides)
    return LocalSourceFetcher(**options)  # type: ignore[arg-type]


def all_paths(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture
def work_repo(tmp_path: Path) -> Path:
    """A work tree with two commits on main, the first tagged v1, and a feature branch."""
    repo = tmp_path / "work"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "a.py").write_text("a = 1\n")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    git("tag", "v1", cwd=repo)
    git("branch", "feature", cwd=repo)
    (repo / "b.py").write_text("b = 2\n")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "two", cwd=repo)
    return repo


@pytest.fixture
def bare_url(work_repo: Path, tmp_path: Path) -> str:
    bare = tmp_path / "origin.git"
    git("clone", "-q", "--bare", str(work_repo), str(bare))
    return f"file://{bare}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


# -- git --------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("ref", "files", "commit_of"),
    [
        (None, {"a.py", "b.py"}, "main"),
        ("main", {"a.py", "b.py"}, "main"),
        ("feature", {"a.py"}, "feature"),
        ("v1", {"a.py"}, "v1^{commit}"),
        ("FIRST_SHA", {"a.py"}, "main~1"),
    ],
)
def test_clone_by_branch_tag_or_sha_is_shallow_and_reports_its_commit(
    work_repo: Path,
    bare_url: str,
    workdir: Path,
    tmp_path: Path,
    ref: str | None,
    files: set[str],
    commit_of: str,
) -> None:
    if ref == "FIRST_SHA":
        ref = git("rev-parse", "main~1", cwd=work_repo)
    before = all_paths(tmp_path) - all_paths(workdir)
    folder, commit = fetcher().fetch(JobSource(SourceKind.GIT, bare_url, ref), workdir)
    assert folder.is_relative_to(workdir)
    assert {p.name for p in folder.iterdir()} == files | {".git"}
    assert commit == git("rev-parse", commit_of, cwd=work_repo)
    assert git("rev-list", "--count", "HEAD", cwd=folder) == "1"
    assert not list((folder / ".git" / "hooks").glob("*"))
    assert all_paths(tmp_path) - all_paths(workdir) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ref", ["no-such-branch", "0" * 40])
def test_a_missing_ref_is_invalid_input_naming_url_and_ref(
    bare_url: str, workdir: Path, ref: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        fetcher().fetch(JobSource(SourceKind.GIT, bare_url, ref), workdir)
    message = str(caught.value)
    assert message.startswith(f"could not clone {ref} from {bare_url}: ")
    assert "Traceback" not in message and "\n" not in message


@pytest.mark.timeout(60)
def test_a_missing_repository_is_invalid_input_naming_it(tmp_path: Path, workdir: Path) -> None:
    url = f"file://{tmp_path}/nowhere.git"
    with pytest.raises(InvalidInputError, match=f"could not clone {url}: fatal: "):
        fetcher().fetch(JobSource(SourceKind.GIT, url), workdir)


@pytest.mark.parametrize(
    ("location", "ref"),
    [
        ("ext::sh -c touch% {sentinel}", None),
        ("fd::0", None),
        ("file://{origin}", None),  # refused: allow_local_git is off
        ("http://localhost:1/x.git", None),
        ("git://localhost:1/x.git", None),
        ("--upload-pack=touch {sentinel}", None),
        ("{origin_url}", "--upload-pack=touch {sentinel}"),
        ("https://localhost:1/x.git", "-oProxyCommand=touch {sentinel}"),
    ],
)
def test_hostile_git_sources_are_refused_before_anything_runs(
    bare_url: str, workdir: Path, tmp_path: Path, location: str, ref: str | None
) -> None:
    sentinel = tmp_path / "pwned"
    values = {"sentinel": sentinel, "origin": bare_url[7:], "origin_url": bare_url}
    source = JobSource(
        SourceKind.GIT, location.format(**values), None if ref is None else ref.format(**values)
    )
    with pytest.raises(InvalidInputError):
        fetcher(allow_local_git=False).fetch(source, workdir)
    assert not sentinel.exists()
    assert not any(workdir.iterdir())


def fake_git(tmp_path: Path, body: str) -> str:
    script = tmp_path / "bin" / "git"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.timeout(30)
def test_a_clone_past_its_time_limit_is_killed_with_its_children(
    tmp_path: Path, workdir: Path
) -> None:
    # The child sleep holds git's stderr open: killing only the shell would hang here.
    slow = fake_git(tmp_path, "sleep 20\n")
    start = time.monotonic()
    with pytest.raises(InvalidInputError) as caught:
        fetcher(git_bin=slow, clone_timeout_s=0.5).fetch(
            JobSource(SourceKind.GIT, "https://github.com/psf/requests.git"), workdir
        )
    assert time.monotonic() - start < 10
    assert str(caught.value) == (
        "could not clone https://github.com/psf/requests.git: timed out after 0.5 s"
    )


def test_git_error_lines_are_redacted_and_cut(tmp_path: Path, workdir: Path) -> None:
    noisy = fake_git(
        tmp_path,
        "echo 'Cloning into x...' >&2\n"
        "echo 'fatal: unable to access https://bob:s3cret@host/x.git: 403' >&2\n"
        "echo 'hint: check your token' >&2\nexit 128\n",
    )
    with pytest.raises(InvalidInputError) as caught:
        fetcher(git_bin=noisy).fetch(
            JobSource(SourceKind.GIT, "ssh://git@host.example.com/x.git"), workdir
        )
    assert str(caught.value) == (
        "could not clone ssh://***@host.example.com/x.git: "
        "fatal: unable to access https://***@host/x.git: 403"
    )


@pytest.mark.timeout(60)
def test_a_network_failure_is_tried_again_then_named_with_the_attempts(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_fetcher, "CLONE_BACKOFF_S", 0.01)
    calls = tmp_path / "calls"
    flaky = fake_git(
        tmp_path,
        f"echo x >> {calls}\n"
        "echo \"fatal: unable to access 'https://host/x.git/': Could not resolve host: host\" >&2\n"
        "exit 128\n",
    )
    with pytest.raises(InvalidInputError) as caught:
        fetcher(git_bin=flaky).fetch(JobSource(SourceKind.GIT, "https://host/x.git"), workdir)
    assert len(calls.read_text().splitlines()) == source_fetcher.CLONE_ATTEMPTS
    assert str(caught.value) == (
        f"could not clone https://host/x.git ({source_fetcher.CLONE_ATTEMPTS} attempts): "
        "fatal: unable to access 'https://host/x.git/': Could not resolve host: host"
    )


def test_a_network_blip_is_survived(
    tmp_path: Path, workdir: Path, work_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_fetcher, "CLONE_BACKOFF_S", 0.01)
    marker = tmp_path / "failed-once"
    real_git = shutil.which("git")
    blip = fake_git(
        tmp_path,
        f"if [ ! -e {marker} ]; then touch {marker}; "
        "echo 'fatal: the remote end hung up unexpectedly' >&2; exit 128; fi\n"
        f'exec {real_git} "$@"\n',
    )
    root, head = fetcher(git_bin=blip, allow_local_git=True).fetch(
        JobSource(SourceKind.GIT, work_repo.as_uri()), workdir
    )
    assert head == git("rev-parse", "HEAD", cwd=work_repo)
    assert (root / ".git").is_dir()


def test_a_wrong_ref_is_not_tried_again(tmp_path: Path, workdir: Path) -> None:
    calls = tmp_path / "calls"
    wrong = fake_git(
        tmp_path,
        f"echo x >> {calls}\necho 'fatal: Remote branch nope not found in upstream origin' >&2\n"
        "exit 128\n",
    )
    with pytest.raises(InvalidInputError, match="Remote branch nope not found"):
        fetcher(git_bin=wrong).fetch(
            JobSource(SourceKind.GIT, "https://host/x.git", "nope"), workdir
        )
    assert len(calls.read_text().splitlines()) == 1


# -- local folders ----------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_clean_work_tree_is_at_its_head_a_dirty_one_at_no_commit(
    work_repo: Path, workdir: Path
) -> None:
    source = JobSource(SourceKind.PATH, str(work_repo))
    head = git("rev-parse", "HEAD", cwd=work_repo)
    assert fetcher().fetch(source, workdir) == (work_repo.resolve(), head)
    (work_repo / "untracked.py").write_text("u = 1\n")
    assert fetcher().fetch(source, workdir) == (work_repo.resolve(), None)
    git("config", "status.showUntrackedFiles", "no", cwd=work_repo)
    assert fetcher().fetch(source, workdir) == (work_repo.resolve(), None)
    (work_repo / "untracked.py").unlink()
    (work_repo / "a.py").write_text("a = 'edited'\n")
    assert fetcher().fetch(source, workdir)[1] is None
    git("checkout", "--", "a.py", cwd=work_repo)
    (work_repo / "ignored.log").write_text("x\n")
    (work_repo / ".git" / "info").mkdir(exist_ok=True)
    (work_repo / ".git" / "info" / "exclude").write_text("*.log\n")
    assert fetcher().fetch(source, workdir)[1] == head
    assert not any(workdir.iterdir())


@pytest.mark.timeout(60)
def test_a_bare_repository_is_read_as_git_at_its_head_never_as_a_folder(
    work_repo: Path, tmp_path: Path, workdir: Path
) -> None:
    bare = tmp_path / "repo.git"
    git("clone", "-q", "--bare", str(work_repo), str(bare))
    (bare / "hooks" / "pre-receive.sample").write_text("#!/bin/sh\necho hook\n")
    tree, commit = fetcher().fetch(JobSource(SourceKind.PATH, str(bare)), workdir)
    assert commit == git("rev-parse", "HEAD", cwd=work_repo)
    assert tree.is_relative_to(workdir)  # a checkout in the job's scratch, not the folder
    files = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if ".git" not in p.parts}
    assert files == {"a.py", "b.py"}  # the commit's files: no hooks, objects or refs
    allowed_elsewhere = fetcher(policy=LocalSourcePolicy.build([tmp_path / "other"], []))
    with pytest.raises(InvalidInputError, match="not under a folder this service allows"):
        allowed_elsewhere.fetch(JobSource(SourceKind.PATH, str(bare)), workdir / "again")
    # At a ref: that commit's files.
    at_ref, feature = fetcher().fetch(
        JobSource(SourceKind.PATH, str(bare), "feature"), workdir / "feature"
    )
    assert feature == git("rev-parse", "feature", cwd=work_repo)
    assert {p.name for p in at_ref.iterdir()} == {"a.py", ".git"}
    # A plain folder takes no ref: its files are what is on disk.
    with pytest.raises(InvalidInputError, match="which is no bare git repository"):
        fetcher().fetch(JobSource(SourceKind.PATH, str(work_repo), "feature"), workdir / "plain")


def test_a_subfolder_of_a_work_tree_and_a_plain_folder_have_no_commit(
    work_repo: Path, tmp_path: Path, workdir: Path
) -> None:
    sub = work_repo / "pkg"
    sub.mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    for folder in (sub, plain):
        assert fetcher().fetch(JobSource(SourceKind.PATH, str(folder)), workdir) == (
            folder.resolve(),
            None,
        )


def test_a_folder_without_git_installed_has_no_commit(work_repo: Path, workdir: Path) -> None:
    source = JobSource(SourceKind.PATH, str(work_repo))
    assert fetcher(git_bin="no-such-git-binary").fetch(source, workdir)[1] is None


# -- the contract, over the fake and the real fetcher -----------------------------------


@pytest.fixture(params=["memory", "local"])
def any_fetcher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SourceFetcher]:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "m.py").write_text("m = 1\n")
    (tmp_path / "file.txt").write_text("not a folder\n")
    if request.param == "memory":
        fake = InMemorySourceFetcher({str(folder): folder})
        fake.add(str(tmp_path / "file.txt"), tmp_path / "file.txt")
        yield fake
    else:
        yield fetcher()


def test_a_folder_source_is_returned_with_its_files(
    any_fetcher: SourceFetcher, tmp_path: Path, workdir: Path
) -> None:
    folder, commit = any_fetcher.fetch(JobSource(SourceKind.PATH, str(tmp_path / "src")), workdir)
    assert (folder / "m.py").read_text() == "m = 1\n"
    assert commit is None
    assert not any(workdir.iterdir())


@pytest.mark.parametrize(
    ("name", "message"), [("gone", "path does not exist"), ("file.txt", "not a directory")]
)
def test_a_missing_folder_or_a_file_is_invalid_input_naming_it(
    any_fetcher: SourceFetcher, tmp_path: Path, workdir: Path, name: str, message: str
) -> None:
    location = str(tmp_path / name)
    with pytest.raises(InvalidInputError, match=f"{message}: {location}"):
        any_fetcher.fetch(JobSource(SourceKind.PATH, location), workdir)


def test_the_fake_returns_the_commit_registered_for_a_ref(tmp_path: Path, workdir: Path) -> None:
    fake = InMemorySourceFetcher()
    fake.add("https://h/r.git", tmp_path, ref="v1", commit="c" * 40)
    fake.add("https://h/r.git", tmp_path, commit="d" * 40)
    assert fake.fetch(JobSource(SourceKind.GIT, "https://h/r.git", "v1"), workdir)[1] == "c" * 40
    assert fake.fetch(JobSource(SourceKind.GIT, "https://h/r.git", "v2"), workdir)[1] == "d" * 40
    assert [s.ref for s in fake.fetched] == ["v1", "v2"]
