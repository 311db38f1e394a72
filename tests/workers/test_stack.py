"""`quarry dev up | status | down` on a private stack, through the real console script."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import load_settings
from devstack.processes import is_alive, port_in_use, processes_mentioning
from devstack.stack import Stack
from pipeline.errors import StackError
from tests.stackutil import run_quarry, stack_env, stack_folder


def _status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = run_quarry("dev", "status", "--json", env=env, timeout_s=60)
    return result.returncode, json.loads(result.stdout)


def _all_pids(status: dict[str, Any]) -> list[int]:
    services = status["services"]
    pids = [v["pid"] for k, v in services.items() if k != "workers"]
    pids += [w["pid"] for w in services["workers"].values()]
    pids.append(status["supervisor"]["pid"])
    return [p for p in pids if p]


def _wait(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.mark.timeout(420)
def test_up_status_idempotent_up_restart_and_down_leave_no_process() -> None:
    with stack_folder("quarry-test-life-") as data_dir:
        env = stack_env(data_dir)
        try:
            up = run_quarry("dev", "up", env=env)
            assert up.returncode == 0, up.stderr

            code, status = _status(env)
            assert code == 0
            services = status["services"]
            for name in ("redis", "postgres", "graph", "api", "flower"):
                assert services[name]["healthy"] is True, (name, services[name])
                assert isinstance(services[name]["pid"], int)
            assert services["api"]["url"] == f"http://127.0.0.1:{env['QUARRY_STACK_API_PORT']}"
            assert set(services["workers"]) == {"cpu", "embed"}
            assert services["workers"]["embed"]["queues"] == ["quarry.embed"]
            assert all(w["healthy"] for w in services["workers"].values())
            secrets = json.loads((data_dir / "stack" / "secrets.json").read_text())
            assert secrets["graph_password"] not in json.dumps(status)
            # The local stack's Flower login is shown, and it is the one Flower takes.
            login = services["flower"]["login"]
            assert login == {"user": "quarry", "password": secrets["flower_password"]}
            flower = services["flower"]["url"]
            assert httpx.get(f"{flower}/api/workers", timeout=30).status_code == 401
            signed_in = httpx.get(
                f"{flower}/api/workers", auth=(login["user"], login["password"]), timeout=30
            )
            assert signed_in.status_code == 200, signed_in.text[:200]
            table = run_quarry("dev", "status", env=env, timeout_s=60)
            assert f"login: quarry / {secrets['flower_password']}" in table.stdout
            pids = _all_pids(status)

            again = run_quarry("dev", "up", env=env)
            assert again.returncode == 0, again.stderr
            assert _all_pids(_status(env)[1]) == pids, "a second up must not restart anything"

            # The stack supervises its workers: a killed worker comes back by itself.
            worker = services["workers"]["cpu"]["pid"]
            os.kill(worker, signal.SIGKILL)

            def restarted() -> bool:
                code, now = _status(env)
                cpu = now["services"]["workers"]["cpu"]
                return code == 0 and cpu["pid"] not in (None, worker) and cpu["restarts"] >= 1

            _wait(restarted, 90)
            pids = _all_pids(_status(env)[1])

            for log in (data_dir / "logs").iterdir():
                text = log.read_text(encoding="utf-8", errors="replace")
                for name, secret in secrets.items():
                    assert secret not in text, f"{name} leaked into {log.name}"
            assert (data_dir / "run" / "graph.args").stat().st_mode & 0o077 == 0

            exports = run_quarry("dev", "env", env=env, timeout_s=60)
            assert f"export QUARRY_NEO4J_PASSWORD={secrets['graph_password']}" in exports.stdout
            assert "export QUARRY_API_TOKEN=" in exports.stdout
        finally:
            down = run_quarry("dev", "down", env=env)
        assert down.returncode == 0, down.stderr
        assert not [p for p in pids if is_alive(p)]
        assert processes_mentioning(str(data_dir)) == []
        for key in ("QUARRY_STACK_REDIS_PORT", "QUARRY_STACK_BOLT_PORT", "QUARRY_STACK_API_PORT"):
            assert not port_in_use("127.0.0.1", int(env[key])), key
        code, after = _status(env)
        assert code == 1
        assert after["services"]["redis"]["healthy"] is False


@pytest.mark.timeout(120)
def test_port_already_in_use_is_named_and_nothing_is_left_running() -> None:
    with stack_folder("quarry-test-port-") as data_dir:
        env = stack_env(data_dir)
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", int(env["QUARRY_STACK_POSTGRES_PORT"])))
        blocker.listen()
        try:
            result = run_quarry("dev", "up", env=env)
        finally:
            blocker.close()
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            f"quarry: error: port {env['QUARRY_STACK_POSTGRES_PORT']} for postgres is already in "
            "use by another process (choose another with QUARRY_STACK_POSTGRES_PORT)"
        )
        assert processes_mentioning(str(data_dir)) == []


@pytest.mark.timeout(60)
def test_data_folder_that_is_not_writable_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_quarry("dev", "up", env={"QUARRY_DATA_DIR": str(blocker / "data")}, timeout_s=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"quarry: error: data folder {blocker / 'data'} is not writable: Not a directory"
    )


@pytest.mark.timeout(60)
def test_unknown_setting_stops_up_before_anything_starts(tmp_path: Path) -> None:
    env = {"QUARRY_DATA_DIR": str(tmp_path / "d"), "QUARRY_STACK_FLOWER_PROT": "1"}
    result = run_quarry("dev", "up", env=env, timeout_s=60)
    assert result.returncode == 2
    assert "unknown setting QUARRY_STACK_FLOWER_PROT" in result.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.timeout(300)
def test_a_failure_after_services_started_rolls_them_back(monkeypatch: pytest.MonkeyPatch) -> None:
    with stack_folder("quarry-test-rollback-") as data_dir:
        stack = Stack(load_settings(env=stack_env(data_dir)))

        def broken_supervisor() -> None:
            raise StackError("supervisor could not start (injected)")

        monkeypatch.setattr(stack, "_start_supervisor", broken_supervisor)
        with pytest.raises(StackError, match="injected"):
            stack.up()
        assert processes_mentioning(str(data_dir)) == []
        assert stack.status()["services"]["postgres"]["pid"] is None
