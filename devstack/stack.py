"""`quarry dev up | down | status | env`: the whole local stack, started and stopped as one.

``up`` is idempotent and returns only when every service answers its health check; it
makes the query model's ONNX export (``quarry model export``, in its own process, while
the services boot) before the API starts, since the API never exports. If any step
fails, what this call started is stopped again and a StackError names the
cause. ``down`` stops exactly what ``up`` started (pid files) and leaves no process.

Must not import: api/, cli/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets as token_source
import shlex
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from config.endpoints import (
    LOCAL_API_TENANT,
    Endpoints,
    StackSecrets,
    read_stack_secrets,
    resolve_endpoints,
    secrets_path,
)
from config.queues import queues_for_profile
from config.settings import QuarrySettings, child_environment, env_name
from devstack.layout import StackLayout
from devstack.migrate import migrate_all, register_token
from devstack.processes import (
    read_pid,
    require_free_port,
    spawn_detached,
    spawned_exited,
    stop_process,
    wait_until,
)
from devstack.services import GraphService, PostgresService, RedisService
from devstack.supervisor import read_state, write_spec
from pipeline.adapters.probes import probe_http
from pipeline.credentials.cipher import new_credentials_key
from pipeline.errors import StackError
from tasks.app import create_app
from wiring.models import query_model_file
from workers.main import node_name

log = logging.getLogger(__name__)
Reporter = Callable[[str], None]


@dataclass
class Stack:
    settings: QuarrySettings
    report: Reporter = field(default=lambda line: None)

    def __post_init__(self) -> None:
        self.layout = StackLayout(self.settings.data_dir)
        self._celery_app: Celery | None = None

    # --- up ---------------------------------------------------------------------------
    def up(self) -> None:
        self.layout.prepare()
        secrets = self._ensure_secrets()
        endpoints = resolve_endpoints(self.settings, secrets)
        started: list[Callable[[], None]] = []
        try:
            self._up(endpoints, secrets, started)
        except BaseException:
            for stop in reversed(started):
                try:
                    stop()
                except StackError as exc:
                    log.warning("while rolling back: %s", exc)
            raise

    def _up(
        self, endpoints: Endpoints, secrets: StackSecrets, started: list[Callable[[], None]]
    ) -> None:
        s = self.settings
        infra = self._infra(endpoints, secrets)
        redis, postgres, graph = (infra[n][0] for n in ("redis", "postgres", "graph"))
        timeout = s.stack_start_timeout_s
        # The graph server takes seconds to boot: start it first, wait for it last.
        to_start = [svc for svc, local in infra.values() if local and svc.pid() is None]
        supervisor_running = read_pid(self.layout.pidfile("supervisor")) is not None

        # Ports first, for everything this call will start: fail before starting anything.
        ports = [port for svc in to_start for port in svc.ports]
        if not supervisor_running:
            ports += [("stack_api_port", "api"), ("stack_flower_port", "flower")]
            ports += [
                (_metrics_port_field(profile), f"worker-{profile} metrics")
                for profile in s.stack_workers
                if s.worker_metrics_port(profile)
            ]
        for setting, label in ports:
            require_free_port(s.stack_host, getattr(s, setting), label, env_name(setting))

        for service in to_start:
            self.report(f"starting {service.name}")
            service.start()
            started.append(service.stop)
        export = self._start_query_model_export()
        if export is not None:
            started.append(export.kill)

        wait_until(
            lambda: redis.probe().healthy, timeout, "redis", log_hint=self.layout.logfile("redis")
        )
        wait_until(
            lambda: postgres.probe().healthy,
            timeout,
            "postgres",
            log_hint=self.layout.logfile("postgres"),
        )
        if endpoints.graph_local:
            graph.wait_healthy(timeout)
        else:
            wait_until(lambda: graph.probe().healthy, timeout, "the graph server")

        self.report("migrating")
        for line in migrate_all(endpoints):
            self.report(f"  {line}")
        # The development token the CLI uses by default, bound to the `default` tenant.
        register_token(endpoints.postgres_dsn, LOCAL_API_TENANT, secrets.api_token, "local stack")

        if export is not None:
            self._finish_query_model_export(export)
        if not supervisor_running:
            self.report("starting workers, api and flower")
            self._start_supervisor()
            started.append(self._stop_supervisor)
        self._wait_programs(endpoints, timeout)

    def _start_query_model_export(self) -> subprocess.Popen[str] | None:
        """`quarry model export` in a process of its own (it imports torch), unless the
        export is there; None then."""
        if query_model_file(self.settings).is_file():
            return None
        self.report("exporting the query model (once)")
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "model", "export", "--quiet"],
            env=child_environment(self.settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _finish_query_model_export(self, export: subprocess.Popen[str]) -> None:
        try:
            _, stderr = export.communicate(timeout=max(900.0, self.settings.stack_start_timeout_s))
        except subprocess.TimeoutExpired:
            export.kill()
            export.communicate()
            raise StackError("`quarry model export` did not finish in 900 s") from None
        if export.returncode:
            lines = [line for line in stderr.splitlines() if line.strip()]
            cause = lines[-1] if lines else f"exit status {export.returncode}"
            raise StackError(f"`quarry model export` failed: {cause}")

    def _ensure_secrets(self) -> StackSecrets:
        existing = read_stack_secrets(self.settings)
        if existing is not None and existing.webhook_secret and existing.credentials_key:
            return existing
        created = existing or StackSecrets(
            graph_password=token_source.token_urlsafe(18),
            api_token="qdev_" + token_source.token_urlsafe(24),
            flower_password=token_source.token_urlsafe(12),
        )
        # Secrets added after the first stacks were made; one that exists is kept (a new
        # credentials key would leave the stored credentials unreadable).
        created = dataclasses.replace(
            created,
            webhook_secret=created.webhook_secret or token_source.token_urlsafe(32),
            credentials_key=created.credentials_key or new_credentials_key(),
        )
        path = secrets_path(self.settings)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dataclasses.asdict(created), handle)
        tmp.replace(path)
        return created

    def _infra(
        self, endpoints: Endpoints, secrets: StackSecrets | None
    ) -> dict[str, tuple[Any, bool]]:
        """Each infrastructure service and whether the stack runs it (False: external).

        In start order: the slow graph server first.
        """
        s, layout = self.settings, self.layout
        return {
            "graph": (
                GraphService(s, layout, endpoints, secrets or _NO_SECRETS),
                endpoints.graph_local,
            ),
            "redis": (RedisService(s, layout, endpoints), endpoints.redis_local),
            "postgres": (PostgresService(s, layout, endpoints), endpoints.postgres_local),
        }

    def programs(self) -> dict[str, list[str]]:
        s, py = self.settings, sys.executable
        programs = {
            f"worker-{profile}": [py, "-m", "workers.main", "--profile", profile]
            for profile in s.stack_workers
        }
        programs["api"] = [
            py,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            s.stack_host,
            "--port",
            str(s.stack_api_port),
            "--no-access-log",
        ]
        programs["flower"] = [py, "-m", "workers.flower"]
        return programs

    def _start_supervisor(self) -> None:
        write_spec(self.layout, self.programs(), self.settings.stack_restart_backoff_max_s)
        pid = spawn_detached(
            [sys.executable, "-m", "devstack.supervisor", str(self.layout.root)],
            logfile=self.layout.logfile("supervisor"),
            env=child_environment(self.settings),
        )
        wait_until(
            lambda: read_pid(self.layout.pidfile("supervisor")) == pid,
            10,
            "the supervisor",
            alive=lambda: not spawned_exited(pid),
            log_hint=self.layout.logfile("supervisor"),
        )

    def _wait_programs(self, endpoints: Endpoints, timeout_s: float) -> None:
        checks = self._program_checks(endpoints)
        for name, check in checks.items():
            wait_until(check, timeout_s, name, log_hint=self.layout.logfile(name), interval_s=0.3)

    def _program_checks(self, endpoints: Endpoints) -> dict[str, Callable[[], bool]]:
        s = self.settings
        checks: dict[str, Callable[[], bool]] = {
            "api": lambda: probe_http(f"{endpoints.api_url}/healthz").healthy,
            "flower": lambda: probe_http(f"{endpoints.flower_url}/healthcheck").healthy,
        }
        for profile in s.stack_workers:
            checks[f"worker-{profile}"] = self._worker_check(profile)
        return checks

    def _worker_check(self, profile: str) -> Callable[[], bool]:
        def check() -> bool:
            name = node_name(profile)
            try:
                replies = self._celery().control.ping(destination=[name], timeout=1.0, limit=1)
            except Exception:  # noqa: BLE001 (a broker hiccup means "not healthy yet")
                return False
            return any(name in reply for reply in replies)

        return check

    def _celery(self) -> Celery:
        if self._celery_app is None:
            self._celery_app = create_app(self.settings)
        return self._celery_app

    # --- down -------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop everything; returns the names of what was stopped."""
        secrets = read_stack_secrets(self.settings)
        endpoints = resolve_endpoints(self.settings, secrets)
        stopped = []
        if read_pid(self.layout.pidfile("supervisor")) is not None:
            self._stop_supervisor()
            stopped.append("supervisor (workers, api, flower)")
        for service, _ in self._infra(endpoints, secrets).values():
            if service.pid() is not None:
                service.stop()
                stopped.append(service.name)
        return stopped

    def _stop_supervisor(self) -> None:
        pid = read_pid(self.layout.pidfile("supervisor"))
        if pid is not None:
            stop_process(pid, group=False, timeout_s=45)
        # If the supervisor itself was killed, its programs are still ours to stop.
        for name, entry in read_state(self.layout).items():
            child = entry.get("pid")
            if isinstance(child, int) and read_pid(self.layout.pidfile(name)) == child:
                stop_process(child, group=True)
            self.layout.pidfile(name).unlink(missing_ok=True)
        self.layout.pidfile("supervisor").unlink(missing_ok=True)

    # --- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        secrets = read_stack_secrets(self.settings)
        endpoints = resolve_endpoints(self.settings, secrets)
        redacted = endpoints.redacted()
        s, layout = self.settings, self.layout
        infra = self._infra(endpoints, secrets)
        state = read_state(layout)
        checks = self._program_checks(endpoints)
        with ThreadPoolExecutor(max_workers=8) as pool:
            probes = {n: pool.submit(svc.probe) for n, (svc, _) in infra.items()}
            program_health = {n: pool.submit(c) for n, c in checks.items()}
        services: dict[str, Any] = {}
        for name, (service, local) in infra.items():
            services[name] = {
                "url": redacted[name],
                "healthy": probes[name].result().healthy,
                "pid": service.pid() if local else None,
                "managed": local,
                "detail": probes[name].result().detail,
            }
        for name in ("api", "flower"):
            services[name] = {
                "url": redacted[name],
                "healthy": program_health[name].result(),
                "pid": read_pid(layout.pidfile(name)),
                "restarts": state.get(name, {}).get("restarts", 0),
            }
        # The local stack's Flower login, so an operator need not open secrets.json; only
        # where this stack generated it (a configured password is the operator's own).
        if secrets is not None and s.flower_password is None:
            services["flower"]["login"] = {
                "user": endpoints.flower_user,
                "password": endpoints.flower_password,
            }
        services["workers"] = {
            profile: {
                "pid": read_pid(layout.pidfile(f"worker-{profile}")),
                "queues": list(queues_for_profile(profile)),
                "metrics_url": self.worker_metrics_url(profile),
                "healthy": program_health[f"worker-{profile}"].result(),
                "restarts": state.get(f"worker-{profile}", {}).get("restarts", 0),
            }
            for profile in s.stack_workers
        }
        return {
            "data_dir": str(layout.root),
            "supervisor": {"pid": read_pid(layout.pidfile("supervisor"))},
            "services": services,
        }

    def worker_metrics_url(self, profile: str) -> str | None:
        """Where Prometheus scrapes a worker of the stack (None: its endpoint is off)."""
        s = self.settings
        port = s.worker_metrics_port(profile)
        host = s.worker_metrics_bind_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (listening everywhere: ask loopback)
            host = s.stack_host
        return f"http://{host}:{port}/metrics" if port else None

    def env_lines(self) -> list[str]:
        endpoints = resolve_endpoints(self.settings)
        values = {
            "QUARRY_REDIS_URL": endpoints.redis_url,
            "QUARRY_POSTGRES_DSN": endpoints.postgres_dsn,
            "QUARRY_NEO4J_URI": endpoints.neo4j_uri,
            "QUARRY_NEO4J_USER": endpoints.neo4j_user,
            "QUARRY_NEO4J_PASSWORD": endpoints.neo4j_password,
            "QUARRY_NEO4J_DATABASE": endpoints.neo4j_database,
            "QUARRY_API_URL": endpoints.api_url,
            "QUARRY_API_TOKEN": endpoints.api_token,
        }
        return [f"export {k}={shlex.quote(v)}" for k, v in values.items()]


def _metrics_port_field(profile: str) -> str:
    return "worker_metrics_port_embed" if profile == "embed" else "worker_metrics_port_cpu"


_NO_SECRETS = StackSecrets(graph_password="", api_token="", flower_password="")
