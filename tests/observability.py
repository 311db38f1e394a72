"""What the observability config asks of the code: metric and label names in PromQL.

Reads config/prometheus/rules.yml and config/grafana/dashboards/*.json and pulls out the
``quarry_*`` metric names (histogram series ``_bucket``/``_count``/``_sum`` folded into the
histogram's name) and the label names each expression uses, so that tests can compare
them with what tasks/metrics.py registers, or with what a live /metrics scrape shows.
Also finds promtool, failing (never skipping) where Debian's prometheus package is missing.

Pure: reads files, imports no Quarry package. Must not import: pipeline/, tasks/, workers/.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "config" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = REPO / "config" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"

# Labels Prometheus adds to every scraped series, and the histogram bucket bound.
TARGET_LABELS = frozenset({"job", "instance"})
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_METRIC = re.compile(r"\bquarry_[a-z0-9_]+")
_SELECTOR = re.compile(r"\b(quarry_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _without_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def base_name(series: str) -> str:
    """The metric a series belongs to: ``quarry_x_bucket`` is histogram ``quarry_x``."""
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def metric_names(expr: str) -> set[str]:
    """The ``quarry_*`` metrics an expression reads (label values are not names)."""
    return {base_name(name) for name in _METRIC.findall(_without_strings(expr))}


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """Each ``quarry_x{a="..", b=~".."}`` selector as (series name, matched label names)."""
    masked = _without_strings(expr)
    return [(name, set(_MATCHER.findall(body))) for name, body in _SELECTOR.findall(masked)]


def grouping_labels(expr: str) -> set[str]:
    """Label names in ``by``/``without``/``on``/``ignoring``/``group_*`` clauses."""
    masked = _without_strings(expr)
    return {label for body in _GROUPING.findall(masked) for label in _LABEL.findall(body)}


def rules() -> list[dict[str, Any]]:
    """Every rule of rules.yml, all groups."""
    parsed = yaml.safe_load(RULES.read_text())
    return [rule for group in parsed["groups"] for rule in group["rules"]]


def rule_exprs() -> dict[str, str]:
    """Rule name (alert or record) -> its PromQL expression."""
    return {rule.get("alert") or rule["record"]: rule["expr"] for rule in rules()}


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> parsed dashboard, for every provisioned dashboard."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_targets() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, panel, target) for every query target of every dashboard panel."""
    for file_name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                where = f"{file_name}: panel {panel.get('title')!r} target {target.get('refId')}"
                yield where, panel, target


def dashboard_exprs() -> dict[str, str]:
    """Where (dashboard, panel, refId) -> the target's PromQL expression."""
    return {where: target["expr"] for where, _, target in dashboard_targets() if "expr" in target}


def config_exprs() -> dict[str, str]:
    """Every PromQL expression of the rules and the dashboards, by where it lives."""
    return {**{f"rules.yml: {k}": v for k, v in rule_exprs().items()}, **dashboard_exprs()}


def metric_names_in_config() -> set[str]:
    """Every ``quarry_*`` metric the rules and the dashboards read (histograms by base name)."""
    return {name for expr in config_exprs().values() for name in metric_names(expr)}


def exported_metric_names(registry: CollectorRegistry) -> set[str]:
    """The names a registry exposes, in the form the config uses: counters with ``_total``,
    histograms and summaries by their base name, gauges as they are."""
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return names


def promtool() -> str:
    """The promtool binary; the test FAILS (not skips) where it is missing."""
    found = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin:/usr/local/bin")
    if found is None:
        pytest.fail(
            "promtool is missing: install Debian's prometheus package "
            "(`sudo apt-get install prometheus`, or `make install`), which ships it"
        )
    return found
