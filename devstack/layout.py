"""Where the local stack keeps its state: every path under one data folder.

Must not import: celery, tasks/, api/, cli/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StackError


@dataclass(frozen=True, slots=True)
class StackLayout:
    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def stack(self) -> Path:
        return self.root / "stack"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def graph(self) -> Path:
        return self.root / "graph"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def prepare(self) -> None:
        """Create the folders; a data folder that cannot be written is a StackError."""
        try:
            for folder in (self.root, self.run, self.logs, self.stack, self.redis, self.graph):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.run / f".write-test-{os.getpid()}"
            probe.write_text("ok", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StackError(f"data folder {self.root} is not writable: {reason}") from None
