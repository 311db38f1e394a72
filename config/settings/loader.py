"""Loading the settings: keyword arguments, ``QUARRY_*`` variables, secrets files, the
TOML config file, defaults; and how a setting is named and shown in a message.

An unknown key or an invalid value raises :class:`ConfigError` with one line that names
the key and the value; secret values are never echoed.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from pydantic import ValidationError

from config.errors import ConfigError
from config.redaction import redact_url
from config.settings.model import ENV_PREFIX, URL_FIELDS, QuarrySettings

CONFIG_FILE_ENV = "QUARRY_CONFIG_FILE"
SECRETS_DIR_ENV = "QUARRY_SECRETS_DIR"
DEFAULT_CONFIG_FILE = "quarry.toml"


def field_names() -> tuple[str, ...]:
    return tuple(QuarrySettings.model_fields)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def is_secret(field: str) -> bool:
    annotation = str(QuarrySettings.model_fields[field].annotation)
    return "SecretStr" in annotation


def shown_value(field: str, value: object) -> str:
    """How a setting's value may appear in a message: secrets hidden, URLs redacted."""
    if is_secret(field):
        return "'<hidden>'"
    if field in URL_FIELDS and isinstance(value, str):
        return repr(redact_url(value))
    return repr(_plain(value))


def _plain(value: object) -> object:
    """Paths as the strings one writes in the environment (not ``PosixPath('…')``)."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    **overrides: Any,
) -> QuarrySettings:
    """Build the settings from ``env`` (default ``os.environ``) and the config file.

    Raises :class:`ConfigError` with one line naming the first bad key and its value.
    """
    environ = dict(os.environ if env is None else env)
    _reject_unknown_env(environ)
    path = config_file or _config_file_path(environ)
    from_file = _read_config_file(path) if path is not None else {}
    from_file.update(_read_secrets_dir(environ))
    ours = {k.upper(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    ours.pop(CONFIG_FILE_ENV, None)
    ours.pop(SECRETS_DIR_ENV, None)
    merged: dict[str, Any] = dict(from_file)
    merged.update({key[len(ENV_PREFIX) :].lower(): value for key, value in ours.items()})
    merged.update(overrides)
    try:
        return QuarrySettings(**merged)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, ours, from_file, path)) from None


def _reject_unknown_env(environ: Mapping[str, str]) -> None:
    known = {env_name(f) for f in field_names()} | {CONFIG_FILE_ENV, SECRETS_DIR_ENV}
    for key in sorted(environ):
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            raise ConfigError(f"unknown setting {key}{_suggestion(upper, known)}")


def _config_file_path(environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get(CONFIG_FILE_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_FILE_ENV}={explicit!r}: no such file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_secrets_dir(environ: Mapping[str, str]) -> dict[str, str]:
    """Settings from files named after them, e.g. Docker secrets in ``/run/secrets``.

    ``QUARRY_SECRETS_DIR=/run/secrets`` and a file ``/run/secrets/neo4j_password`` set
    ``neo4j_password``; the environment still wins.
    """
    folder = environ.get(SECRETS_DIR_ENV)
    if not folder:
        return {}
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{SECRETS_DIR_ENV}={folder!r}: no such folder")
    values = {}
    for name in field_names():
        candidate = root / name
        if candidate.is_file():
            try:
                values[name] = candidate.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"secret file {candidate} is unreadable: {exc}") from None
    return values


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    known = set(field_names())
    for key in data:
        if key not in known:
            raise ConfigError(
                f"config file {path}: unknown setting {key!r}{_suggestion(key, known)}"
            )
    return data


def _suggestion(key: str, known: set[str]) -> str:
    match = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {match[0]}?)" if match else ""


def _one_line(
    exc: ValidationError,
    env: Mapping[str, str],
    from_file: Mapping[str, Any],
    path: Path | None,
) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if field and env_name(field) in env:
            where, raw = env_name(field), env[env_name(field)]
        elif field and field in from_file:
            where, raw = f"{path}: {field}", from_file[field]
        elif field:
            where, raw = field, error.get("input")
        else:
            parts.append(f"invalid settings: {message}")
            continue
        parts.append(f"invalid setting {where}={shown_value(field, raw)}: {message}")
    return "; ".join(parts)
