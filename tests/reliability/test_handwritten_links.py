"""Hand-written hostile trees: links out of the tree (never followed or read), dangling
and looping links, fifos (never opened), and broken, huge or linked ignore files."""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.analysis.inventory import take_inventory
from pipeline.models import SkipReason
from tests.reliability.chunk_worker import write

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path opened through open(), io.open() or os.open() while the test runs."""
    seen: list[str] = []
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def spy(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)):
                seen.append(os.fsdecode(file))
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", spy(real_open))
    monkeypatch.setattr(io, "open", spy(real_io_open))
    monkeypatch.setattr(os, "open", spy(real_os_open))
    yield seen


def test_links_out_of_the_tree_are_never_followed_or_read(
    tmp_path: Path, opened: list[str]
) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.py", b"TOKEN = 'x'\n")
    os.mkfifo(outside / "pipe.py")  # opening it for reading would block forever
    root = tmp_path / "repo"
    write(root, "a.py", b"a = 1\n")
    links = {
        "secret.py": outside / "secret.py",
        "pipe.py": outside / "pipe.py",
        "etc": Path("/etc"),
        "passwd.py": Path("/etc/passwd"),
        "up": Path("../.."),
        "outdir": outside,
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    opened.clear()
    inventory = take_inventory(root)
    assert [f.path for f in inventory.files] == ["a.py"]
    reasons = {s.path: s.reason for s in inventory.skipped}
    assert reasons == dict.fromkeys(links, SkipReason.SYMLINK_OUTSIDE_ROOT)
    real_root = os.path.realpath(root)
    for path in opened:
        assert os.path.realpath(path).startswith(real_root + os.sep), path


def test_dangling_and_looping_links_and_fifos_are_skipped_with_their_reason(
    tmp_path: Path, opened: list[str]
) -> None:
    root = tmp_path / "repo"
    write(root, "a.py", b"a = 1\n")
    (root / "self").symlink_to("self")
    (root / "ping").symlink_to("pong")
    (root / "pong").symlink_to("ping")
    (root / "gone.py").symlink_to("missing.py")
    (root / "inside.py").symlink_to("a.py")
    os.mkfifo(root / "fifo.py")
    opened.clear()
    inventory = take_inventory(root)
    assert [f.path for f in inventory.files] == ["a.py", "inside.py"]
    details = {s.path: (s.reason, s.detail) for s in inventory.skipped}
    for loop in ("self", "ping", "pong"):
        assert details[loop][0] is SkipReason.UNREADABLE
        assert "loop" in details[loop][1].lower()
    assert details["gone.py"][0] is SkipReason.UNREADABLE
    assert "dangling" in details["gone.py"][1]
    assert details["fifo.py"] == (SkipReason.UNREADABLE, "not a regular file (fifo)")
    assert not any(p.endswith("fifo.py") for p in opened)


def test_broken_and_huge_ignore_files_do_not_stop_the_listing(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, ".gitignore", b"\\\n!\n[z-a]\n[[:alpha:]]\n*.log\n")
    write(root, "sub/.gitignore", b"\xff\xfe\x00 junk\n" + b"x" * 300_000)
    write(root, "sub/kept.py", b"k = 1\n")
    write(root, "a.py", b"a = 1\n")
    write(root, "debug.log", b"log\n")
    inventory = take_inventory(root)
    paths = {f.path for f in inventory.files}
    assert {"a.py", "sub/kept.py"} <= paths
    assert "debug.log" not in paths  # the readable pattern of the broken file still applies


def test_ignore_files_that_are_fifos_or_links_are_not_read(
    tmp_path: Path, opened: list[str]
) -> None:
    outside = tmp_path / "outside"
    write(outside, "patterns", b"*.py\n")
    root = tmp_path / "repo"
    write(root, "a.py", b"a = 1\n")
    (root / ".git" / "info").mkdir(parents=True)
    os.mkfifo(root / ".git" / "info" / "exclude")  # a blocking read would never return
    (root / ".gitignore").symlink_to(outside / "patterns")  # git does not follow it either
    opened.clear()
    inventory = take_inventory(root)
    assert [f.path for f in inventory.files] == ["a.py"]
    assert not any(p.startswith(str(outside)) for p in opened)
