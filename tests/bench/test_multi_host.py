"""quarry bench multi-host's pure parts: the sweeps' give-backs read from host logs, the
figures' table, and the corpus repository (no stack, no namespace)."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.multi_host import corpus_repo, given_back, table
from devstack.hosts import Host


def _host(tmp_path: Path, name: str, text: str) -> Host:
    log = tmp_path / f"{name}.log"
    log.write_text(text, encoding="utf-8")
    process = subprocess.Popen(["true"])
    process.wait()
    return Host(name, process, log)


def _at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_given_back_counts_only_sweeps_after_the_kill_on_every_host(tmp_path: Path) -> None:
    line = "{} WARNING quarry.jobs: gave back {} messages held by dead workers\n"
    hosts = {
        "host-a": _host(tmp_path, "host-a", line.format("2026-12-07 01:00:00,000", 9)),
        "host-b": _host(
            tmp_path,
            "host-b",
            line.format("2026-12-07 01:00:20,500", 3)
            + "2026-12-07 01:00:21,000 INFO quarry.jobs: nothing\n"
            + line.format("2026-12-07 01:00:35,000", 2),
        ),
    }
    back = given_back(hosts, _at("2026-12-07 01:00:05,000"))
    assert back == {"first_after_kill_s": 15.5, "messages": 5}
    assert given_back(hosts, _at("2026-12-07 02:00:00,000")) == {
        "first_after_kill_s": None,
        "messages": 0,
    }


def test_table_has_a_row_per_job_with_the_kill_and_the_oracle() -> None:
    tasks = {"host-a": {"chunk": 1, "embed": 2, "write": 3}}
    job: dict[str, Any] = {
        "status": "done",
        "hosts_at_start": ["host-a", "host-b"],
        "killed": None,
        "files": 41,
        "chunks": 700,
        "tasks": tasks,
        "done_s": 30.0,
        "done_after_kill_s": None,
        "given_back": None,
        "recoveries": 0,
        "oracle": {"missing": 0, "duplicated": 0, "ghosts": 0},
    }
    killed = job | {
        "killed": "host-b",
        "killed_after_s": 7.0,
        "files_at_kill": {"written": 10, "todo": 40},
        "done_after_kill_s": 40.0,
        "given_back": {"first_after_kill_s": 16.0, "messages": 4},
    }
    rows = table({"jobs": [job, killed]}).splitlines()
    assert len(rows) == 4
    assert "| 1 (done) | host-a, host-b | — | 41 | 700 | a: 1/2/3 | 30.0 s | — | — | 0 |" in rows[2]
    assert "host-b (7.0 s, 10/40)" in rows[3] and "16.0 s (4) | 40.0 s | 0 | 0 / 0 / 0 |" in rows[3]


def test_corpus_repo_commits_the_packages_modules_and_serves_a_bare_clone(
    tmp_path: Path,
) -> None:
    work, url = corpus_repo(tmp_path, ["vine"], limit=3)
    assert len(list((work / "vine").rglob("*.py"))) == 3
    bare = Path(url.removeprefix("file://"))
    listed = subprocess.run(
        ["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(listed) == 3 and all(p.startswith("vine/") for p in listed)
