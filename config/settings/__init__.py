"""Typed settings: the ONLY code in Quarry that reads ``os.environ``.

Every setting is a field of :class:`QuarrySettings`, documented with its default;
``quarry config docs`` renders them as the table in docs/configuration.md. Sources,
highest priority first: keyword arguments, ``QUARRY_*`` environment variables, files in
``QUARRY_SECRETS_DIR`` named after a setting (Docker secrets), the TOML config file
(``QUARRY_CONFIG_FILE``, else ``./quarry.toml`` if it exists), defaults.

The package, by concept:

- ``services``, ``jobs``, ``embedding``, ``search``, ``sources``: the fields, by group;
- ``model``: :class:`QuarrySettings` (every group, flat) and the checks across fields;
- ``loader``: :func:`load_settings` and how a setting is named and shown;
- ``environment``: the settings passed to child processes, the workers' environment,
  their metrics folder, and the folders no job may read.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from config.settings.environment import (
    METRICS_DIR_ENV,
    WORKER_ENVIRONMENT,
    audit_log_path,
    child_environment,
    prepare_worker_environment,
    prepare_worker_metrics,
    protected_folders,
    settings_as_env,
    worker_metrics_dir,
)
from config.settings.loader import (
    CONFIG_FILE_ENV,
    DEFAULT_CONFIG_FILE,
    SECRETS_DIR_ENV,
    env_name,
    field_names,
    is_secret,
    load_settings,
    shown_value,
)
from config.settings.model import ENV_PREFIX, SOFT_LIMIT_SHARE, QuarrySettings
from config.settings.sources import WEBHOOK_ADDRESS_KINDS

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "METRICS_DIR_ENV",
    "SECRETS_DIR_ENV",
    "SOFT_LIMIT_SHARE",
    "WEBHOOK_ADDRESS_KINDS",
    "WORKER_ENVIRONMENT",
    "QuarrySettings",
    "audit_log_path",
    "child_environment",
    "env_name",
    "field_names",
    "is_secret",
    "load_settings",
    "prepare_worker_environment",
    "prepare_worker_metrics",
    "protected_folders",
    "settings_as_env",
    "shown_value",
    "worker_metrics_dir",
]
