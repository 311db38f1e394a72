"""``quarry bench refs``: what a branch costs against the cold index of its repository.

A real repository nobody here wrote, with real history: two consecutive releases'
source distributions (``pip download --no-deps --no-binary :all:``, cached under the
gitignored ``bench/corpora/sdists/``) become a git repository in a scratch folder under
/tmp: release A committed on ``main``; a branch ``release-next`` holding release B's
tree; a branch ``feature/three-files`` that appends a small function to 3 ``.py`` files
of A. A bare clone of it is the job source (the private stack allows /tmp).

On a private local stack (real Redis, PostgreSQL, graph server, the ``cpu`` and
``embed`` workers with the real model, the API; :func:`bench.e2e_stack.private_stack`
on free ports), through ``POST /v1/jobs`` with ``"ref"``, one job at a time:

1. ``main`` cold (the embedding cache empty);
2. each branch: wall time POST -> ``done``, the job's files todo/written and chunks
   embedded/cached, and the rows each table of the repository gained in PostgreSQL
   (chunks, files, file_symbols, snapshots; embedding_cache for all), and the graph
   nodes the repository gained (0 expected: the graph follows the default ref);
3. the ratios branch / cold (wall time, chunks embedded, chunk rows added), then
   ``DELETE /v1/refs`` of each branch and the rows that freed.

Must not import: api/, workers/, tasks/, torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.e2e_stack import TERMINAL, Stack, private_stack
from bench.machine import cpu_model
from config.endpoints import resolve_endpoints
from pipeline.adapters.neo4j.graph_store import graph_store_from
from pipeline.adapters.postgres.connect import connect
from pipeline.models import RepoRef

ROOT = Path(__file__).resolve().parents[1]
SDIST_CACHE = ROOT / "bench" / "corpora" / "sdists"
REPO_NAME = "requests"
DEFAULT_REF = "main"
RELEASE_BRANCH = "release-next"
FEATURE_BRANCH = "feature/three-files"
FEATURE_FILES = 3
FEATURE_MIN_BYTES = 1000
# Rows of the repository counted before and after each step; embedding_cache is global.
REPO_TABLES = ("chunks", "files", "file_symbols", "snapshots")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "quarry bench",
    "GIT_AUTHOR_EMAIL": "bench@quarry.invalid",
    "GIT_COMMITTER_NAME": "quarry bench",
    "GIT_COMMITTER_EMAIL": "bench@quarry.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


# Pure parts (tests/bench/test_refs.py) ------------------------------------------------


def pick_files(
    sizes: Mapping[str, int], count: int, min_bytes: int = FEATURE_MIN_BYTES
) -> list[str]:
    """``count`` ``.py`` paths of at least ``min_bytes``, spread evenly over their sorted
    order (the same tree always gives the same picks); ValueError if too few."""
    eligible = sorted(p for p, size in sizes.items() if p.endswith(".py") and size >= min_bytes)
    if count < 1 or len(eligible) < count:
        raise ValueError(f"need {count} .py files of >= {min_bytes} bytes, found {len(eligible)}")
    return [eligible[i * len(eligible) // count] for i in range(count)]


def probe_function(index: int) -> str:
    """The small function the feature branch appends to its ``index``-th file."""
    return (
        f"\n\ndef quarry_branch_probe_{index}(value):\n"
        f'    """Double ``value``: added on {FEATURE_BRANCH} ({index})."""\n'
        f"    return value * 2\n"
    )


def row_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Per table, the rows ``after`` holds more than ``before`` (negative: freed)."""
    return {name: after[name] - before.get(name, 0) for name in after}


def ratio(part: float | int | None, whole: float | int | None) -> float | None:
    """``part / whole`` to 4 places; None when either is missing or ``whole`` is 0."""
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def branch_ratios(branch: Mapping[str, Any], cold: Mapping[str, Any]) -> dict[str, float | None]:
    """Branch over cold: wall time, chunks embedded, chunk rows added, files written."""
    return {
        "wall_s": ratio(branch["wall_s"], cold["wall_s"]),
        "chunks_embedded": ratio(branch["chunks"]["embedded"], cold["chunks"]["embedded"]),
        "chunk_rows_added": ratio(branch["rows_added"]["chunks"], cold["rows_added"]["chunks"]),
        "files_written": ratio(branch["files"]["written"], cold["files"]["written"]),
    }


def figures_table(result: Mapping[str, Any]) -> str:
    """The figures as a Markdown table: one column per step (cold, each branch)."""
    steps = [("cold `main`", result["cold"])] + [
        (f"`{name}`", step) for name, step in result["branches"].items()
    ]
    rows: list[tuple[str, Any]] = [
        ("files changed vs main (git)", lambda s: s.get("changed_files_git", "-")),
        ("wall s (POST -> done)", lambda s: s["wall_s"]),
        ("files todo / written", lambda s: f"{s['files']['todo']} / {s['files']['written']}"),
        (
            "chunks embedded / cached",
            lambda s: f"{s['chunks']['embedded']} / {s['chunks']['cached']}",
        ),
        ("chunk rows added", lambda s: s["rows_added"]["chunks"]),
        ("files rows added", lambda s: s["rows_added"]["files"]),
        ("file_symbols rows added", lambda s: s["rows_added"]["file_symbols"]),
        ("embedding_cache rows added", lambda s: s["rows_added"]["embedding_cache"]),
        ("graph nodes added", lambda s: s["graph_nodes_added"]),
        ("ratio wall (branch/cold)", lambda s: s.get("ratio", {}).get("wall_s", "-")),
        ("ratio chunks embedded", lambda s: s.get("ratio", {}).get("chunks_embedded", "-")),
        ("ratio chunk rows added", lambda s: s.get("ratio", {}).get("chunk_rows_added", "-")),
        ("delete ref: chunk rows freed", lambda s: _freed(s, "chunks")),
        ("delete ref: files rows freed", lambda s: _freed(s, "files")),
    ]
    lines = [
        "| figure | " + " | ".join(name for name, _ in steps) + " |",
        "|---|" + "---:|" * len(steps),
    ]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(s)) for _, s in steps) + " |")
    return "\n".join(lines)


def _freed(step: Mapping[str, Any], table: str) -> Any:
    deleted = step.get("delete")
    return "-" if deleted is None else -deleted["rows_delta"][table]


# The corpus ------------------------------------------------------------------------------


def sdist(package: str, version: str, cache: Path) -> Path:
    """The cached sdist of ``package==version`` (downloaded by pip on first use)."""
    cache.mkdir(parents=True, exist_ok=True)
    for suffix in (".tar.gz", ".zip"):
        for name in (package, package.replace("-", "_")):
            found = cache / f"{name}-{version}{suffix}"
            if found.is_file():
                return found
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "--dest", str(cache), f"{package}=={version}"], check=True)
    return sdist(package, version, cache)


def unpack(archive: Path, dest: Path) -> Path:
    """The single top folder of a .tar.gz sdist, unpacked under ``dest``."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def _replace_tree(work: Path, tree: Path) -> None:
    for entry in work.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(tree, work, dirs_exist_ok=True)


def build_repository(tree_a: Path, tree_b: Path, scratch: Path) -> dict[str, Any]:
    """main = A; release-next = B; feature/three-files = A + a function in 3 files; a
    bare clone of it (the job source). Returns its path, commits and changed paths."""
    work = scratch / "work"
    work.mkdir()
    _git(work, "init", "--quiet", "--initial-branch", DEFAULT_REF)
    _replace_tree(work, tree_a)
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "--message", f"release {tree_a.name}")
    _git(work, "checkout", "--quiet", "-b", RELEASE_BRANCH)
    _replace_tree(work, tree_b)
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "--message", f"release {tree_b.name}")
    _git(work, "checkout", "--quiet", DEFAULT_REF)
    _git(work, "checkout", "--quiet", "-b", FEATURE_BRANCH)
    sizes = {p.relative_to(work).as_posix(): p.stat().st_size for p in work.rglob("*.py")}
    picks = pick_files({p: s for p, s in sizes.items() if not p.startswith(".git/")}, FEATURE_FILES)
    for i, rel in enumerate(picks):
        with (work / rel).open("a") as handle:
            handle.write(probe_function(i))
    _git(work, "commit", "--quiet", "--all", "--message", "three small functions")
    bare = scratch / f"{REPO_NAME}.git"
    _git(scratch, "clone", "--quiet", "--bare", str(work), str(bare))
    branches = (DEFAULT_REF, RELEASE_BRANCH, FEATURE_BRANCH)
    return {
        "bare": bare,
        "commits": {b: _git(bare, "rev-parse", f"refs/heads/{b}") for b in branches},
        "files_in_main": len(_git(bare, "ls-tree", "-r", "--name-only", DEFAULT_REF).splitlines()),
        "changed": {
            b: _git(bare, "diff", "--name-only", DEFAULT_REF, b).splitlines() for b in branches[1:]
        },
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The stack -------------------------------------------------------------------------------


class Counter:
    """Rows of the repository in PostgreSQL and its nodes in the graph server."""

    def __init__(self, stack: Stack) -> None:
        endpoints = resolve_endpoints(stack.settings)
        self._pg = connect(endpoints.postgres_dsn, autocommit=True)
        self._graph = graph_store_from(stack.settings, endpoints)
        self._repo_id: int | None = None
        self._repo: RepoRef | None = None

    def close(self) -> None:
        self._pg.close()
        self._graph.close()

    def _find(self) -> None:
        row = self._pg.execute(
            "SELECT id, tenant_id FROM repositories WHERE name = %s", (REPO_NAME,)
        ).fetchone()
        if row is not None:
            self._repo_id, self._repo = int(row[0]), RepoRef(str(row[1]), REPO_NAME)

    def rows(self) -> dict[str, int]:
        if self._repo_id is None:
            self._find()
        counts = {}
        for table in REPO_TABLES:  # fixed names, not input
            query = f"SELECT count(*) FROM {table} WHERE repository_id = %s"
            found = self._pg.execute(query, (self._repo_id or -1,)).fetchone()
            counts[table] = int(found[0]) if found else 0
        cache = self._pg.execute("SELECT count(*) FROM embedding_cache").fetchone()
        counts["embedding_cache"] = int(cache[0]) if cache else 0
        return counts

    def graph_nodes(self) -> int:
        if self._repo is None:
            self._find()
        return 0 if self._repo is None else len(self._graph.node_ids(self._repo))


def index_ref(
    stack: Stack, counter: Counter, bare: Path, ref: str, timeout_s: float
) -> dict[str, Any]:
    """POST a job for ``ref`` of the bare repository; poll to its end; what it added."""
    rows0, nodes0 = counter.rows(), counter.graph_nodes()
    started = time.perf_counter()
    body = {"source": str(bare), "repo": REPO_NAME, "ref": ref}
    response = stack.api.post("/v1/jobs", json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"POST /v1/jobs {body}: {response.status_code} {response.text}")
    job_id = response.json()["job_id"]
    while True:
        status = stack.api.get(f"/v1/jobs/{job_id}").json()
        if status["status"] in TERMINAL:
            break
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"job {job_id} for ref {ref} did not end in {timeout_s} s")
        time.sleep(0.1)
    wall_s = time.perf_counter() - started
    if status["status"] != "done":
        raise RuntimeError(f"job {job_id} for ref {ref}: {status['status']}: {status['message']}")
    rows1, nodes1 = counter.rows(), counter.graph_nodes()
    return {
        "job_id": job_id,
        "ref": status["ref"],
        "commit": status["commit"],
        "published": status["published"],
        "wall_s": round(wall_s, 2),
        "files": {k: v for k, v in status["files"].items() if k != "skipped_by_reason"},
        "chunks": status["chunks"],
        "rows_before": rows0,
        "rows_added": row_delta(rows0, rows1),
        "graph_nodes_before": nodes0,
        "graph_nodes_added": nodes1 - nodes0,
    }


def delete_ref(stack: Stack, counter: Counter, ref: str) -> dict[str, Any]:
    """DELETE /v1/refs for ``ref``: the API's answer and the rows it freed."""
    rows0, nodes0 = counter.rows(), counter.graph_nodes()
    response = stack.api.delete("/v1/refs", params={"repo": REPO_NAME, "ref": ref})
    if response.status_code >= 300:
        raise RuntimeError(f"DELETE /v1/refs {ref}: {response.status_code} {response.text}")
    rows1 = counter.rows()
    return {
        "answer": response.json(),
        "rows_delta": row_delta(rows0, rows1),
        "graph_nodes_delta": counter.graph_nodes() - nodes0,
    }


# The command -----------------------------------------------------------------------------


def measure(package: str, old: str, new: str, scratch: Path, timeout_s: float) -> dict[str, Any]:
    archives = [sdist(package, v, SDIST_CACHE) for v in (old, new)]
    trees = [unpack(a, scratch / f"sdist-{i}") for i, a in enumerate(archives)]
    built = build_repository(trees[0], trees[1], scratch)
    bare: Path = built["bare"]
    load_start = [round(v, 2) for v in os.getloadavg()]
    with private_stack() as stack:
        counter = Counter(stack)
        try:
            cold = index_ref(stack, counter, bare, DEFAULT_REF, timeout_s)
            branches = {}
            for branch in (RELEASE_BRANCH, FEATURE_BRANCH):
                step = index_ref(stack, counter, bare, branch, timeout_s)
                step["changed_files_git"] = len(built["changed"][branch])
                step["changed_paths_git"] = built["changed"][branch]
                step["ratio"] = branch_ratios(step, cold)
                branches[branch] = step
            listed = stack.api.get("/v1/refs", params={"repo": REPO_NAME}).json()
            for branch, step in branches.items():
                step["delete"] = delete_ref(stack, counter, branch)
            rows_end = counter.rows()
        finally:
            counter.close()
    return {
        "command": f"quarry bench refs --package {package} --old {old} --new {new}",
        "corpus": {
            "package": package,
            "releases": [
                {"version": v, "sdist": a.name, "sha256": _sha256(a), "bytes": a.stat().st_size}
                for v, a in zip((old, new), archives, strict=True)
            ],
            "files_in_main": built["files_in_main"],
            "commits": built["commits"],
        },
        "cold": cold,
        "branches": branches,
        "refs_listed": listed,
        "rows_end": rows_end,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": load_start,
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        },
        "quarry_commit": _git(ROOT, "rev-parse", "--short", "HEAD"),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def bench_refs(
    package: Annotated[str, typer.Option(help="A PyPI package with sdists.")] = "requests",
    old: Annotated[str, typer.Option(help="Release A (on main).")] = "2.32.2",
    new: Annotated[str, typer.Option(help="Release B (on release-next).")] = "2.32.3",
    out: Annotated[Path | None, typer.Option(help="Also write the result JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout_s: Annotated[float, typer.Option(help="Per job, POST -> done.")] = 1800.0,
) -> None:
    """The cost of indexing a branch (new ref) against the repository's cold index."""
    scratch = Path(tempfile.mkdtemp(prefix="quarry-bench-refs-", dir="/tmp"))
    scratch.chmod(0o711)
    try:
        result = measure(package, old, new, scratch, timeout_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(figures_table(result))
    typer.echo(f"machine: {json.dumps(result['machine'])}")
