"""``quarry bench load``: search under concurrent clients against the real API.

One run: a private stack (``quarry dev up`` on free ports, every default but the embed
backend; or ``--api URL`` with one ``--token`` per corpus), one tenant per corpus with
its own read-write token, each corpus (an sdist, fetched once into ``bench/corpora/``)
indexed by a folder job to ``done`` (with ``--api``: jobs name folders under this
machine's /tmp, so that API must run here and allow /tmp in ``source_allowed_roots``);
then

1. ``idle``: only the health prober, a few seconds (the probes' floor);
2. for each N of ``--clients``: N closed-loop clients for ``--duration-s`` with the mix
   of ``bench/load_mix.py`` over every tenant's token;
3. ``write``: a job of the larger ``--writer`` corpus POSTed (first tenant), and once
   its first files are written, ``--write-clients`` clients for ``--duration-s`` while
   it writes; then it is cancelled.

Throughout, ``/healthz`` and ``/readyz`` are probed every ``--probe-interval-s`` on a
connection of their own. Per phase: throughput, latency P50/P95/P99 of the answered
searches (all kinds and per kind), errors by kind, the probes' latencies and failures,
the API's own mean seconds per search step (from /metrics), the load average before and
after, and, on a private stack, each process kind's CPU seconds.

Must not import: api/.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from bench import load_corpora as lc
from bench.e2e_stack import worker_work
from bench.load_clients import (
    HealthProber,
    Sample,
    run_groups,
    search_step_seconds,
    step_means_ms,
)
from bench.load_mix import LoadQuery, TenantCorpus, build_mix, errors_by_kind, latency_summary
from bench.machine import cpu_model
from bench.row_bytes import chunk_row_bytes, repository_rows

CORPORA = ("requests==2.32.3", "click==8.1.7", "attrs==24.2.0")
WRITER = "django==5.2.9"


@dataclass(frozen=True)
class Target:
    """The API under load: its URL, one token per tenant, and (on a private stack) its
    data folder, for the processes' CPU."""

    api_url: str
    tokens: dict[str, str]
    data_dir: Path | None
    postgres_dsn: str | None


@dataclass(frozen=True)
class Plan:
    clients: tuple[int, ...]
    write_clients: int
    duration_s: float
    timeout_s: float
    probe_interval_s: float
    idle_s: float
    flood_clients: int = 0  # 0: no quiet/flood phases
    quiet_clients: int = 4
    write: bool = True


@contextmanager
def _target(
    api: str | None,
    given: Sequence[str],
    tenants: Sequence[str],
    backend: str,
    stack_settings: Mapping[str, Any],
) -> Iterator[Target]:
    if api is not None:
        if len(given) != len(tenants):
            raise typer.BadParameter(f"--token: one per corpus ({len(tenants)}), got {len(given)}")
        yield Target(api.rstrip("/"), dict(zip(tenants, given, strict=True)), None, None)
        return
    from bench.e2e_stack import private_stack
    from config.endpoints import resolve_endpoints

    with private_stack(embed_backend=backend, **stack_settings) as stack:
        dsn = resolve_endpoints(stack.settings).postgres_dsn
        tokens = {tenant: lc.issue_token(dsn, tenant) for tenant in tenants}
        yield Target(str(stack.api.base_url).rstrip("/"), tokens, stack.data_dir, dsn)


def _health(samples: Mapping[str, list[tuple[float, str]]]) -> dict[str, Any]:
    out = {}
    for path, got in samples.items():
        summary = latency_summary([s for s, outcome in got if outcome == "ok"])
        summary["failures"] = errors_by_kind(outcome for _, outcome in got)
        out[path] = summary
    return out


def _searches(samples: Sequence[Sample], elapsed_s: float) -> dict[str, Any]:
    ok = [s for s in samples if s.outcome == "ok"]
    kinds = sorted({s.kind for s in samples})
    return {
        "requests": len(samples),
        "answered": len(ok),
        "elapsed_s": round(elapsed_s, 2),
        "throughput_rps": round(len(ok) / elapsed_s, 1) if elapsed_s else None,
        "latency": latency_summary([s.latency_s for s in ok]),
        "by_kind": {k: latency_summary([s.latency_s for s in ok if s.kind == k]) for k in kinds},
        "by_tenant": by_tenant(samples, elapsed_s),
        "errors": errors_by_kind(s.outcome for s in samples),
        "error_rate": round(1 - len(ok) / len(samples), 4) if samples else None,
    }


def by_tenant(samples: Sequence[Sample], elapsed_s: float) -> dict[str, Any]:
    """Per tenant: its answered searches' latency and throughput, and its errors (a
    flooding tenant's 429s are its own)."""
    out = {}
    for tenant in sorted({s.tenant for s in samples}):
        mine = [s for s in samples if s.tenant == tenant]
        ok = [s.latency_s for s in mine if s.outcome == "ok"]
        out[tenant] = {
            "latency": latency_summary(ok),
            "throughput_rps": round(len(ok) / elapsed_s, 1) if elapsed_s else None,
            "errors": errors_by_kind(s.outcome for s in mine),
        }
    return out


def _phase(
    name: str,
    target: Target,
    plan: Plan,
    clients: int,
    mix: Sequence[Any],
    groups: Sequence[tuple[Sequence[LoadQuery], int]] = (),
) -> dict[str, Any]:
    """One phase: ``clients`` over the whole mix, or ``groups`` (each its own mix and
    clients) when given, or only the probes."""
    probe = None
    if target.data_dir is not None:
        from bench.e2e_proc import StackProbe

        probe = StackProbe(target.data_dir)
    cpu_before = probe.sample() if probe else None
    token = next(iter(target.tokens.values()))
    steps_before = search_step_seconds(target.api_url, token)
    load_before = os.getloadavg()[0]
    client_cpu = time.process_time()
    prober = HealthProber(target.api_url, interval_s=plan.probe_interval_s).start()
    groups = list(groups) or ([(mix, clients)] if clients else [])
    clients = sum(n for _, n in groups)
    if groups:
        samples, elapsed_s = run_groups(
            target.api_url,
            target.tokens,
            groups,
            duration_s=plan.duration_s,
            timeout_s=plan.timeout_s,
        )
    else:
        time.sleep(plan.idle_s)
        samples, elapsed_s = [], plan.idle_s
    health = prober.stop()
    span_s = plan.duration_s if clients else plan.idle_s
    out: dict[str, Any] = {"phase": name, "clients": clients, "duration_s": span_s}
    if clients:
        out |= _searches(samples, elapsed_s)
    out["health"] = _health(health)
    out["server_steps"] = step_means_ms(steps_before, search_step_seconds(target.api_url, token))
    out["load_average_1m_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    out["bench_client_cpu_s"] = round(time.process_time() - client_cpu, 2)
    if probe and cpu_before:
        out["cpu_core_s"] = probe.cpu_between(cpu_before, probe.sample())
    typer.echo(f"quarry bench load: {name}: {json.dumps(out.get('latency', out['health']))}")
    return out


def _writer_progress(target: Target, api: httpx.Client, job: tuple[str, str, str]) -> int:
    """Chunk rows the writer's repository holds (private stack), else its written files
    (an index job's counters reach its status in batches: a coarser measure)."""
    tenant, job_id, repo = job
    if target.postgres_dsn is not None:
        return repository_rows(target.postgres_dsn, tenant, repo)
    return int(lc.job_status(api, target.tokens[tenant], job_id)["files"]["written"])


def _write_phase(
    target: Target, plan: Plan, mix: Sequence[Any], api: httpx.Client, source: Path, repo: str
) -> dict[str, Any]:
    tenant, token = next(iter(target.tokens.items()))
    job_id = lc.post_job(api, token, source, repo)
    job = (tenant, job_id, repo)
    waited = time.monotonic()
    while (before := _writer_progress(target, api, job)) == 0:
        if time.monotonic() - waited > 900:
            raise TimeoutError(f"the writer job {job_id} wrote nothing in 900 s")
        time.sleep(1)
    first_write_s = round(time.monotonic() - waited, 1)
    wall0 = time.time()
    phase = _phase("write", target, plan, plan.write_clients, mix)
    wall1 = time.time()
    after = _writer_progress(target, api, job)
    status = lc.job_status(api, token, job_id)
    unit = "chunk_rows" if target.postgres_dsn is not None else "files_written"
    phase["writer"] = {
        "tenant": tenant,
        "repo": repo,
        "job_id": job_id,
        "files_total": status["files"]["total"],
        "first_write_after_s": first_write_s,
        f"{unit}_before_after": [before, after],
        f"{unit}_per_s": round((after - before) / (wall1 - wall0), 1),
        "status_after": status["status"],
        "stage_after": status["stage"],
    }
    if target.data_dir is not None:
        phase["writer"]["worker_tasks"] = worker_work(target.data_dir / "logs", wall0, wall1)
    phase["writer"]["cancel_status_code"] = lc.cancel_job(api, token, job_id)
    return phase


def run_load(
    corpora: Sequence[str],
    writer: str,
    plan: Plan,
    *,
    api: str | None,
    tokens: Sequence[str],
    backend: str,
    cache: Path,
    seed: int,
    mix_size: int,
    stack_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    stack_settings = dict(stack_settings or {})
    folders = [lc.fetch_sdist(spec, cache) for spec in corpora]
    writer_folder = lc.fetch_sdist(writer, cache)
    tenants = [f"load-{chr(ord('a') + n)}" for n in range(len(folders))]
    tenant_corpora = [
        TenantCorpus(t, f.name, lc.documented(f)) for t, f in zip(tenants, folders, strict=True)
    ]
    mix = build_mix(tenant_corpora, mix_size, seed=seed)
    scratch = Path(tempfile.mkdtemp(prefix="quarry-bench-load-src-", dir="/tmp"))
    scratch.chmod(0o755)
    result: dict[str, Any] = {
        "corpora": {
            c.tenant: {"repo": c.repo, "documented": len(c.functions)} for c in tenant_corpora
        },
        "writer": writer_folder.name,
        "backend": backend,
        "mix": {"size": len(mix), "distinct_queries": len({q.params for q in mix}), "seed": seed},
        "plan": plan.__dict__,
        "stack_settings": stack_settings,
    }
    try:
        with (
            _target(api, tokens, tenants, backend, stack_settings) as target,
            httpx.Client(base_url=target.api_url, timeout=60) as http,
        ):
            indexed = {}
            for corpus, folder in zip(tenant_corpora, folders, strict=True):
                source = lc.scratch_copy(folder, scratch)
                job_id = lc.post_job(http, target.tokens[corpus.tenant], source, corpus.repo)
                status = lc.wait_job(http, target.tokens[corpus.tenant], job_id, timeout_s=3600)
                if status["status"] != "done":
                    raise RuntimeError(f"indexing {corpus.repo}: {status['status']}: {status}")
                indexed[corpus.repo] = {"files": status["files"], "chunks": status["chunks"]}
            result["indexed"] = indexed
            result["api"] = _api_process(target)
            run_groups(  # warm-up, not recorded: the query model and connections warm
                target.api_url,
                target.tokens,
                [(mix, 4)],
                duration_s=5,
                timeout_s=plan.timeout_s,
            )
            phases = [_phase("idle", target, plan, 0, mix)]
            phases += [_phase(f"clients-{n}", target, plan, n, mix) for n in plan.clients]
            phases += _flood_phases(target, plan, mix, tenants[0])
            if plan.write:
                source = lc.scratch_copy(writer_folder, scratch)
                phases.append(_write_phase(target, plan, mix, http, source, writer_folder.name))
            result["phases"] = phases
            if target.postgres_dsn is not None:  # what the rows written so far weigh
                result["row_bytes"] = chunk_row_bytes(target.postgres_dsn)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _flood_phases(
    target: Target, plan: Plan, mix: Sequence[LoadQuery], flooder: str
) -> list[dict[str, Any]]:
    """``quiet``: the other tenants' ``quiet_clients`` alone; ``flood``: the same while
    ``flooder`` sends ``flood_clients`` at once (what one tenant's burst costs the rest)."""
    if not plan.flood_clients:
        return []
    others = [q for q in mix if q.tenant != flooder]
    own = [q for q in mix if q.tenant == flooder]
    if not others or not own:
        raise ValueError("the flood phases need at least two tenants in the mix")
    quiet = (others, plan.quiet_clients)
    return [
        _phase("quiet", target, plan, 0, mix, [quiet]),
        _phase("flood", target, plan, 0, mix, [quiet, (own, plan.flood_clients)]),
    ]


def _api_process(target: Target) -> dict[str, Any]:
    """How the API under load runs: on a private stack, its command line as started."""
    if target.data_dir is None:
        return {"url": target.api_url, "cmdline": None}
    pid = int((target.data_dir / "run" / "api.pid").read_text().split()[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    args = [a.decode() for a in argv if a]
    workers = args[args.index("--workers") + 1] if "--workers" in args else "1 (no --workers)"
    return {"url": target.api_url, "cmdline": args[1:], "uvicorn_workers": workers}


def redacted(argv: Sequence[str]) -> list[str]:
    """The command line as recorded: every ``--token`` value replaced by ``***``."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--token":
            out.append("***")
        elif arg.startswith("--token="):
            out.append("--token=***")
        else:
            out.append(arg)
    return out


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"--clients: comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"--clients: at least one count, each ≥ 1, got {text!r}")
    return values


def bench_load(
    *,
    corpus: Annotated[
        list[str] | None,
        typer.Option(help="NAME==VERSION of an sdist, one tenant each; repeat. Default: 3."),
    ] = None,
    writer: Annotated[str, typer.Option(help="The larger sdist indexed during 'write'.")] = WRITER,
    clients: Annotated[str, typer.Option(help="Concurrent clients per phase.")] = "16,64",
    write_clients: Annotated[int, typer.Option(min=1, help="Clients while the job writes.")] = 16,
    duration_s: Annotated[float, typer.Option(min=1, help="Seconds of each phase.")] = 30,
    timeout_s: Annotated[float, typer.Option(min=0.1, help="A request's timeout.")] = 30,
    probe_interval_s: Annotated[float, typer.Option(min=0.05)] = 0.25,
    api: Annotated[
        str | None, typer.Option(help="Load this API instead of a private stack.")
    ] = None,
    token: Annotated[
        list[str] | None, typer.Option(help="With --api: a read-write token per corpus.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="The private stack's embed_backend: torch or onnx-int8.")
    ] = "torch",
    token_file: Annotated[
        Path | None,
        typer.Option(help="With --api: a file of tokens, one per line (kept out of `ps`)."),
    ] = None,
    cache: Annotated[Path, typer.Option(help="Where sdists are kept.")] = Path("bench/corpora"),
    seed: Annotated[int, typer.Option()] = 7,
    mix_size: Annotated[int, typer.Option(min=1, help="Requests in the mix (cycled).")] = 2000,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
    flood_clients: Annotated[
        int,
        typer.Option(
            min=0,
            help="Add a 'quiet' phase (the other tenants' --quiet-clients) and a 'flood'"
            " phase (the same while the first tenant sends this many at once). 0: neither.",
        ),
    ] = 0,
    quiet_clients: Annotated[int, typer.Option(min=1, help="See --flood-clients.")] = 4,
    write: Annotated[bool, typer.Option(help="Run the 'write' phase.")] = True,
    search_tenant_concurrency: Annotated[
        int | None,
        typer.Option(
            min=0, help="The private stack's search_tenant_concurrency (0: no per-tenant bound)."
        ),
    ] = None,
) -> None:
    """N concurrent search clients against the real API, then the same while a larger
    repository is indexed; latencies, throughput, errors and health probes as JSON."""
    if backend not in ("torch", "onnx-int8", "onnx-int8-smooth"):
        raise typer.BadParameter(
            f"--backend: torch, onnx-int8 or onnx-int8-smooth, got {backend!r}"
        )
    if token_file is not None:
        token = [*(token or []), *token_file.read_text(encoding="utf-8").split()]
    if token and api is None:
        raise typer.BadParameter("--token: only with --api (a private stack issues its own)")
    if search_tenant_concurrency is not None and api is not None:
        raise typer.BadParameter("--search-tenant-concurrency: only for a private stack")
    plan = Plan(
        _ints(clients),
        write_clients,
        duration_s,
        timeout_s,
        probe_interval_s,
        5.0,
        flood_clients=flood_clients,
        quiet_clients=quiet_clients,
        write=write,
    )
    stack_settings = (
        {}
        if search_tenant_concurrency is None
        else {"search_tenant_concurrency": search_tenant_concurrency}
    )
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = run_load(
        corpus or list(CORPORA),
        writer,
        plan,
        api=api,
        tokens=token or [],
        backend=backend,
        cache=cache,
        seed=seed,
        mix_size=mix_size,
        stack_settings=stack_settings,
    )
    result.update(
        command=" ".join(["quarry", "bench", "load", *redacted(sys.argv[3:])]),
        machine=f"{cpu_model()}, {os.cpu_count()} cores",
        load_average_before=[round(v, 2) for v in load_before],
        load_average_after=[round(v, 2) for v in os.getloadavg()],
        started=started,
    )
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
