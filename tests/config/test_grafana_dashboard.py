"""config/grafana: the provisioned dashboard is well formed, queries the provisioned
Prometheus with valid PromQL, and is where the compose stack's Grafana looks for it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability import (
    DASHBOARDS_DIR,
    DATASOURCES,
    GRAFANA_DIR,
    REPO,
    dashboard_exprs,
    dashboard_targets,
    dashboards,
    metric_names,
    panels,
    promtool,
)

GRAFANA_11_SCHEMA_VERSION = 39
# Grafana's query variables, replaced by a duration so that promtool can parse the query.
_GRAFANA_VARIABLES = re.compile(r"\$__(?:rate_interval|interval|range)\b|\$\{__[a-z_]+\}")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dashboards()["quarry.json"]


def test_the_dashboard_has_a_stable_uid_and_grafana_11s_schema(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "quarry"
    assert dashboard["schemaVersion"] == GRAFANA_11_SCHEMA_VERSION
    assert dashboard["title"] == "Quarry"


def test_panel_ids_are_unique_and_panels_fit_the_grid_without_overlap(
    dashboard: dict[str, Any],
) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_uses_the_provisioned_prometheus() -> None:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    wanted = {"type": "prometheus", "uid": datasource["uid"]}
    targets = list(dashboard_targets())
    assert targets
    for where, panel, target in targets:
        assert panel["datasource"] == wanted, where
        assert target["datasource"] == wanted, where
        assert target["expr"] and target["refId"], where


def test_the_panels_the_issue_asks_for_are_there(dashboard: dict[str, Any]) -> None:
    def reads(title: str) -> set[str]:
        (panel,) = [p for p in panels(dashboard) if p["title"] == title]
        return {name for t in panel["targets"] for name in metric_names(t["expr"])}

    assert reads("Throughput per stage") == {"quarry_tasks_total"}
    assert reads("Task duration p50 / p95") == {"quarry_task_seconds"}
    assert reads("Queue fill") == {"quarry_queue_fill_ratio"}
    assert reads("Queue depth") == {"quarry_queue_depth"}
    assert reads("Breaker states") == {"quarry_breaker_state"}
    assert reads("Embed batch size p50 / p95") == {
        "quarry_embed_batch_chunks",
        "quarry_embed_batch_tokens",
    }
    assert reads("Embed throughput") >= {"quarry_embed_chunks_per_second"}
    assert reads("Embed cache hit ratio") == {"quarry_embed_cache_hit_ratio"}
    assert reads("Job duration p50 / p95") == {"quarry_job_seconds"}
    assert reads("Jobs by status") == {"quarry_jobs_total"}
    assert reads("Files and chunks per job p50 / p95") == {"quarry_job_files", "quarry_job_chunks"}
    assert reads("Search latency p50 / p95") == {"quarry_search_seconds"}
    assert reads("Webhook deliveries") == {"quarry_webhook_deliveries_total"}
    assert reads("Webhook give-ups") == {"quarry_webhook_deliveries_total"}
    assert reads("Dead letters") == {"quarry_dead_letters_total"}


@pytest.mark.timeout(120)
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as a recording rule, with Grafana's variables filled in."""
    exprs = dashboard_exprs()
    records = [
        {"record": f"quarry:dashboard_query_{i}", "expr": _GRAFANA_VARIABLES.sub("5m", expr)}
        for i, expr in enumerate(exprs.values())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_compose_mounts_the_dashboards_where_the_provisioning_looks() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = dict(
        volume.removesuffix(":ro").split(":", 1)
        for volume in compose["services"]["grafana"]["volumes"]
        if volume.startswith("./")
    )
    provisioning = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "quarry.yml").read_text()
    )
    (provider,) = provisioning["providers"]
    assert mounts["./config/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./config/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert DASHBOARDS_DIR == REPO / "config" / "grafana" / "dashboards"


def test_the_webhook_give_ups_panel_shows_the_outcomes_that_become_dead_letters(
    dashboard: dict[str, Any],
) -> None:
    (panel,) = [p for p in panels(dashboard) if p["title"] == "Webhook give-ups"]
    exprs = [target["expr"] for target in panel["targets"]]
    assert [re.findall(r'outcome="(\w+)"', expr) for expr in exprs] == [["failed"], ["refused"]]
    assert all(expr.startswith("sum by (event) (increase(") for expr in exprs)
    assert "quarry dlq list" in panel["description"]
