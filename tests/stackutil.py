"""Helpers for tests that run real local stacks: free ports, world-traversable folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devstack.ports import free_ports

QUARRY = str(Path(sys.executable).with_name("quarry"))
PORT_KEYS = (
    "QUARRY_STACK_REDIS_PORT",
    "QUARRY_STACK_POSTGRES_PORT",
    "QUARRY_STACK_BOLT_PORT",
    "QUARRY_STACK_GRAPH_HTTP_PORT",
    "QUARRY_STACK_API_PORT",
    "QUARRY_STACK_FLOWER_PORT",
    "QUARRY_WORKER_METRICS_PORT_CPU",
    "QUARRY_WORKER_METRICS_PORT_EMBED",
)


def unreachable_stores_env() -> dict[str, str]:
    """QUARRY_* variables naming a Redis, a PostgreSQL and a graph server on free ports
    where nothing listens: an API that must answer (or fail) without its stores."""
    redis_port, pg_port, bolt_port = free_ports(3)
    return {
        "QUARRY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "QUARRY_POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{pg_port}/quarry",
        "QUARRY_NEO4J_URI": f"bolt://127.0.0.1:{bolt_port}",
        "QUARRY_NEO4J_PASSWORD": "x",
    }


SHARED_MODEL_DIR = Path(__file__).resolve().parents[1] / ".quarry" / "models"


def stack_env(data_dir: Path) -> dict[str, str]:
    """QUARRY_* variables for a private stack: its own folder and free ports."""
    env = {
        "QUARRY_DATA_DIR": str(data_dir),
        "QUARRY_STACK_START_TIMEOUT_S": "120",
        # Short breaker timings so that outage tests see open -> half-open -> closed fast.
        "QUARRY_BREAKER_FAIL_MAX": "3",
        "QUARRY_BREAKER_RESET_TIMEOUT_S": "2",
        # A worker's main process killed outright leaves its unacknowledged tasks in
        # Redis until the visibility timeout: 30 s here, not an hour, so that the kill
        # test sees them delivered again. The time limit must stay below it (the settings
        # check that): 20 s, whose soft two thirds (13 s) is far above the 2 s that the
        # longest cpu task of the tests takes on 2 busy cores.
        "QUARRY_TASK_TIME_LIMIT_S": "20",
        "QUARRY_BROKER_VISIBILITY_TIMEOUT_S": "30",
        # A stage waits for room on a full queue below the soft limit (the settings
        # check that too).
        "QUARRY_QUEUE_WAIT_S": "10",
        # The job sweeper looks every second and sends on a job that has had no message
        # on the broker and no progress for 5 s (a lost message), not 2 minutes.
        "QUARRY_JOB_SWEEP_INTERVAL_S": "1",
        "QUARRY_JOB_STALL_S": "5",
        # A repository deletion whose message was lost is sent again after 5 s, too.
        "QUARRY_DELETE_STALL_S": "5",
        # Fair sharing: a window of 16 files (slices of 8), so that the jobs of the tests
        # go through held and released slices (pipeline/stages/window.py), not one slice.
        "QUARRY_JOB_WINDOW_FILES": "16",
        # Tests receive webhooks on loopback and clone local git repositories.
        "QUARRY_WEBHOOK_ALLOW_ADDRESSES": "loopback",
        # Webhook retries in seconds, not the default 30-60 minutes: 4 attempts, waits
        # of 0.25-0.5, 0.5-1 and 1-2 s, so that a delivery gives up (a dead letter) in
        # under 4 s. The cap plus the time limit stays below the visibility timeout.
        "QUARRY_WEBHOOK_MAX_ATTEMPTS": "4",
        "QUARRY_WEBHOOK_RETRY_BASE_S": "0.5",
        "QUARRY_WEBHOOK_RETRY_CAP_S": "2",
        "QUARRY_SOURCE_ALLOW_FILE_URLS": "true",
        # Test repositories live in pytest's folders under /tmp; the stack's own data
        # folder (also under /tmp) stays refused, as every data folder is.
        "QUARRY_SOURCE_ALLOWED_ROOTS": "/tmp",
        # The private-repository tests serve git over https with a certificate of their
        # own CA, which they write here (tests/security/test_private_repos.py).
        "QUARRY_SOURCE_GIT_CA_FILE": str(data_dir / "git-ca.pem"),
        # The query model's ONNX export that `make install` made for the checkout (the
        # default `.quarry/models` of the repository root): every test stack reads it
        # instead of exporting its own (an export is atomic and locked if it is missing).
        "QUARRY_QUERY_MODEL_DIR": str(SHARED_MODEL_DIR),
    }
    env.update(zip(PORT_KEYS, map(str, free_ports(len(PORT_KEYS))), strict=True))
    return env


@contextlib.contextmanager
def stack_folder(prefix: str) -> Iterator[Path]:
    """A scratch folder the unprivileged postgres user can traverse (mode 711)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o711)
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_quarry(
    *args: str, env: dict[str, str], timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the real console script with only our QUARRY_* variables set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    return subprocess.run(
        [QUARRY, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
