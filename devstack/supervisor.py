"""The local stack's supervisor: keeps Quarry's processes running, as a restart policy would.

Runs detached (``python -m devstack.supervisor DATA_DIR``), reads the programs to run from
``run/supervisor.json``, starts each in its own process group, restarts one that exits
(exponential backoff, reset after a minute of good health) and, on SIGTERM, stops every
program and the whole of its process group, so that no pool child outlives its worker.
State for `quarry dev status` goes to ``run/supervisor-state.json``.

Must not import: tasks/, api/, cli/ (it runs programs, it does not know them).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from devstack.layout import StackLayout
from devstack.processes import is_alive, kill_group, stop_process, write_pid

log = logging.getLogger("quarry.supervisor")

SPEC_FILE = "supervisor.json"
STATE_FILE = "supervisor-state.json"
HEALTHY_RUN_S = 60.0
POLL_S = 0.2


@dataclass
class Program:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start_at: float = 0.0
    failures_in_a_row: int = 0
    last_exit: int | None = None
    stop_timeout_s: float = 15.0


@dataclass
class Supervisor:
    layout: StackLayout
    programs: list[Program]
    backoff_max_s: float
    stopping: bool = False
    _state_written: dict[str, object] = field(default_factory=dict)

    def start(self, program: Program) -> None:
        logfile = self.layout.logfile(program.name).open("ab")
        try:
            program.process = subprocess.Popen(
                program.argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            logfile.close()
        program.started_at = time.monotonic()
        write_pid(self.layout.pidfile(program.name), program.process.pid)
        log.info("started %s (pid %d)", program.name, program.process.pid)

    def reap(self, program: Program) -> None:
        process = program.process
        if process is None or process.poll() is None:
            return
        pid, code = process.pid, process.returncode
        # Whatever the leader left in its group (a prefork pool) dies with it.
        kill_group(pid)
        program.process = None
        program.last_exit = code
        ran_s = time.monotonic() - program.started_at
        program.failures_in_a_row = 0 if ran_s >= HEALTHY_RUN_S else program.failures_in_a_row + 1
        delay = min(self.backoff_max_s, 0.5 * 2**program.failures_in_a_row)
        program.next_start_at = time.monotonic() + delay
        program.restarts += 1
        log.warning(
            "%s (pid %d) exited with %s; restarting in %.1f s", program.name, pid, code, delay
        )

    def loop(self) -> None:
        for program in self.programs:
            self.start(program)
        while not self.stopping:
            for program in self.programs:
                self.reap(program)
                if program.process is None and time.monotonic() >= program.next_start_at:
                    self.start(program)
            self.write_state()
            time.sleep(POLL_S)

    def stop_all(self) -> None:
        for program in self.programs:
            if program.process is not None and is_alive(program.process.pid):
                log.info("stopping %s (pid %d)", program.name, program.process.pid)
                stop_process(program.process.pid, group=True, timeout_s=program.stop_timeout_s)
            if program.process is not None:
                kill_group(program.process.pid)
                program.process.poll()
            self.layout.pidfile(program.name).unlink(missing_ok=True)
        (self.layout.run / STATE_FILE).unlink(missing_ok=True)

    def write_state(self) -> None:
        state: dict[str, object] = {
            p.name: {
                "pid": p.process.pid if p.process else None,
                "restarts": p.restarts,
                "last_exit": p.last_exit,
            }
            for p in self.programs
        }
        if state != self._state_written:
            path = self.layout.run / STATE_FILE
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state), encoding="utf-8")
            tmp.replace(path)
            self._state_written = state

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True


def read_state(layout: StackLayout) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((layout.run / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_spec(layout: StackLayout, programs: dict[str, list[str]], backoff_max_s: float) -> None:
    spec = {
        "programs": [{"name": n, "argv": a} for n, a in programs.items()],
        "backoff_max_s": backoff_max_s,
    }
    (layout.run / SPEC_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m devstack.supervisor DATA_DIR\n")
        return 2
    layout = StackLayout(Path(args[0]))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = json.loads((layout.run / SPEC_FILE).read_text(encoding="utf-8"))
    programs = [Program(p["name"], list(p["argv"])) for p in spec["programs"]]
    supervisor = Supervisor(layout, programs, float(spec["backoff_max_s"]))
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    write_pid(layout.pidfile("supervisor"), os.getpid())
    try:
        supervisor.loop()
    finally:
        supervisor.stop_all()
        layout.pidfile("supervisor").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
