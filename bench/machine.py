"""The machine a benchmark ran on: bench/ scripts share the CLI benchmarks' helper."""

from __future__ import annotations

from cli.machine import cpu_model, free_ports

__all__ = ["cpu_model", "free_ports"]
