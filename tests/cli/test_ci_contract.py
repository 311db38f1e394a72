"""The CLI's contract for CI steps, with the real console script: exit codes 0 done,
1 failed or cancelled, 2 bad input, 3 unreachable or timed out; stdout's lines; job-id
prefixes. Against a stopped API (a closed port) and the session's real stack."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from config.settings import child_environment
from devstack.stack import Stack
from tests.stackutil import free_ports, run_quarry

GIT = ["git", "-c", "user.name=Quarry Test", "-c", "user.email=test@example.com"]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def stopped_api(tmp_path: Path) -> dict[str, str]:
    (port,) = free_ports(1)  # free: nothing listens there
    return {
        "QUARRY_DATA_DIR": str(tmp_path / "data"),
        "QUARRY_API_URL": f"http://127.0.0.1:{port}",
        "QUARRY_API_TOKEN": "qk_not-a-real-token",
    }


@pytest.fixture(scope="module")
def env(stack: Stack) -> dict[str, str]:
    return {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}


def test_an_unreachable_api_exits_3_naming_it(stopped_api: dict[str, str], tmp_path: Path) -> None:
    url = stopped_api["QUARRY_API_URL"]
    for args in (
        ("status", "0123abcd-0000-4000-8000-000000000000"),
        ("index", str(tmp_path), "--wait"),
        ("jobs",),
    ):
        result = run_quarry(*args, env=stopped_api, timeout_s=60)
        assert result.returncode == 3, (args, result.stderr)
        assert f"cannot reach {url}" in result.stderr
        assert result.stdout == ""


def test_no_token_and_no_stack_exit_2_saying_how_to_set_them(tmp_path: Path) -> None:
    bare = {"QUARRY_DATA_DIR": str(tmp_path / "nowhere")}
    result = run_quarry("jobs", env=bare, timeout_s=60)
    assert result.returncode == 2
    assert "no API token" in result.stderr and "QUARRY_API_TOKEN" in result.stderr
    assert "Illegal header" not in result.stderr
    env_lines = run_quarry("dev", "env", env=bare, timeout_s=60)
    assert env_lines.returncode == 2 and env_lines.stdout == ""
    assert "no local stack here" in env_lines.stderr and "QUARRY_DATA_DIR" in env_lines.stderr


def test_a_short_prefix_is_bad_input(stopped_api: dict[str, str]) -> None:
    result = run_quarry("status", "abc", env=stopped_api, timeout_s=60)
    assert result.returncode == 2
    assert "at least 4 characters" in result.stderr


def test_help_documents_the_exit_codes() -> None:
    for args in (("--help",), ("index", "--help"), ("status", "--help")):
        text = " ".join(run_quarry(*args, env={}, timeout_s=60).stdout.split())
        assert "Exit codes: 0 done" in text, args
        assert re.search(r"1 (the job )?failed or (was )?cancelled; 2 bad input", text), args
        assert re.search(r"; 3 [^;]*unreachable", text), args


def test_a_done_job_exits_0_and_its_prefix_finds_it(env: dict[str, str], tmp_path: Path) -> None:
    tree = tmp_path / "tiny"
    tree.mkdir()
    (tree / "a.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    done = run_quarry("index", str(tree), "--repo", f"ci-done-{tmp_path.name[-8:]}", "--wait",
                      "--timeout", "300", env=env, timeout_s=330)  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[-1]
    assert UUID.match(job_id)
    status = run_quarry("status", job_id[:8], env=env, timeout_s=60)
    assert status.returncode == 0, status.stderr
    assert status.stdout == "done 100.0 % done\n"
    listed = run_quarry("jobs", "--limit", "50", env=env, timeout_s=60)
    assert job_id in listed.stdout  # whole ids, never cut
    done_only = run_quarry("jobs", "--status", "done", "--json", env=env, timeout_s=60)
    assert done_only.returncode == 0, done_only.stderr
    statuses = {j["status"] for j in json.loads(done_only.stdout)}
    assert statuses == {"done"}
    unknown = run_quarry("jobs", "--status", "sleeping", env=env, timeout_s=60)
    assert unknown.returncode == 2 and "sleeping" in unknown.stderr


def test_a_failed_job_exits_1_and_status_says_failed_on_stdout(
    env: dict[str, str], tmp_path: Path
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(origin)], check=True)
    subprocess.run([*GIT, "-C", str(origin), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(origin), "commit", "-qm", "one"], check=True)
    repo = f"ci-failed-{tmp_path.name[-8:]}"
    failed = run_quarry("index", f"file://{origin}", "--ref", "no-such-branch", "--repo", repo,
                        "--wait", env=env, timeout_s=300)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    job_id = failed.stdout.splitlines()[-1]
    status = run_quarry("status", job_id, env=env, timeout_s=60)
    assert status.returncode == 1
    assert status.stdout.startswith("failed ")
    assert "no-such-branch" in status.stderr


def test_timeout_exits_3_with_the_job_id_and_the_job_can_be_cancelled_by_prefix(
    env: dict[str, str], tmp_path: Path
) -> None:
    tree = tmp_path / "many"
    for i in range(400):
        folder = tree / f"pkg{i // 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    slow = run_quarry("index", str(tree), "--repo", f"ci-slow-{tmp_path.name[-8:]}", "--wait",
                      "--timeout", "1", env=env, timeout_s=120)  # fmt: skip
    assert slow.returncode == 3, slow.stderr
    assert "at --timeout; it goes on running" in slow.stderr
    job_id = slow.stdout.splitlines()[-1]
    assert UUID.match(job_id)
    cancelled = run_quarry("cancel", job_id[:8], env=env, timeout_s=60)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.split() == [job_id, "cancelled"]
    status = run_quarry("status", job_id[:8], env=env, timeout_s=60)
    assert status.returncode == 1
    assert status.stdout.startswith("cancelled ")


def test_an_archive_the_api_refuses_is_named_by_the_users_path(
    env: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "release-1.0.tar.gz"
    archive.write_bytes(b"PK\x03\x04" + bytes(200))  # a zip, named like a .tar.gz
    result = run_quarry("index", str(archive), "--wait", env=env, timeout_s=120)
    assert result.returncode == 2, result.stderr
    assert f"archive {archive}: it is a zip file" in result.stderr
    assert result.stdout == ""


def test_a_dry_run_prints_plain_lines_and_the_git_folder_is_no_skipped_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    tree = tmp_path / "dry"
    (tree / "node_modules" / "lib").mkdir(parents=True)
    (tree / "node_modules" / "lib" / "index.js").write_text("module.exports = 1;\n")
    (tree / "a.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    subprocess.run([*GIT, "init", "-q", str(tree)], check=True)
    result = run_quarry("index", str(tree), "--dry-run", env=env, timeout_s=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "files: 1" in lines
    # One skip, node_modules/: .git/ is the repository's metadata, not a skipped file.
    assert "skipped: 1" in lines
    assert lines[lines.index("skipped_by_reason:") + 1] == "  default_excluded: 1"
    assert "{" not in result.stdout and "PosixPath" not in result.stdout


def test_a_bare_repository_is_indexed_as_git_at_the_given_ref(
    env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(work)], check=True)
    (work / "a.py").write_text("def on_main():\n    return 1\n")
    subprocess.run([*GIT, "-C", str(work), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-qm", "main"], check=True)
    subprocess.run([*GIT, "-C", str(work), "checkout", "-qb", "feature"], check=True)
    (work / "b.py").write_text("def on_feature_only():\n    return 2\n")
    subprocess.run([*GIT, "-C", str(work), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-qm", "feature"], check=True)
    feature = subprocess.run([*GIT, "-C", str(work), "rev-parse", "feature"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    bare = tmp_path / "repo.git"
    subprocess.run([*GIT, "clone", "-q", "--bare", str(work), str(bare)], check=True)
    repo = f"bare-{tmp_path.name[-8:]}"
    done = run_quarry("index", str(bare), "--ref", "feature", "--repo", repo, "--wait",
                      "--json", "--timeout", "300", env=env, timeout_s=330)  # fmt: skip
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["commit"] == feature
    assert final["files"]["total"] == 2  # a.py and b.py: no hooks, objects or refs
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    # For an archive, --ref names only the ref the job publishes to: this one is refused
    # for its content, not for its ref.
    refused = run_quarry("index", str(archive), "--ref", "main", env=env, timeout_s=60)
    assert refused.returncode == 2
    assert "archive" in refused.stderr and "ref" not in refused.stderr
