"""Generated hostile ``.tar.gz`` archives through the fetcher: extracted safely or refused.

Members with ``..`` and absolute names (also through pax headers), links and hard links
pointing out, devices, fifos, unknown types, lying or huge declared sizes, names of any
bytes, too many members, cut or flipped gzip streams. Each archive either extracts
(then only regular files and folders exist, all inside the extraction folder, and the
tree lists without error) or is an InvalidInputError naming the archive. Nothing is
ever written outside the extraction folder: the test walks the whole temporary folder.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.analysis.inventory import take_inventory
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.policy import LocalSourcePolicy
from tests.reliability.profiles import budget, counted
from tests.reliability.tarballs import Member, tar_gz

pytestmark = pytest.mark.timeout(600, method="thread")

MAX_EXTRACTED_BYTES = 64_000
MAX_MEMBERS = 40
ESCAPE = "ESCAPED"  # the marker every escaping member's name holds

_NAMES = [
    "a.py", "pkg/a.py", "pkg/", "./", ".", "", "pkg//b.py", "pkg/./c.py",
    f"../{ESCAPE}", f"../../{ESCAPE}", f"pkg/../../{ESCAPE}", f"./../{ESCAPE}",
    f"/{ESCAPE}", f"//{ESCAPE}", f"/tmp/{ESCAPE}", "pkg/..", "..", "...",
    "with space.py", "caf\u00e9.py", "caf\udce9.py", "\udcff\udcfe", "-rf", "a\nb.py",
    "x" * 120 + ".py", "d/" * 60 + "deep.py", "y" * 300, "lnk/through.py",
]  # fmt: skip
_LINK_TARGETS = [
    "/etc/passwd", "../../etc/passwd", f"../{ESCAPE}", "a.py", "pkg", ".", "/", "lnk",
    "pkg/../../..", "",
]  # fmt: skip
_KINDS = [
    tarfile.REGTYPE, tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
    tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE,
    b"Z", b"7", tarfile.GNUTYPE_SPARSE,
]  # fmt: skip
_PAX = [
    {},
    {"path": f"../{ESCAPE}"},
    {"path": f"/{ESCAPE}"},
    {"linkpath": "/etc/passwd"},
    {"size": "99999999999"},
    {"size": "-1"},
    {"hdrcharset": "BINARY"},
    {"path": "a" * 5000},
]

names = st.one_of(
    st.sampled_from(_NAMES),
    st.text(max_size=40),
    st.binary(min_size=1, max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
members = st.builds(
    Member,
    name=names,
    kind=st.sampled_from(_KINDS),
    data=st.one_of(
        st.binary(max_size=600),
        st.builds(lambda n: b"\0" * n, st.integers(0, 200_000)),  # compresses to nothing
    ),
    declared_size=st.one_of(st.none(), st.none(), st.integers(0, 2_000), st.integers(0, 10**13)),
    linkname=st.one_of(st.sampled_from(_LINK_TARGETS), st.text(max_size=20)),
    pax=st.sampled_from(_PAX),
)


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    items = draw(
        st.one_of(
            st.lists(members, max_size=8),
            st.integers(MAX_MEMBERS - 2, MAX_MEMBERS + 5).map(
                lambda n: [Member(f"m{i}.py", data=b"x = 1\n") for i in range(n)]
            ),
        )
    )
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    data = tar_gz(items, fmt=fmt, end=draw(st.booleans()))
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "flip", "junk", "plain"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif damage == "junk":
        data += draw(st.binary(min_size=1, max_size=64))
    elif damage == "plain":
        data = draw(st.binary(max_size=2_000))
    return data


def fetcher() -> LocalSourceFetcher:
    return LocalSourceFetcher(
        policy=LocalSourcePolicy.build([Path("/")], []),
        max_archive_bytes=500_000,
        max_extracted_bytes=MAX_EXTRACTED_BYTES,
        max_members=MAX_MEMBERS,
        clone_timeout_s=5.0,
    )


def outside_extraction(base: Path, archive: Path, tree: Path) -> list[str]:
    """Everything under ``base`` but the archive, the job folder and the extracted tree."""
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path in (archive, tree.parent) or path == tree or path.is_relative_to(tree):
                continue
            found.append(str(path))
    return found


def only_plain_entries(tree: Path) -> None:
    """No link, device or fifo was made; files are at most 0644."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            mode = os.lstat(Path(dirpath) / name).st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), (Path(dirpath) / name, oct(mode))
            assert not mode & (stat.S_ISUID | stat.S_ISGID)


@given(archives())
@budget(500)
@counted
def test_a_hostile_archive_extracts_inside_its_folder_or_is_refused_by_name(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        archive = base / "upload.tar.gz"
        archive.write_bytes(data)
        workdir = base / "job"
        workdir.mkdir()
        tree = workdir / "tree"
        try:
            root, commit = fetcher().fetch(JobSource(SourceKind.ARCHIVE, str(archive)), workdir)
        except InvalidInputError as exc:
            assert str(archive) in str(exc)
        else:
            assert commit is None
            assert root == tree or root.parent == tree
            take_inventory(root)
        assert outside_extraction(base, archive, tree) == []
        if tree.exists():
            only_plain_entries(tree)
        assert not Path(f"/{ESCAPE}").exists()
        assert not Path(f"/tmp/{ESCAPE}").exists()
