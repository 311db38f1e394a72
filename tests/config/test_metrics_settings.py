"""The workers' metrics settings: ports that may be off, and the multiprocess folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.settings import (
    METRICS_DIR_ENV,
    child_environment,
    load_settings,
    prepare_worker_metrics,
    worker_metrics_dir,
)
from pipeline.errors import ConfigError


def test_each_profile_has_its_metrics_port_and_all_uses_the_cpu_one() -> None:
    settings = load_settings(env={}, worker_metrics_port_cpu=9201, worker_metrics_port_embed=9202)
    assert settings.worker_metrics_port("cpu") == 9201
    assert settings.worker_metrics_port("all") == 9201
    assert settings.worker_metrics_port("embed") == 9202


def test_a_metrics_port_may_be_off_but_not_privileged() -> None:
    assert load_settings(env={"QUARRY_WORKER_METRICS_PORT_CPU": "0"}).worker_metrics_port_cpu == 0
    with pytest.raises(ConfigError, match="QUARRY_WORKER_METRICS_PORT_EMBED='80'"):
        load_settings(env={"QUARRY_WORKER_METRICS_PORT_EMBED": "80"})


def test_a_metrics_port_that_another_service_uses_is_refused() -> None:
    with pytest.raises(ConfigError, match="port 9300 is used by both"):
        load_settings(env={}, stack_api_port=9300, worker_metrics_port_cpu=9300)
    both_off = load_settings(env={}, worker_metrics_port_cpu=0, worker_metrics_port_embed=0)
    assert both_off.worker_metrics_port("embed") == 0


def test_preparing_the_worker_folder_empties_old_samples_and_sets_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setenv first: monkeypatch then restores the variable's absence after the test.
    monkeypatch.setenv(METRICS_DIR_ENV, "")
    monkeypatch.delenv(METRICS_DIR_ENV)
    settings = load_settings(env={}, data_dir=tmp_path)
    folder = worker_metrics_dir(settings, "cpu")
    folder.mkdir(parents=True)
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "keep.txt").write_text("not a sample file", encoding="utf-8")
    assert prepare_worker_metrics(settings, "cpu") == folder == tmp_path / "metrics" / "cpu"
    assert os.environ[METRICS_DIR_ENV] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    # The stack's other programs (API, Flower) are single processes: never inherit it.
    assert METRICS_DIR_ENV not in child_environment(settings)
