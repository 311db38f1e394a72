"""Logging configuration: plain or JSON lines, one call per process; the log context;
and the audit log's file handler (api/audit.py writes its lines).

The log context is what a task is working for (job id, repository, task id). The task
signal handlers (tasks/observers.py) set it when a task starts and reset it when it
ends; :class:`ContextFilter`, on the handler that :func:`configure_logging` installs,
copies it onto every record, so that every line a task writes carries it, whichever
logger wrote it. A context var, so that threads (the embed worker's pool) keep theirs.

Must not import: anything of Quarry but config.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler, WatchedFileHandler
from pathlib import Path
from typing import Final

# Extra attributes a task or request attaches with `logger.info(..., extra={...})`.
CONTEXT_FIELDS: Final = ("job_id", "repo", "task_id", "service")
# How the text format shows the context fields, in this order.
_TEXT_LABELS: Final = (("job_id", "job"), ("repo", "repo"), ("task_id", "task"))

LogContext = Mapping[str, str]
_context: ContextVar[LogContext | None] = ContextVar("quarry_log_context", default=None)


def set_log_context(
    *, job_id: str = "", repo: str = "", task_id: str = ""
) -> Token[LogContext | None]:
    """Attach these fields (the non-empty ones) to every record logged in this context
    from now on; :func:`reset_log_context` with the token puts back what was there."""
    fields = {"job_id": job_id, "repo": repo, "task_id": task_id}
    return _context.set({k: v for k, v in fields.items() if v})


def reset_log_context(token: Token[LogContext | None] | None = None) -> None:
    """Put back the context before ``token``'s :func:`set_log_context` (None: clear it)."""
    if token is None:
        _context.set(None)
        return
    try:
        _context.reset(token)
    except ValueError:  # the token of another context (a signal sent from elsewhere)
        _context.set(None)


def log_context() -> LogContext:
    """The fields attached to records in this context now."""
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the log context onto each record; a field the call passed in ``extra``
    wins. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any context fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [job=… repo=… task=…]``; the suffix only when a
    context field is set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        parts = [
            f"{label}={value}"
            for field, label in _TEXT_LABELS
            if (value := getattr(record, field, None)) is not None
        ]
        if not parts:
            return line
        # The suffix belongs to the message's first line, not after a traceback.
        head, newline, rest = line.partition("\n")
        return f"{head} [{' '.join(parts)}]{newline}{rest}"


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Send the root logger's lines to stderr, as text or JSON, with the log context."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    # On the handler, not the root logger: a logger's filters do not see the records
    # that propagate to it from other loggers; a handler's see them all.
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def audit_file_handler(path: Path, *, max_bytes: int, backups: int) -> logging.Handler:
    """The audit log's file handler: the message as written (a JSON line). Past
    ``max_bytes`` it rotates (``audit.jsonl.1`` ...); with 0 it never rotates but reopens
    the file when logrotate moves it away (or truncates it: appends go on at the end).
    The file is opened on the first line, so a folder that cannot be written costs a
    logged error per line (logging's handleError), never the caller's work."""
    handler: logging.Handler
    if max_bytes > 0:
        handler = RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
    else:
        handler = WatchedFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler
