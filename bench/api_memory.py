"""``quarry bench api-memory``: the API process's memory as the local stack runs it, the
query model's idle unload and timed reload, and the embed worker's peak memory.

One private stack (``quarry dev up`` on free ports, every default but
``search_query_model_idle_s``), one folder job of a corpus to ``done``, then, read from
/proc of the stack's own API process (uvicorn, as ``quarry dev up`` starts it): VmRSS
after start-up (the query model warmed), after the first and after 11 searches of distinct queries
(the Redis query cache cannot answer them), after the idle unload, and after the next
search (which reloads the model: its time is the API's own ``query model loaded in``
log line); whether torch or scipy is mapped into the API; and each process kind's peak
RSS (VmHWM) over the run, the embed worker's included.

Must not import: api/.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.corpus import corpus_root
from bench.e2e_stack import Stack, private_stack, run_job
from bench.machine import cpu_model

QUERIES = (
    "send an HTTP request with a timeout",
    "parse the charset from a content type header",
    "retry a failed connection",
    "read credentials from a netrc file",
    "merge session settings with request settings",
    "encode a dictionary as a query string",
    "follow redirects and rebuild the authorization header",
    "stream a response body in chunks",
    "check whether a proxy should be bypassed",
    "raise an error for a 4xx or 5xx status code",
)
HEAVY = ("/torch/", "/scipy/", "/sklearn/")
_LOADED = re.compile(r"query model loaded in ([0-9.]+) s")


def _status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _api_pid(stack: Stack) -> int:
    return int((stack.data_dir / "run" / "api.pid").read_text().split()[0])


def _heavy_mapped(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({h.strip("/") for h in HEAVY if h in maps})


def _loads_logged(stack: Stack) -> list[float]:
    text = (stack.data_dir / "logs" / "api.log").read_text(errors="replace")
    return [float(m.group(1)) for m in _LOADED.finditer(text)]


def _search(stack: Stack, query: str, repo: str) -> float:
    started = time.perf_counter()
    answer = stack.api.get("/v1/search", params={"q": query, "repo": repo, "k": 10})
    answer.raise_for_status()
    return round(time.perf_counter() - started, 3)


def _wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not seen in {timeout_s} s")
        time.sleep(0.2)


def measure(stack: Stack, source: Path, idle_s: float) -> dict[str, Any]:
    pid = _api_pid(stack)
    _wait_for(lambda: _loads_logged(stack), 120, "the API's warm-up load")
    result: dict[str, Any] = {"api_pid": pid, "api_after_start": _status_kb(pid)}
    job = run_job(stack, source, "corpus", poll_s=0.2, timeout_s=3600)
    result["job"] = {k: job[k] for k in ("status", "wall_s", "files", "chunks")}
    result["api_after_job"] = _status_kb(pid)
    result["search_s"] = [_search(stack, f"{QUERIES[0]} (0)", "corpus")]
    result["api_after_first_search"] = _status_kb(pid)
    result["search_s"] += [_search(stack, f"{q} ({n})", "corpus") for n, q in enumerate(QUERIES)]
    result["api_after_searches"] = _status_kb(pid)
    result["heavy_mapped_after_searches"] = _heavy_mapped(pid)
    api_log = stack.data_dir / "logs" / "api.log"
    unloaded = lambda: "unloaded after" in api_log.read_text(errors="replace")  # noqa: E731
    _wait_for(unloaded, idle_s + 60, "the idle unload's log line")
    time.sleep(0.5)
    result["api_after_idle_unload"] = _status_kb(pid)
    loads = len(_loads_logged(stack))
    result["reload_search_s"] = _search(stack, "reload: send a request with a timeout", "corpus")
    _wait_for(lambda: len(_loads_logged(stack)) > loads, 10, "the reload's log line")
    result["reload_s"] = _loads_logged(stack)[-1]
    result["api_after_reload"] = _status_kb(pid)
    result["heavy_mapped_at_end"] = _heavy_mapped(pid)
    result["peak_rss_mb"] = stack.probe.peak_rss_mb()
    return result


def bench_api_memory(
    corpus: Annotated[Path, typer.Option(help="A source folder or a .tar.gz sdist.")],
    *,
    idle_s: Annotated[float, typer.Option(help="search_query_model_idle_s of the stack.")] = 20,
    backend: Annotated[str, typer.Option(help="embed_backend: torch or onnx-int8.")] = "torch",
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """The API's RSS after searches, its idle unload and timed reload; the embed worker's
    peak RSS; on a private stack indexing CORPUS."""
    if not corpus.exists():
        typer.echo(f"quarry: error: corpus does not exist: {corpus}", err=True)
        raise typer.Exit(2)
    load_before = os.getloadavg()
    with (
        corpus_root(corpus) as root,
        private_stack(search_query_model_idle_s=idle_s, embed_backend=backend) as stack,
    ):
        result = measure(stack, root, idle_s)
    result.update(
        corpus=corpus.name,
        backend=backend,
        idle_s=idle_s,
        machine=f"{cpu_model()}, {os.cpu_count()} cores",
        load_average_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
