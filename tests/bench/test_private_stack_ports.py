"""The benchmarks' private stacks: a free port for everything they bind (a local stack
may hold every default), and a port taken anyway is one line, not a traceback."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.commands import embed_stack_settings
from bench.e2e_stack import run_quarry
from cli import main as cli_main
from config.settings import QuarrySettings, child_environment
from devstack.ports import STACK_PORT_FIELDS, private_stack_ports
from devstack.processes import port_in_use
from pipeline.errors import StackError


@contextlib.contextmanager
def held(ports: list[int]) -> Iterator[list[int]]:
    """Listen on each port that is free (another stack may hold some already)."""
    sockets = []
    try:
        for port in ports:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen()
            sockets.append(sock)
        yield ports
    finally:
        for sock in sockets:
            sock.close()


def _defaults() -> dict[str, int]:
    return {name: QuarrySettings.model_fields[name].default for name in STACK_PORT_FIELDS}


def test_every_port_setting_is_one_a_private_stack_picks() -> None:
    ports = {n for n in QuarrySettings.model_fields if "port" in n and n != "api_url"}
    assert ports == set(STACK_PORT_FIELDS)


def test_the_embed_benchmarks_stack_avoids_every_default_port_even_while_held(
    tmp_path: Path,
) -> None:
    defaults = _defaults()
    assert defaults["worker_metrics_port_embed"] == 9102
    with held(list(defaults.values())):
        settings = embed_stack_settings(tmp_path, 1, "torch")
        chosen = {name: getattr(settings, name) for name in STACK_PORT_FIELDS}
        assert all(chosen[name] != defaults[name] for name in STACK_PORT_FIELDS), chosen
        assert len(set(chosen.values())) == len(chosen)
        assert not any(port_in_use("127.0.0.1", port) for port in chosen.values())


def test_without_worker_metrics_the_workers_bind_no_metrics_port() -> None:
    ports = private_stack_ports(worker_metrics=False)
    assert ports["worker_metrics_port_cpu"] == ports["worker_metrics_port_embed"] == 0
    assert all(ports[name] > 0 for name in STACK_PORT_FIELDS if "metrics" not in name)


@pytest.mark.timeout(120)
def test_a_port_taken_before_the_stack_starts_is_one_line_naming_it(tmp_path: Path) -> None:
    settings = embed_stack_settings(tmp_path, 1, "torch")
    port = settings.worker_metrics_port_embed
    with held([port]), pytest.raises(StackError) as raised:
        run_quarry("dev", "up", env=child_environment(settings), timeout_s=90)
    message = str(raised.value)
    assert "\n" not in message
    assert f"port {port} for worker-embed metrics is already in use" in message
    assert "QUARRY_WORKER_METRICS_PORT_EMBED" in message
    # Nothing was started: the ports are checked first.
    assert list((tmp_path / "data" / "run").glob("*.pid")) == []


def test_a_quarry_error_a_command_did_not_guard_is_one_line_and_an_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def busy() -> None:
        raise StackError("port 9102 for worker-embed metrics is already in use")

    monkeypatch.setattr(cli_main, "app", busy)
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "quarry: error: port 9102 for worker-embed metrics is already in use"
    )
