"""Archive sources through the real fetcher: real .tar.gz files built here, good and hostile.

Each hostile archive must be an InvalidInputError naming the member or the archive, and
nothing may be written outside ``workdir``: the tests compare ``tmp_path`` before and after.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.policy import LocalSourcePolicy

Member = tuple[tarfile.TarInfo, bytes | None]


def fetcher(
    *, max_archive_bytes: int = 10**6, max_extracted_bytes: int = 10**6, max_members: int = 100
) -> LocalSourceFetcher:
    return LocalSourceFetcher(
        policy=LocalSourcePolicy.build([Path("/")], []),
        max_archive_bytes=max_archive_bytes,
        max_extracted_bytes=max_extracted_bytes,
        max_members=max_members,
        clone_timeout_s=10.0,
    )


def regular(name: str, data: bytes = b"x = 1\n") -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def directory(name: str) -> Member:
    return special(name, tarfile.DIRTYPE)


def build(path: Path, members: list[Member], *, fmt: int = tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path, workdir: Path) -> Callable[[], set[str]]:
    """What tmp_path holds outside workdir, as relative paths."""

    def snapshot() -> set[str]:
        return {
            str(p.relative_to(tmp_path))
            for p in tmp_path.rglob("*")
            if not p.is_relative_to(workdir)
        }

    return snapshot


def fetch(archive: Path, workdir: Path, **limits: int) -> Path:
    return fetcher(**limits).fetch(JobSource(SourceKind.ARCHIVE, str(archive)), workdir)[0]


def test_an_sdist_like_archive_is_indexed_from_its_single_top_level_folder(
    tmp_path: Path, workdir: Path, outside: Callable[[], set[str]]
) -> None:
    archive = build(
        tmp_path / "pkg-1.0.tar.gz",
        [
            directory("pkg-1.0"),
            regular("pkg-1.0/setup.py", b"setup()\n"),
            regular("pkg-1.0/src/pkg/__init__.py", b"VERSION = '1.0'\n"),
            special("pkg-1.0/src/pkg/alias.py", tarfile.SYMTYPE, "__init__.py"),
            special("pkg-1.0/copy.py", tarfile.LNKTYPE, "pkg-1.0/setup.py"),
        ],
    )
    before = outside()
    folder, commit = fetcher().fetch(JobSource(SourceKind.ARCHIVE, str(archive)), workdir)
    assert commit is None
    assert folder == (workdir / "tree" / "pkg-1.0").resolve()
    assert (folder / "src" / "pkg" / "__init__.py").read_bytes() == b"VERSION = '1.0'\n"
    # Links inside the tree are skipped, not created.
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        "setup.py",
        "src",
        "src/pkg",
        "src/pkg/__init__.py",
    ]
    assert outside() == before


def test_an_archive_with_several_top_level_entries_is_indexed_from_its_root(
    tmp_path: Path, workdir: Path
) -> None:
    archive = build(
        tmp_path / "flat.tgz", [directory("./"), regular("./a.py"), regular("./b/c.py")]
    )
    folder = fetch(archive, workdir)
    assert folder == (workdir / "tree").resolve()
    assert (folder / "a.py").is_file() and (folder / "b" / "c.py").is_file()
    assert all(not os.access(p, os.X_OK) for p in folder.rglob("*.py"))


HOSTILE: list[tuple[str, list[Member], str]] = [
    ("dotdot", [regular("pkg/ok.py"), regular("../evil.py")], "member '../evil.py' has a '..'"),
    ("nested-dotdot", [regular("pkg/../../evil.py")], "'pkg/../../evil.py' has a '..'"),
    ("absolute", [regular("/tmp/abs-evil.py")], "member '/tmp/abs-evil.py' has an absolute path"),
    (
        "symlink-out",
        [special("pkg/passwd", tarfile.SYMTYPE, "/etc/passwd")],
        "member 'pkg/passwd' is refused",
    ),
    (
        "symlink-up",
        [special("pkg/up", tarfile.SYMTYPE, "../../.."), regular("pkg/up/evil.py")],
        "member 'pkg/up' is refused",
    ),
    (
        "hardlink-abs",
        [special("pkg/passwd", tarfile.LNKTYPE, "/etc/passwd")],
        "member 'pkg/passwd' is refused",
    ),
    (
        "hardlink-up",
        [special("pkg/escape", tarfile.LNKTYPE, "../outside.txt")],
        "member 'pkg/escape' is refused",
    ),
    ("fifo", [special("pkg/pipe", tarfile.FIFOTYPE)], "member 'pkg/pipe' is refused"),
    ("device", [special("pkg/null", tarfile.CHRTYPE)], "member 'pkg/null' is refused"),
    (
        "file-over-file",
        [regular("pkg/a"), regular("pkg/a/b.py")],
        "member 'pkg/a/b.py' cannot be extracted",
    ),
]


@pytest.mark.parametrize(("name", "members", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_members_are_refused_by_name_and_nothing_lands_outside(
    tmp_path: Path,
    workdir: Path,
    outside: Callable[[], set[str]],
    name: str,
    members: list[Member],
    message: str,
) -> None:
    (tmp_path / "outside.txt").write_text("mine\n")
    archive = build(tmp_path / f"{name}.tar.gz", members)
    before = outside()
    with pytest.raises(InvalidInputError) as caught:
        fetch(archive, workdir)
    assert str(caught.value).startswith(f"archive {archive}")
    assert message in str(caught.value)
    assert outside() == before
    assert (tmp_path / "outside.txt").read_text() == "mine\n"
    assert not [p for p in workdir.rglob("*") if p.is_symlink()]


def test_too_many_members_are_refused(tmp_path: Path, workdir: Path) -> None:
    archive = build(tmp_path / "many.tar.gz", [regular(f"f{i}.py") for i in range(11)])
    with pytest.raises(InvalidInputError, match=f"archive {archive} has more than 10 members"):
        fetch(archive, workdir, max_members=10)
    assert fetch(archive, workdir / "again", max_members=11).is_dir()


def test_a_highly_compressible_member_past_the_extracted_limit_is_refused(
    tmp_path: Path, workdir: Path, outside: Callable[[], set[str]]
) -> None:
    bomb = build(tmp_path / "bomb.tar.gz", [regular("pkg/zeros.py", b"\0" * 20_000_000)])
    assert bomb.stat().st_size < 100_000
    before = outside()
    with pytest.raises(InvalidInputError) as caught:
        fetch(bomb, workdir, max_extracted_bytes=1_000_000)
    assert str(caught.value) == (
        f"archive {bomb} expands to more than 1000000 bytes (at member 'pkg/zeros.py')"
    )
    assert outside() == before
    assert sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file()) <= 1_000_000


def test_many_members_that_add_up_past_the_extracted_limit_are_refused(
    tmp_path: Path, workdir: Path
) -> None:
    members = [regular(f"part{i}.txt", b"a" * 400_000) for i in range(3)]
    archive = build(tmp_path / "parts.tar.gz", members)
    with pytest.raises(InvalidInputError, match=r"at member 'part2\.txt'"):
        fetch(archive, workdir, max_extracted_bytes=1_000_000)


def test_a_pax_header_bomb_is_refused_before_it_fills_memory(tmp_path: Path, workdir: Path) -> None:
    info, data = regular("pkg/a.py")
    info.pax_headers = {"comment": "x" * 5_000_000}
    archive = build(tmp_path / "pax.tar.gz", [(info, data)])
    with pytest.raises(InvalidInputError, match="tar headers larger than its members allow"):
        fetch(archive, workdir)


def test_an_archive_over_the_compressed_limit_is_refused_unread(
    tmp_path: Path, workdir: Path
) -> None:
    archive = build(tmp_path / "big.tar.gz", [regular("a.bin", os.urandom(50_000))])
    with pytest.raises(InvalidInputError, match=r"bytes, over the limit of 10000"):
        fetch(archive, workdir, max_archive_bytes=10_000)
    assert not any((workdir / "tree").iterdir())


def corrupt_gzip(path: Path) -> None:
    path.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate data" * 10)


def truncated_gzip(path: Path) -> None:
    build(path, [regular("a.py", os.urandom(200_000))])
    path.write_bytes(path.read_bytes()[:50_000])


def truncated_tar(path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info, data = regular("a.py", b"y = 2\n" * 10_000)
        tar.addfile(info, io.BytesIO(data or b""))
    path.write_bytes(gzip.compress(raw.getvalue()[:20_000]))


def not_gzip(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 a zip file, not a tar.gz")


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("make", [corrupt_gzip, truncated_gzip, truncated_tar, not_gzip, empty])
def test_a_corrupt_archive_is_invalid_input_naming_it(
    tmp_path: Path, workdir: Path, make: Callable[[Path], None]
) -> None:
    archive = tmp_path / "broken.tar.gz"
    make(archive)
    with pytest.raises(InvalidInputError, match=f"^archive {archive} is corrupt: "):
        fetch(archive, workdir)


def test_a_missing_archive_or_a_folder_is_invalid_input(tmp_path: Path, workdir: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"^archive .*gone\.tar\.gz does not exist$"):
        fetch(tmp_path / "gone.tar.gz", workdir)
    (tmp_path / "dir.tar.gz").mkdir()
    with pytest.raises(InvalidInputError, match=r"^archive .*dir\.tar\.gz is not a file$"):
        fetch(tmp_path / "dir.tar.gz", workdir / "again")
