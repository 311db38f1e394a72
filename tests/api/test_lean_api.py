"""The lean API: no torch or scipy in its process, the query model's export made at
install (a missing one is a 503 naming the command), and the model unloaded when idle.

The memory figure itself (VmRSS after a search) is recorded by ``bench/lean_api.py`` in
bench/results/e2e.md, not asserted here.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from config.endpoints import resolve_endpoints
from devstack.processes import read_pid
from devstack.stack import Stack

# Native libraries that importing torch or scipy maps into a process (libtorch_cpu.so,
# scipy's extension modules): the process's sys.modules, seen from outside.
HEAVY = ("/torch/", "/scipy/", "/sklearn/")


def _mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")


def _model_loads() -> float:
    value = REGISTRY.get_sample_value("quarry_search_seconds_count", {"step": "model_load"})
    return value or 0.0


def test_the_stacks_api_process_maps_no_torch_or_scipy_after_a_search(stack: Stack) -> None:
    endpoints = resolve_endpoints(stack.settings)
    pid = read_pid(stack.layout.pidfile("api"))
    assert pid is not None
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=60) as api:
        answer = api.get("/v1/search", params={"q": "open a file and read its lines"})
    assert answer.status_code == 200, answer.text
    maps = _mapped(pid)
    # The query was embedded in this process, by onnxruntime...
    assert "onnxruntime" in maps
    # ...and neither torch nor scipy was ever loaded into it.
    assert [line for line in maps.splitlines() if any(h in line for h in HEAVY)] == []


def test_search_without_the_export_is_a_503_naming_the_command(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(
        update={"query_model_dir": tmp_path / "no-export", "search_warm_on_start": False}
    )
    token = resolve_endpoints(settings).api_token
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        answer = client.get("/v1/search", params={"q": "parse a header"}, headers=headers)
        ready = client.get("/readyz")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.startswith("search unavailable: ")
    assert "run `quarry model export`" in detail
    assert str(tmp_path / "no-export") in detail
    assert ready.status_code == 200
    assert not (tmp_path / "no-export").exists()  # the API never exports


def test_the_query_model_is_unloaded_when_idle_and_the_next_search_reloads_it(
    stack: Stack,
) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(
        update={"search_query_model_idle_s": 0.5, "search_warm_on_start": False}
    )
    token = resolve_endpoints(settings).api_token
    before = _model_loads()
    app = create_app(settings)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        # Different queries each time: the Redis query cache would skip the model.
        first = client.get("/v1/search", params={"q": f"idle one {time.time()}"}, headers=headers)
        embedder = app.state.quarry.query_embedder
        assert first.status_code == 200 and embedder.loaded
        deadline = time.monotonic() + 10
        while embedder.loaded and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not embedder.loaded
        again = client.get("/v1/search", params={"q": f"idle two {time.time()}"}, headers=headers)
    assert again.status_code == 200
    assert embedder.loads == 2
    # Each load, the reload included, is timed in quarry_search_seconds{step="model_load"}.
    assert _model_loads() - before == 2
