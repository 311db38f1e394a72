"""The load benchmark's corpora and tenants: sdists fetched once, indexed through the API.

Owns: fetching a source distribution (``pip download --no-deps --no-binary :all:``) into
a git-ignored cache folder and unpacking it there once; copying it to a scratch folder
a job may name; a tenant's documented functions (``cli.evaluation.build_set``: the
docstrings' first sentences, with file and name); issuing a tenant's token on a private
stack; and one folder job POSTed with a tenant's token and polled to its end.

Must not import: api/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.load_mix import Documented
from cli.evaluation import build_set

TERMINAL = ("done", "failed", "cancelled")
_PIP_DOWNLOAD = (sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:")
_SPEC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def fetch_sdist(spec: str, cache: Path) -> Path:
    """The unpacked folder of ``NAME==VERSION``'s sdist under ``cache``: downloaded and
    unpacked the first time, reused after. A ValueError names a malformed spec."""
    found = _SPEC.match(spec)
    if not found:
        raise ValueError(f"corpus {spec!r}: give NAME==VERSION, e.g. requests==2.32.3")
    name, version = found.groups()
    cache.mkdir(parents=True, exist_ok=True)
    wanted = f"{_normal(name)}-{version}"

    def archive() -> Path | None:
        for path in cache.glob("*.tar.gz"):
            if _normal(path.name.removesuffix(".tar.gz")) == _normal(wanted):
                return path
        return None

    if archive() is None:
        subprocess.run(
            [*_PIP_DOWNLOAD, "--quiet", "-d", str(cache), spec],
            check=True,
            timeout=600,
        )
    path = archive()
    if path is None:
        raise FileNotFoundError(f"corpus {spec!r}: pip downloaded no {wanted}.tar.gz")
    folder = cache / path.name.removesuffix(".tar.gz")
    if not folder.is_dir():
        with tarfile.open(path) as tar:
            tar.extractall(cache, filter="data")
    return folder


def documented(root: Path) -> tuple[Documented, ...]:
    """Every documented function of the corpus (``quarry eval``'s set, duplicates kept)."""
    found = build_set(root, drop_ambiguous=False).queries
    return tuple(Documented(q.text, q.path, q.name) for q in found)


def scratch_copy(folder: Path, scratch: Path) -> Path:
    """A copy of ``folder`` in ``scratch`` (a folder a job may name), made once."""
    target = scratch / folder.name
    if not target.exists():
        shutil.copytree(folder, target, symlinks=True)
    return target


def issue_token(postgres_dsn: str, tenant: str) -> str:
    """A read-write token of ``tenant`` (an operator's act, as ``quarry token create``)."""
    from pipeline.adapters.postgres.token_store import PgTokenStore

    store = PgTokenStore(postgres_dsn, pool_size=1)
    try:
        return store.issue(tenant, "quarry bench load", ("read", "write")).token
    finally:
        store.close()


def post_job(api: httpx.Client, token: str, source: Path, repo: str) -> str:
    response = api.post(
        "/v1/jobs",
        json={"source": str(source), "repo": repo},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code not in (200, 202):
        raise RuntimeError(f"POST /v1/jobs for {repo}: {response.status_code} {response.text}")
    return str(response.json()["job_id"])


def job_status(api: httpx.Client, token: str, job_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def wait_job(
    api: httpx.Client, token: str, job_id: str, *, timeout_s: float, poll_s: float = 1.0
) -> dict[str, Any]:
    """Poll a job to its end; its last status. A TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = job_status(api, token, job_id)
        if status["status"] in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not end in {timeout_s} s: {status['stage']}")
        time.sleep(poll_s)


def cancel_job(api: httpx.Client, token: str, job_id: str) -> int:
    """DELETE the job (cancel it); the status code."""
    response = api.delete(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    return response.status_code
