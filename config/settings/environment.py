"""The settings in other processes and on disk: the environment a child process of the
local stack gets, the workers' environment defaults, the metrics folder of a worker, and
the folders no job may read.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from config.settings.loader import SECRETS_DIR_ENV, env_name, field_names
from config.settings.model import ENV_PREFIX, QuarrySettings

# prometheus-client's multiprocess mode: every process of a worker (the main process and
# its prefork children) writes its samples to files in this folder, and the main process
# serves their sum. The library reads the variable when it is first imported.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def settings_as_env(settings: QuarrySettings) -> dict[str, str]:
    """``QUARRY_*`` variables that rebuild ``settings`` in another process."""
    values: dict[str, str] = {}
    for name in field_names():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        values[env_name(name)] = str(value)
    return values


def child_environment(settings: QuarrySettings, **extra: str) -> dict[str, str]:
    """The environment for a process the local stack starts: ours, with these settings.

    The settings are passed whole, so a child sees exactly what its parent resolved
    (including values that came from a config file or from keyword arguments).
    """
    # Each worker points prometheus-client at a folder of its own (prepare_worker_metrics);
    # the API and Flower are single processes and must not inherit one.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(ENV_PREFIX) and k.upper() != METRICS_DIR_ENV
    }
    environ.update(settings_as_env(settings))
    environ.setdefault("PYTHONUNBUFFERED", "1")
    for name, value in WORKER_ENVIRONMENT.items():
        environ.setdefault(name, value)
    environ.update(extra)
    return environ


# Torch's OpenMP threads spin at a barrier after every op; on a small machine shared
# with the other stages a thread that is descheduled stalls the batch each time
# (bench/results/jobs.md: one chunk, 2 threads, one busy core: 112-182 ms median, up to
# 840 ms; passive waiting: 16-23 ms, as fast as alone, same bulk throughput). Defaults
# only: a value already in the environment wins.
WORKER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def prepare_worker_environment() -> None:
    """Set WORKER_ENVIRONMENT's defaults in this process, before torch is loaded."""
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def protected_folders(settings: QuarrySettings) -> tuple[Path, ...]:
    """Folders no job may read, whatever the allowed roots say: the data folder (the
    stack's secrets, databases, run, upload and scratch folders), Docker's secrets
    folder and the secrets folder named by ``QUARRY_SECRETS_DIR``."""
    folders = [settings.data_dir, Path("/run/secrets")]
    secrets = os.environ.get(SECRETS_DIR_ENV)
    if secrets:
        folders.append(Path(secrets).expanduser().absolute())
    return tuple(folders)


def audit_log_path(settings: QuarrySettings) -> Path:
    """The API's audit log file (``audit_log_file``, else under the data folder)."""
    return settings.audit_log_file or settings.data_dir / "logs" / "audit.jsonl"


def worker_metrics_dir(settings: QuarrySettings, profile: str) -> Path:
    """The multiprocess metrics folder of a worker profile, under the data folder."""
    return settings.data_dir / "metrics" / profile


def prepare_worker_metrics(settings: QuarrySettings, profile: str) -> Path:
    """Empty the worker's metrics folder and point prometheus-client at it.

    Must run before ``prometheus_client`` is first imported in this process; the pool
    children inherit the variable. Only ``*.db`` sample files are removed: the samples
    of a previous run of this worker, whose processes are gone.
    """
    folder = worker_metrics_dir(settings, profile)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[METRICS_DIR_ENV] = str(folder)
    return folder
