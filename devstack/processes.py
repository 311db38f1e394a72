"""Process plumbing for the local stack: pid files, ports, waiting, stopping groups.

Must not import: celery, tasks/, api/, cli/.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import StackError

# Daemons we spawned, by pid: kept so that they are reaped (no zombie, no ResourceWarning)
# when stopped from this same process, as tests and long-lived callers do.
_spawned: dict[int, subprocess.Popen[bytes]] = {}


def spawn_detached(
    argv: list[str], *, logfile: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> int:
    """Start ``argv`` in a new session (its own process group), output to ``logfile``."""
    with logfile.open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _spawned[process.pid] = process
    return process.pid


def reap(pid: int) -> None:
    process = _spawned.get(pid)
    if process is not None and process.poll() is not None:
        del _spawned[pid]


def spawned_exited(pid: int) -> bool:
    """Whether a daemon this process spawned has already exited."""
    process = _spawned.get(pid)
    return process is not None and process.poll() is not None


def read_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive; stale files are ignored."""
    try:
        pid = int(pidfile.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if is_alive(pid) else None


def write_pid(pidfile: Path, pid: int) -> None:
    pidfile.write_text(f"{pid}\n", encoding="utf-8")


def is_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid in _spawned:
        return _spawned[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    # The state follows the parenthesised command, which may itself hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def require_free_port(host: str, port: int, service: str, setting: str) -> None:
    if port_in_use(host, port):
        raise StackError(
            f"port {port} for {service} is already in use by another process "
            f"(choose another with {setting})"
        )


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    *,
    alive: Callable[[], bool] | None = None,
    log_hint: Path | None = None,
    interval_s: float = 0.1,
) -> None:
    """Poll ``check`` until true; a StackError names ``what`` on timeout or early death."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        hint = f" (see {log_hint})" if log_hint else ""
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up{hint}")
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not become healthy within {timeout_s:.0f} s{hint}")
        time.sleep(interval_s)


def stop_process(pid: int, *, group: bool, timeout_s: float = 15.0) -> None:
    """SIGTERM ``pid`` (its process group if ``group``), then SIGKILL what is left."""
    _signal(pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + timeout_s
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group:
        # Children that outlived their leader (e.g. a prefork pool) go with the group.
        _signal(pid, signal.SIGKILL, group=True)
    if is_alive(pid):
        _signal(pid, signal.SIGKILL, group=False)
    deadline = time.monotonic() + 5.0
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    reap(pid)


def kill_group(pgid: int) -> None:
    _signal(pgid, signal.SIGKILL, group=True)


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (to prove nothing was left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
