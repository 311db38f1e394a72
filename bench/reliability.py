"""The long reliability run (issue 9, scenario 7): kills, outages, a Redis kill and a
burst on a private local stack, each job checked against the oracle; figures to JSON.

    .venv/bin/python bench/reliability.py --kills 21 --outage-s 60 --burst-s 60 \\
        --json bench/results/reliability.json

Every job indexes a copy of a real package (pathspec, tests/fixtures) as a new
repository; the scenarios are those of tests/workers/scenarios.py, which the CI tests
run at a small scale. A job that does not end within --job-timeout-s is recorded as
not done (with its last status), never retried.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests/ is a namespace package under the repository root
    sys.path.append(str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from config.endpoints import resolve_endpoints  # noqa: E402
from config.settings import load_settings  # noqa: E402
from devstack.stack import Stack  # noqa: E402
from tests.stackutil import stack_env, stack_folder  # noqa: E402
from tests.workers.jobs_api import corpus, wait  # noqa: E402
from tests.workers.scenarios import (  # noqa: E402
    KILL_TARGETS,
    Record,
    burst,
    kill_worker,
    redis_kill,
    run_job,
    store_outage,
    webhook_kill,
)


def _safe(record_of: Callable[[], Record], scenario: str) -> Record:
    try:
        return record_of()
    except (AssertionError, httpx.HTTPError) as exc:
        text = f"{type(exc).__name__}: {exc}"
        # The head says what failed; the tail holds the diagnosis (queues, worker logs).
        error = text if len(text) <= 4000 else f"{text[:1000]} [...] {text[-3000:]}"
        return Record(scenario, {"error": error}, "error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=21)
    parser.add_argument("--webhook-kills", type=int, default=4)
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--redis-kills", type=int, default=2)
    parser.add_argument("--burst-s", type=float, default=60.0)
    parser.add_argument("--burst-bound", type=int, default=5)
    parser.add_argument("--job-timeout-s", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    records: list[Record] = []
    started = time.time()
    with stack_folder("quarry-reliability-") as data_dir:
        settings = load_settings(env=stack_env(data_dir))
        stack = Stack(settings)
        stack.up()
        endpoints = resolve_endpoints(settings)
        headers = {"Authorization": f"Bearer {endpoints.api_token}"}
        scratch = Path(tempfile.mkdtemp(prefix="quarry-reliability-tree-"))
        tree = scratch / "pathspec"
        shutil.copytree(corpus(), tree, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as api:

                def job(scenario: str, disrupt: Callable[[str], dict[str, Any]]) -> None:
                    fresh = _fresh_copy(tree, scratch / f"job-{len(records)}")
                    record = _safe(
                        lambda: run_job(
                            api, stack, endpoints, fresh, scenario, disrupt,
                            timeout_s=args.job_timeout_s,
                        ),
                        scenario,
                    )  # fmt: skip
                    shutil.rmtree(fresh, ignore_errors=True)
                    records.append(record)
                    print(json.dumps(record.as_dict()), flush=True)

                for i in range(args.kills):
                    target = KILL_TARGETS[i % len(KILL_TARGETS)]
                    job(f"kill-{target}", kill_worker(api, stack, endpoints, target))
                for i in range(args.webhook_kills):
                    fresh = _fresh_copy(tree, scratch / f"hook-{i}")
                    record = _safe(partial(webhook_kill, api, stack, endpoints, fresh), "webhook")
                    records.append(record)
                    print(json.dumps(record.as_dict()), flush=True)
                for store in ("postgres", "graph"):
                    outage = store_outage(api, stack, endpoints, store, args.outage_s)
                    job(f"outage-{store}", outage)
                for _ in range(args.redis_kills):
                    job("redis-kill", redis_kill(api, stack, endpoints))
                burst_outcome = _burst(stack, endpoints.api_token, api, scratch, args)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            stack.down()
    result = _summary(records, burst_outcome, args, started)
    print(json.dumps(result["totals"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _fresh_copy(tree: Path, target: Path) -> Path:
    """The tree with a line of its own appended to every Python file: each file's last
    chunk is new to the embedding cache, so every job embeds something (the other
    chunks come from the cache)."""
    shutil.copytree(tree, target)
    tag = uuid.uuid4().hex
    for path in target.rglob("*.py"):
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"\n# reliability run {tag}\n")
    return target


def _burst(
    stack: Stack, token: str, api: httpx.Client, scratch: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from api.app import create_app

    tree = scratch / "small"
    tree.mkdir()
    (tree / "a.py").write_text("def burst_probe():\n    return 1\n")
    settings = stack.settings.model_copy(update={"queue_bound_ingest": args.burst_bound})
    with TestClient(create_app(settings)) as bounded:
        bounded.headers["Authorization"] = f"Bearer {token}"
        outcome = burst(
            bounded, tree, seconds=args.burst_s, finish=lambda j: wait(api, j, args.job_timeout_s)
        )
    print(json.dumps(vars(outcome)), flush=True)
    return dict(vars(outcome))


def _summary(
    records: list[Record], burst_outcome: dict[str, Any], args: argparse.Namespace, started: float
) -> dict[str, Any]:
    jobs = [r.as_dict() for r in records]
    totals = {
        "jobs": len(records),
        "jobs_done": sum(r.status == "done" for r in records),
        "kills": sum(r.scenario.startswith(("kill-", "webhook")) for r in records),
        "kills_by_target": {
            target: sum(r.scenario in (f"kill-{target}", target) for r in records)
            for target in (*KILL_TARGETS, "webhook-kill")
        },
        "outages": [f"{r.scenario} {args.outage_s:g} s" for r in records if "outage" in r.scenario],
        "redis_kills": sum(r.scenario == "redis-kill" for r in records),
        "chunks_expected": sum(r.expected for r in records),
        "lost": sum(r.missing for r in records),
        "duplicated": sum(r.duplicated for r in records),
        "ghosts": sum(r.ghosts for r in records),
        "sweeper_recoveries": sum(r.recoveries for r in records),
        "burst": burst_outcome,
        "wall_s": round(time.time() - started, 1),
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "node": platform.node()},
        "command": " ".join(sys.argv),
        "totals": totals,
        "jobs": jobs,
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
