"""CPU time and peak memory of a private stack's processes, from /proc (Linux).

Owns: which processes belong to a stack (the trees under its pid files,
``<data>/run/*.pid`` and PostgreSQL's ``postmaster.pid``, named by their file: the
process kind), their CPU ticks (own and reaped children's) against the whole machine's
busy ticks, so that the CPU time other users of a shared machine took during a run is
known (``other_core_s``), and each kind's peak resident set (``VmHWM``).

Must not import: anything of Quarry but the standard library.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class CpuSample:
    machine_ticks: int
    kind_ticks: dict[str, int]


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    parent: int
    ticks: int
    peak_rss_kb: int


def _machine_busy_ticks() -> int:
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(cpu) - cpu[3] - cpu[4]  # less idle and iowait


def _procs() -> dict[int, Proc]:
    found: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(entry.path, "stat").read_text()
            rest = text[text.rindex(")") + 2 :].split()
            peak = 0
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
            pid = int(entry.name)
            # utime, stime, cutime, cstime: reaped children count for their parent
            found[pid] = Proc(pid, int(rest[1]), sum(int(v) for v in rest[11:15]), peak)
    return found


class StackProbe:
    """The processes of the stack whose data folder is ``data_dir``, by kind."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def roots(self) -> dict[int, str]:
        pidfiles = [
            *(self.data_dir / "run").glob("*.pid"),
            self.data_dir / "postgres" / "postmaster.pid",
        ]
        roots: dict[int, str] = {}
        for pidfile in pidfiles:
            with contextlib.suppress(OSError, ValueError, IndexError):
                kind = "postgres" if pidfile.name == "postmaster.pid" else pidfile.stem
                roots[int(pidfile.read_text().split()[0])] = kind
        return roots

    def kinds(self) -> tuple[dict[int, Proc], dict[int, str]]:
        """Every process, and the kind of each stack process (``<kind>`` for the one
        its pid file names, ``<kind>/child`` for those below it); this process is
        ``bench``."""
        procs, roots = _procs(), self.roots()
        kinds: dict[int, str] = {os.getpid(): "bench"}
        for pid in procs:
            ancestor, depth = pid, 0
            while ancestor > 1 and ancestor not in roots and depth < 64:
                ancestor, depth = (procs[ancestor].parent if ancestor in procs else 0), depth + 1
            if ancestor in roots:
                kinds[pid] = roots[ancestor] + ("/child" if pid != ancestor else "")
        return procs, kinds

    def sample(self) -> CpuSample:
        procs, kinds = self.kinds()
        by_kind: dict[str, int] = {}
        for pid, kind in kinds.items():
            if pid in procs:
                top = kind.split("/")[0]
                by_kind[top] = by_kind.get(top, 0) + procs[pid].ticks
        return CpuSample(_machine_busy_ticks(), by_kind)

    def cpu_between(self, before: CpuSample, after: CpuSample) -> dict[str, Any]:
        """Core-seconds between two samples: the machine's, each kind's, and the rest
        (other users of the machine)."""
        return cpu_use(before, after, os.sysconf("SC_CLK_TCK"))

    def peak_rss_mb(self) -> dict[str, dict[str, float]]:
        """Per kind: how many processes, the largest peak RSS, and the peaks summed."""
        procs, kinds = self.kinds()
        out: dict[str, dict[str, float]] = {}
        for pid, kind in kinds.items():
            if pid not in procs:
                continue
            mb = procs[pid].peak_rss_kb / 1024
            entry = out.setdefault(kind, {"processes": 0, "max_mb": 0.0, "sum_mb": 0.0})
            entry["processes"] += 1
            entry["max_mb"] = round(max(entry["max_mb"], mb), 1)
            entry["sum_mb"] = round(entry["sum_mb"] + mb, 1)
        return dict(sorted(out.items()))


def cpu_use(before: CpuSample, after: CpuSample, hz: int) -> dict[str, Any]:
    """Pure: the core-seconds of two samples' difference (``other_core_s`` never < 0)."""
    machine = (after.machine_ticks - before.machine_ticks) / hz
    kinds = {
        k: round((after.kind_ticks.get(k, 0) - before.kind_ticks.get(k, 0)) / hz, 2)
        for k in sorted(after.kind_ticks)
    }
    ours = sum(kinds.values())
    return {
        "machine_core_s": round(machine, 2),
        "stack_core_s": round(ours, 2),
        "other_core_s": round(max(0.0, machine - ours), 2),
        "by_kind_core_s": kinds,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }
