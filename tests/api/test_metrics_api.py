"""The API's /metrics through the app: token-protected, every queue's depth read from
Redis at scrape time, and a scrape that stands when Redis is down."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from config.endpoints import resolve_endpoints
from config.queues import ALL_QUEUES
from config.settings import QuarrySettings, load_settings, settings_as_env
from devstack.stack import Stack
from tests.stackutil import free_ports


def _queues(text: str, name: str) -> dict[str, float]:
    return {
        sample.labels["queue"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _scrape(settings: QuarrySettings, token: str) -> tuple[int, str]:
    from api.app import create_app

    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.text


def test_the_api_scrape_has_every_queue_read_from_redis(stack: Stack) -> None:
    settings = load_settings(env=settings_as_env(stack.settings), search_warm_on_start=False)
    code, text = _scrape(settings, resolve_endpoints(settings).api_token)
    assert code == 200
    fill = _queues(text, "quarry_queue_fill_ratio")
    assert set(fill) == set(_queues(text, "quarry_queue_depth")) == set(ALL_QUEUES)
    assert all(0 <= value <= 1 for value in fill.values())
    assert text.count("# TYPE quarry_queue_depth gauge") == 1


def test_a_redis_that_is_down_leaves_the_queues_out_of_a_scrape_that_still_answers(
    stack: Stack,
) -> None:
    (dead,) = free_ports(1)
    settings = load_settings(
        env=settings_as_env(stack.settings),
        redis_url=f"redis://127.0.0.1:{dead}/0",
        search_warm_on_start=False,
    )
    code, text = _scrape(settings, resolve_endpoints(stack.settings).api_token)
    assert code == 200  # the token lives in PostgreSQL, which answers
    assert _queues(text, "quarry_queue_depth") == {}
    assert "# TYPE quarry_search_seconds histogram" in text
