"""``quarry bench fairness``: a small repository's time to done behind a large one of
another tenant, against its time on an idle stack, in one run.

What runs: a private stack (``quarry dev up``: Redis, PostgreSQL, the graph server, the
``cpu`` and ``embed`` workers, the API) on free ports, one per ``--window-files`` asked
for (0: no window, every slice sent at once, as before fair sharing). Tenants ``a`` and
``b`` get tokens of their own (``quarry token create``). On each stack:

1. a warm-up job (tenant b, 5 files) loads the embedding model;
2. *idle*: tenant b indexes the small repository (``--small``: the first 50 ``.py`` files
   of a real sdist) alone; its time from POST to done;
3. *busy*: tenant a enqueues the generated repository (``--files`` small modules, as
   ``quarry bench scale`` generates them); ``--delay-s`` later tenant b enqueues the small
   repository again under another name, the embedding cache emptied first (so that it
   embeds as much as in step 2); its time from POST to done, and how far a's job got.
   Then a's job is cancelled.

The figure: busy / idle. The machine's load average is read before and after each step.

Must not import: api/, workers/, tasks/, torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from bench.e2e_stack import Stack, private_stack
from bench.machine import cpu_model
from bench.scale import generate
from config.endpoints import resolve_endpoints
from config.settings import child_environment

TERMINAL = ("done", "failed", "cancelled")
SMALL_FILES = 50
POLL_S = 0.2


def small_tree(source: Path, dest: Path, nonce: str, count: int = SMALL_FILES) -> int:
    """The first ``count`` .py files of ``source`` (an sdist .tar.gz or a folder) under
    ``dest``, each ending with a comment naming ``nonce`` (distinct content per copy)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = source
        if source.is_file():
            with tarfile.open(source) as archive:
                archive.extractall(tmp, filter="data")
            root = Path(tmp)
        files = sorted(p for p in root.rglob("*.py") if p.is_file())[:count]
        for path in files:
            target = dest / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(errors="replace") + f"\n# copy: {nonce}\n")
    return len(files)


def tenant_token(stack: Stack, tenant: str) -> str:
    """A new token of ``tenant`` on the stack (the operator's ``quarry token create``)."""
    quarry = str(Path(sys.executable).with_name("quarry"))
    result = subprocess.run(
        [quarry, "token", "create", "--tenant", tenant, "--label", "bench-fairness"],
        env=child_environment(stack.settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def post_job(api: httpx.Client, token: str, source: Path, repo: str) -> tuple[str, float]:
    started = time.perf_counter()
    response = api.post(
        "/v1/jobs",
        json={"source": str(source), "repo": repo},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return str(response.json()["job_id"]), started


def follow(
    api: httpx.Client, token: str, job_id: str, started: float, timeout_s: float
) -> dict[str, Any]:
    """Poll the job until it ends (or ``timeout_s``); its time to done and counters."""
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        status = api.get(f"/v1/jobs/{job_id}", headers=headers).json()
        elapsed = time.perf_counter() - started
        if status["status"] in TERMINAL or elapsed > timeout_s:
            return {
                "job_id": job_id,
                "status": status["status"] if status["status"] in TERMINAL else "timed out",
                "time_to_done_s": round(elapsed, 2),
                "files": status.get("files"),
                "chunks": status.get("chunks"),
            }
        time.sleep(POLL_S)


def empty_embedding_cache(stack: Stack) -> None:
    import psycopg

    with psycopg.connect(resolve_endpoints(stack.settings).postgres_dsn) as conn:
        conn.execute("DELETE FROM embedding_cache")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_stack(
    window_files: int, tree: Path, small: Path, scratch: Path, delay_s: float, timeout_s: float
) -> dict[str, Any]:
    copies = {n: scratch / f"small-{n}-w{window_files}" for n in ("warm", "idle", "busy")}
    for nonce, dest in copies.items():
        small_tree(small, dest, f"{nonce}-{window_files}", 5 if nonce == "warm" else SMALL_FILES)
    with private_stack(job_window_files=window_files, source_allowed_roots=(scratch,)) as stack:
        api = stack.api
        a, b = tenant_token(stack, "a"), tenant_token(stack, "b")
        steps: dict[str, Any] = {"load_start": load()}
        follow(api, b, *post_job(api, b, copies["warm"], "warm-up"), timeout_s)
        empty_embedding_cache(stack)  # the warm-up's chunks are the small repository's
        steps["load_before_idle"] = load()
        steps["idle"] = follow(api, b, *post_job(api, b, copies["idle"], "small-idle"), timeout_s)
        empty_embedding_cache(stack)
        steps["load_before_busy"] = load()
        big_id, _ = post_job(api, a, tree, "generated")
        time.sleep(delay_s)
        steps["busy"] = follow(api, b, *post_job(api, b, copies["busy"], "small-busy"), timeout_s)
        steps["load_after_busy"] = load()
        auth = {"Authorization": f"Bearer {a}"}
        big = api.get(f"/v1/jobs/{big_id}", headers=auth).json()
        steps["large_at_small_done"] = {"status": big["status"], "files": big.get("files")}
        api.delete(f"/v1/jobs/{big_id}", headers=auth)
        idle_s, busy_s = steps["idle"]["time_to_done_s"], steps["busy"]["time_to_done_s"]
        steps["ratio"] = round(busy_s / idle_s, 2) if idle_s else None
        steps["settings"] = {
            "job_window_files": stack.settings.job_window_files,
            "job_ingest_slice_files": stack.settings.job_ingest_slice_files,
            "worker_cpu_concurrency": stack.settings.worker_cpu_concurrency,
            "worker_embed_concurrency": stack.settings.worker_embed_concurrency,
            "embed_backend": stack.settings.embed_backend,
            "api": resolve_endpoints(stack.settings).api_url,
        }
        return steps


def bench_fairness(
    small: Annotated[Path, typer.Option(help="The small repository: an sdist .tar.gz or folder.")],
    files: Annotated[
        int, typer.Option(min=10, help="Modules of the large generated repository.")
    ] = 20_000,
    window_files: Annotated[
        list[int] | None,
        typer.Option(help="job_window_files of a stack; repeat for more stacks (0: no window)."),
    ] = None,
    delay_s: Annotated[
        float, typer.Option(help="Seconds between the large and small POSTs.")
    ] = 10.0,
    timeout_s: Annotated[float, typer.Option(help="Most seconds to follow one job.")] = 600.0,
    scratch: Annotated[Path, typer.Option(help="Where the trees are made (kept).")] = Path(
        "/tmp/quarry-bench-fairness"
    ),
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Tenant b's small repository behind tenant a's large one, against b alone (see
    bench/fairness.py): time to done, both, on one stack per window."""
    tree = scratch / f"tree-{files}"
    tree.mkdir(parents=True, exist_ok=True)
    corpus = generate(tree, files)
    runs: dict[str, Any] = {}
    for window in window_files or [64]:
        runs[str(window)] = run_stack(window, tree, small, scratch, delay_s, timeout_s)
        # each stack's figures as soon as it is done (a later stack may take long)
        print(json.dumps({"window_files": window, **runs[str(window)]}), file=sys.stderr)
    result = {
        "command": " ".join(["quarry", "bench", "fairness", *sys.argv[3:]]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model()},
        "corpus": {"large": corpus, "small": f"{small.name}: first {SMALL_FILES} .py files"},
        "delay_s": delay_s,
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.write_text(text + "\n")
