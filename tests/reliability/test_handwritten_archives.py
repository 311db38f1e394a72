"""Hand-written hostile archives: refused by name, bounded in time, memory and disk, and
nothing written outside the extraction folder (the tests look at the file system)."""

from __future__ import annotations

import gzip
import tarfile
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path

import pytest

from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.analysis.inventory import take_inventory
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.models import SkipReason
from pipeline.sources.policy import LocalSourcePolicy
from tests.reliability.tarballs import BLOCK, Member, header, tar_gz
from tests.reliability.test_generated_archives import only_plain_entries, outside_extraction

pytestmark = pytest.mark.timeout(120)

LIMIT_BYTES = 1_000_000
PAX = tarfile.PAX_FORMAT


def fetch(tmp_path: Path, data: bytes, **limits: int) -> Path:
    archive = tmp_path / "upload.tar.gz"
    archive.write_bytes(data)
    workdir = tmp_path / "job"
    workdir.mkdir()
    fetcher = LocalSourceFetcher(
        policy=LocalSourcePolicy.build([Path("/")], []),
        max_archive_bytes=limits.get("max_archive_bytes", 10 * LIMIT_BYTES),
        max_extracted_bytes=limits.get("max_extracted_bytes", LIMIT_BYTES),
        max_members=limits.get("max_members", 100),
        clone_timeout_s=5.0,
    )
    root, _commit = fetcher.fetch(JobSource(SourceKind.ARCHIVE, str(archive)), workdir)
    return root


def refused(tmp_path: Path, data: bytes, **limits: int) -> str:
    with pytest.raises(InvalidInputError) as caught:
        fetch(tmp_path, data, **limits)
    message = str(caught.value)
    assert str(tmp_path / "upload.tar.gz") in message
    tree = tmp_path / "job" / "tree"
    assert outside_extraction(tmp_path, tmp_path / "upload.tar.gz", tree) == []
    if tree.exists():
        only_plain_entries(tree)
    return message


ESCAPE = f"quarry-escape-{uuid.uuid4().hex[:8]}"
GOOD = Member("pkg/ok.py", data=b"x = 1\n")


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ([GOOD, Member(f"../{ESCAPE}", data=b"pwned")], "'..' component"),
        ([GOOD, Member(f"pkg/../../{ESCAPE}", data=b"pwned")], "'..' component"),
        ([GOOD, Member(f"/etc/{ESCAPE}", data=b"pwned")], "absolute path"),
        ([GOOD, Member(f"/tmp/{ESCAPE}", data=b"pwned")], "absolute path"),
        ([GOOD, Member("ok.py", pax={"path": f"../{ESCAPE}"}, data=b"pwned")], "'..' component"),
        ([Member("lnk", tarfile.SYMTYPE, linkname="/etc"), Member(f"lnk/{ESCAPE}")], "refused"),
        ([Member("lnk", tarfile.SYMTYPE, linkname="../../.."), GOOD], "refused"),
        ([Member("hard", tarfile.LNKTYPE, linkname="/etc/passwd"), GOOD], "refused"),
        ([Member("hard", tarfile.LNKTYPE, linkname=f"../{ESCAPE}"), GOOD], "refused"),
        ([GOOD, Member("dev/null", tarfile.CHRTYPE)], "refused"),
        ([GOOD, Member("dev/sda", tarfile.BLKTYPE)], "refused"),
        ([GOOD, Member("pipe", tarfile.FIFOTYPE)], "refused"),
        ([GOOD, Member("caf\u00e9\x00.py", data=b"x")], "NUL byte"),
        ([GOOD, Member("l", tarfile.SYMTYPE, linkname="caf\u00e9\x00")], "NUL byte"),
    ],
    ids=[
        "dotdot", "nested-dotdot", "abs-etc", "abs-tmp", "pax-dotdot", "write-through-link",
        "link-up", "hardlink-passwd", "hardlink-up", "char-device", "block-device", "fifo",
        "nul-name", "nul-link",
    ],
)  # fmt: skip
def test_escaping_and_special_members_are_refused_by_name_and_nothing_lands_outside(
    tmp_path: Path, members: list[Member], named: str
) -> None:
    message = refused(tmp_path, tar_gz(members))
    assert named in message
    assert "member" in message
    for place in (Path("/etc") / ESCAPE, Path("/tmp") / ESCAPE, tmp_path / ESCAPE):
        assert not place.exists(), place


def test_an_archive_over_the_compressed_limit_is_refused_without_being_read(
    tmp_path: Path,
) -> None:
    data = tar_gz([Member("a.py", data=bytes(range(256)) * 4_000)])
    message = refused(tmp_path, data, max_archive_bytes=len(data) - 1)
    assert f"over the limit of {len(data) - 1}" in message


def test_a_member_declaring_terabytes_is_refused_before_a_byte_is_read(tmp_path: Path) -> None:
    members = [Member("big.py", data=b"x", declared_size=10**13)]
    started = time.monotonic()
    message = refused(tmp_path, tar_gz(members, end=False))
    assert time.monotonic() - started < 2
    assert f"more than {LIMIT_BYTES} bytes" in message


@pytest.mark.parametrize("name", ["./", ".", ""])
def test_an_ended_archive_declaring_terabytes_for_a_skipped_member_is_refused_at_once(
    tmp_path: Path, name: str
) -> None:
    # tarfile skips the member's declared data block by block, past the stream's end:
    # this took about an hour per 10 TB before the stream refused to be read on.
    members = [Member(name, data=b"x", declared_size=10**13)]
    started = time.monotonic()
    message = refused(tmp_path, tar_gz(members, end=False))
    assert time.monotonic() - started < 2
    assert "corrupt" in message


def test_a_gzip_bomb_stops_at_the_extraction_limit_in_bounded_memory_and_disk(
    tmp_path: Path,
) -> None:
    zeros = 200 * 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    chunk = b"\0" * (1024 * 1024)
    parts = [compressor.compress(header(Member("bomb.py", declared_size=zeros), PAX))]
    parts += [compressor.compress(chunk) for _ in range(zeros // len(chunk))]
    parts.append(compressor.compress(b"\0" * (2 * BLOCK)) + compressor.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 300_000  # 200 MiB of zeros in about 200 KiB
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = refused(tmp_path, bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert f"expands to more than {LIMIT_BYTES} bytes" in message
    assert peak < 16 * 1024 * 1024
    written = sum(p.stat().st_size for p in (tmp_path / "job").rglob("*") if p.is_file())
    assert written <= LIMIT_BYTES + 1024 * 1024


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    members = [Member(f"m{i}.py", data=b"x = 1\n") for i in range(60)]
    message = refused(tmp_path, tar_gz(members), max_members=50)
    assert "more than 50 members" in message


@pytest.mark.parametrize(
    "data",
    [b"", b"not gzip at all", gzip.compress(b"not a tar" * 100), tar_gz([GOOD])[:40]],
    ids=["empty", "not-gzip", "not-tar", "cut"],
)
def test_garbage_is_refused_as_corrupt(tmp_path: Path, data: bytes) -> None:
    message = refused(tmp_path, data)
    assert "corrupt" in message or "archive" in message


def test_members_with_hostile_but_legal_names_extract_and_list_with_reasons(
    tmp_path: Path,
) -> None:
    members = [
        Member("pkg/my file.py", data=b"a = 1\n"),
        Member("pkg/\u65e5\u672c.py", data=b"b = 2\n"),
        Member("pkg/caf\udce9.py", data=b"c = 3\n"),  # the byte 0xE9: not UTF-8
        Member("pkg/inside", tarfile.SYMTYPE, linkname="ok.py"),  # stays inside: skipped
        GOOD,
    ]
    root = fetch(tmp_path, tar_gz(members, fmt=tarfile.GNU_FORMAT))
    only_plain_entries(tmp_path / "job" / "tree")
    inventory = take_inventory(root)
    assert sorted(f.path for f in inventory.files) == ["my file.py", "ok.py", "\u65e5\u672c.py"]
    (skipped,) = inventory.skipped
    assert skipped.path == "caf\\xe9.py" and skipped.reason is SkipReason.UNREADABLE


def test_members_that_add_up_past_the_extraction_limit_stop_there_on_disk(
    tmp_path: Path,
) -> None:
    members = [Member(f"z{i}.py", data=b"\0" * 100_000) for i in range(40)]  # 4 MB
    data = tar_gz(members)
    assert len(data) < 40_000
    message = refused(tmp_path, data)
    assert f"expands to more than {LIMIT_BYTES} bytes" in message
    written = sum(p.stat().st_size for p in (tmp_path / "job").rglob("*") if p.is_file())
    assert written <= LIMIT_BYTES
