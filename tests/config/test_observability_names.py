"""The alert rules and the Grafana dashboard read only metrics and labels the code exports.

A renamed metric or label would otherwise leave an alert that never fires or a panel that
stays empty, silently. Names come from the prometheus_client REGISTRY after importing
tasks.metrics; label names from the metric objects tasks.metrics defines.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import tasks.metrics
from tests.observability import (
    TARGET_LABELS,
    base_name,
    config_exprs,
    exported_metric_names,
    grouping_labels,
    metric_names,
    metric_names_in_config,
    selector_labels,
)


def _exported_labels() -> dict[str, frozenset[str]]:
    """Metric name as the config writes it -> the label names the code sets on it."""
    labels: dict[str, frozenset[str]] = {}
    for value in vars(tasks.metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            labels[name] = frozenset(value._labelnames)
    return labels


def test_every_metric_name_in_the_rules_and_the_dashboard_is_exported() -> None:
    exported = exported_metric_names(REGISTRY)
    missing = {
        where: sorted(metric_names(expr) - exported)
        for where, expr in config_exprs().items()
        if metric_names(expr) - exported
    }
    assert not missing, f"metrics the code does not export: {missing}"


def test_the_config_reads_the_metrics_the_issue_names() -> None:
    """Not vacuous: the rules and panels cover every stage the issue asks for."""
    assert metric_names_in_config() >= {
        "quarry_queue_fill_ratio",
        "quarry_queue_depth",
        "quarry_breaker_state",
        "quarry_embed_chunks_total",
        "quarry_embed_batch_chunks",
        "quarry_embed_batch_tokens",
        "quarry_embed_chunks_per_second",
        "quarry_embed_cache_hit_ratio",
        "quarry_webhook_deliveries_total",
        "quarry_dead_letters_total",
        "quarry_search_seconds",
        "quarry_tasks_total",
        "quarry_task_seconds",
        "quarry_jobs_total",
        "quarry_job_seconds",
        "quarry_job_files",
        "quarry_job_chunks",
    }


def test_every_label_in_the_rules_and_the_dashboard_is_one_the_code_sets() -> None:
    labels = _exported_labels()
    problems: list[str] = []
    for where, expr in config_exprs().items():
        names = metric_names(expr)
        known = set(TARGET_LABELS).union(*(labels.get(name, frozenset()) for name in names))
        for series, matched in selector_labels(expr):
            own = labels.get(base_name(series), frozenset()) | TARGET_LABELS
            if series.endswith("_bucket"):
                own |= {"le"}
            if matched - own:
                problems.append(f"{where}: {series} has no label {sorted(matched - own)}")
        if "_bucket" in expr:
            known.add("le")
        if grouping_labels(expr) - known:
            problems.append(f"{where}: groups by unknown {sorted(grouping_labels(expr) - known)}")
    assert not problems, "\n".join(problems)


def test_the_exported_names_are_the_exposition_names() -> None:
    exported = exported_metric_names(REGISTRY)
    assert "quarry_dead_letters_total" in exported  # a counter, with its _total
    assert "quarry_dead_letters" not in exported
    assert "quarry_search_seconds" in exported  # a histogram, by its base name
    assert "quarry_queue_fill_ratio" in exported  # a gauge


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.95, sum by (le) (rate(quarry_a_seconds_bucket[5m])))",
            {"quarry_a_seconds"},
        ),
        ("sum(rate(quarry_b_sum[5m])) / sum(rate(quarry_b_count[5m]))", {"quarry_b"}),
        ('quarry_c_total{task="quarry_not_a_metric"} > 0', {"quarry_c_total"}),
        ("max by (queue) (quarry_queue_depth) unless on () up", {"quarry_queue_depth"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_labels_are_read_from_selectors_and_grouping_clauses() -> None:
    expr = 'sum by (event, outcome) (increase(quarry_x_total{outcome=~"a|b", job!="z"}[5m]))'
    assert selector_labels(expr) == [("quarry_x_total", {"outcome", "job"})]
    assert grouping_labels(expr) == {"event", "outcome"}
    assert grouping_labels('a / on (store) group_left (item) b{x="by (nope)"}') == {
        "store",
        "item",
    }
