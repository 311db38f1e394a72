"""config/prometheus: the rules pass `promtool check`, their unit tests pass `promtool test
rules`, and prometheus.yml loads them. promtool comes from Debian's prometheus package
(the Makefile installs it); without it these tests fail, saying so."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability import (
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    RULES,
    RULES_TEST,
    promtool,
    rules,
)

pytestmark = pytest.mark.timeout(120)


def _promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_the_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_the_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULES_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_yml_loads_the_rules_and_passes_promtool_check(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [RULES.name]
    # promtool checks that the token file exists: compose mounts it as a secret; here a
    # stand-in takes its place in a copy of the folder.
    token = tmp_path / "prometheus_api_token"
    token.write_text("token\n")
    secret = "/run/secrets/prometheus_api_token"
    assert secret in PROMETHEUS_CONFIG.read_text()
    shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus")
    copy = tmp_path / "prometheus" / PROMETHEUS_CONFIG.name
    copy.write_text(copy.read_text().replace(secret, str(token)))
    result = _promtool("check", "config", copy.name, cwd=copy.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_every_alert_is_unit_tested_both_firing_and_silent() -> None:
    cases: list[dict[str, Any]] = [
        case
        for group in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
    ]
    for alert in {rule["alert"] for rule in rules()}:
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case.get("exp_alerts") for case in mine), f"{alert} is never seen firing"
        assert any(not case.get("exp_alerts") for case in mine), f"{alert} is never seen silent"


def test_the_alerts_name_what_they_are_about() -> None:
    """Per-queue and per-store alerts keep that label and say it in their summary."""
    by_name = {rule["alert"]: rule for rule in rules()}
    for alert, label in [
        ("QuarryQueueNearBound", "queue"),
        ("QuarryBreakerOpen", "store"),
        ("QuarryEmbedStalled", "queue"),
        ("QuarryWebhooksFailing", "event"),
    ]:
        assert f"by ({label}" in by_name[alert]["expr"], alert
        assert f"$labels.{label}" in by_name[alert]["annotations"]["summary"], alert
