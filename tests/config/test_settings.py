"""Settings: defaults, sources, and one-line errors that name the key and the value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.docs import settings_table
from config.settings import QuarrySettings, load_settings, settings_as_env
from pipeline.errors import ConfigError
from tests.stackutil import run_quarry

REPO = Path(__file__).resolve().parents[2]


def test_defaults_put_all_state_under_dot_quarry_in_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.data_dir == tmp_path / ".quarry"
    assert settings.stack_redis_port == 6390
    assert settings.redis_url is None


def test_environment_overrides_defaults() -> None:
    settings = load_settings(env={"QUARRY_STACK_REDIS_PORT": "7001", "QUARRY_LOG_JSON": "true"})
    assert settings.stack_redis_port == 7001
    assert settings.log_json is True


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("QUARRY_STACK_REDIS_PORT", "abc", "valid integer"),
        ("QUARRY_STACK_REDIS_PORT", "80", "between 1024 and 65535"),
        ("QUARRY_REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("QUARRY_NEO4J_URI", "http://graph:7474", "bolt://"),
        ("QUARRY_LOG_LEVEL", "LOUD", "DEBUG"),
        ("QUARRY_STACK_GRAPH_HEAP_MB", "1", "greater than or equal to 256"),
        ("QUARRY_STACK_WORKERS", "cpu,gpu", "unknown worker profile 'gpu'"),
        ("QUARRY_WORKER_CPU_CONCURRENCY", "0", "greater than or equal to 1"),
    ],
)
def test_invalid_value_is_one_line_naming_key_and_value(
    key: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={key: value})
    message = str(caught.value)
    assert "\n" not in message
    assert key in message
    assert repr(value) in message
    assert expected in message


def test_unknown_setting_is_refused_with_a_suggestion() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown setting QUARRY_STACK_REDIS_PROT \(did you mean QUARRY_STACK_REDIS_PORT\?\)",
    ):
        load_settings(env={"QUARRY_STACK_REDIS_PROT": "7000"})


def test_a_password_in_an_invalid_url_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"QUARRY_POSTGRES_DSN": "mysql://quarry:hunter2@db:3306/q"})
    assert "hunter2" not in str(caught.value)
    assert "QUARRY_POSTGRES_DSN" in str(caught.value)


def test_secret_settings_are_hidden_in_errors_and_repr() -> None:
    settings = load_settings(env={"QUARRY_NEO4J_PASSWORD": "s3cret-value"})
    assert "s3cret-value" not in repr(settings)
    assert settings.neo4j_password is not None
    assert settings.neo4j_password.get_secret_value() == "s3cret-value"


def test_two_services_on_one_port_are_refused() -> None:
    with pytest.raises(ConfigError, match="port 7000 is used by both"):
        load_settings(env={"QUARRY_STACK_REDIS_PORT": "7000", "QUARRY_STACK_API_PORT": "7000"})


def test_config_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "quarry.toml"
    path.write_text("stack_redis_port = 7100\nstack_api_port = 7101\n", encoding="utf-8")
    settings = load_settings(env={"QUARRY_CONFIG_FILE": str(path), "QUARRY_STACK_API_PORT": "7200"})
    assert settings.stack_redis_port == 7100
    assert settings.stack_api_port == 7200


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("stack_redis_prot = 7000\n", "unknown setting 'stack_redis_prot'"),
        ("stack_redis_port = \n", "quarry.toml"),
        ("stack_redis_port = 'x'\n", "stack_redis_port='x'"),
    ],
)
def test_bad_config_file_names_the_file_and_key(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "quarry.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"QUARRY_CONFIG_FILE": str(path)})
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_config_file_is_named() -> None:
    expected = "QUARRY_CONFIG_FILE='/nonexistent/q.toml': no such file"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings(env={"QUARRY_CONFIG_FILE": "/nonexistent/q.toml"})


def test_settings_survive_the_trip_to_a_child_process_environment(tmp_path: Path) -> None:
    original = load_settings(
        env={
            "QUARRY_DATA_DIR": str(tmp_path),
            "QUARRY_NEO4J_PASSWORD": "pw",
            "QUARRY_STACK_WORKERS": "cpu",
        }
    )
    assert load_settings(env=settings_as_env(original)) == original


def test_every_setting_is_documented_with_its_default() -> None:
    table = settings_table()
    for name, info in QuarrySettings.model_fields.items():
        assert f"`QUARRY_{name.upper()}`" in table
        assert info.description, f"{name} has no description"
    assert (REPO / "docs" / "configuration.md").read_text(encoding="utf-8").endswith(table), (
        "docs/configuration.md is stale: regenerate it with `quarry config docs`"
    )


def test_cli_reports_a_bad_setting_in_one_line_and_exits_2() -> None:
    result = run_quarry("config", "check", env={"QUARRY_STACK_REDIS_PORT": "abc"}, timeout_s=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "quarry: error: invalid setting QUARRY_STACK_REDIS_PORT='abc': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_cli_config_check_hides_secrets() -> None:
    result = run_quarry("config", "check", env={"QUARRY_NEO4J_PASSWORD": "topsecret"}, timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert "QUARRY_NEO4J_PASSWORD='<hidden>'" in result.stdout
    assert "topsecret" not in result.stdout + result.stderr


def test_cli_config_check_prints_paths_as_one_writes_them(tmp_path: Path) -> None:
    env = {"QUARRY_DATA_DIR": str(tmp_path / "d"), "QUARRY_SOURCE_ALLOWED_ROOTS": str(tmp_path)}
    result = run_quarry("config", "check", env=env, timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert f"QUARRY_DATA_DIR='{tmp_path / 'd'}'" in result.stdout
    assert f"QUARRY_SOURCE_ALLOWED_ROOTS=['{tmp_path}']" in result.stdout
    assert "PosixPath" not in result.stdout


def test_secrets_dir_files_set_settings_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "neo4j_password").write_text("from-file\n", encoding="utf-8")
    (tmp_path / "flower_password").write_text("flower-file", encoding="utf-8")
    settings = load_settings(
        env={"QUARRY_SECRETS_DIR": str(tmp_path), "QUARRY_FLOWER_PASSWORD": "from-env"}
    )
    assert settings.neo4j_password is not None
    assert settings.neo4j_password.get_secret_value() == "from-file"
    assert settings.flower_password is not None
    assert settings.flower_password.get_secret_value() == "from-env"


def test_visibility_timeout_must_exceed_the_task_time_limit() -> None:
    with pytest.raises(ConfigError, match="broker_visibility_timeout_s"):
        load_settings(
            env={"QUARRY_TASK_TIME_LIMIT_S": "900", "QUARRY_BROKER_VISIBILITY_TIMEOUT_S": "600"}
        )


def test_a_webhook_retry_waits_less_than_the_visibility_timeout_allows() -> None:
    # A waiting retry is an unacknowledged message: Redis would deliver it again.
    env = {
        "QUARRY_TASK_TIME_LIMIT_S": "20",
        "QUARRY_BROKER_VISIBILITY_TIMEOUT_S": "30",
        "QUARRY_QUEUE_WAIT_S": "10",
    }
    with pytest.raises(ConfigError, match="webhook_retry_cap_s"):
        load_settings(env=env)  # the default cap, 600 s
    with pytest.raises(ConfigError, match="webhook_retry_cap_s"):
        load_settings(env={**env, "QUARRY_WEBHOOK_RETRY_CAP_S": "10"})
    assert load_settings(env={**env, "QUARRY_WEBHOOK_RETRY_CAP_S": "9.5"})
    settings = load_settings(env={})
    assert settings.webhook_retry_cap_s + settings.task_time_limit_s < (
        settings.broker_visibility_timeout_s
    )


def test_a_stage_waits_for_room_below_the_soft_time_limit() -> None:
    with pytest.raises(ConfigError, match="queue_wait_s"):
        load_settings(env={"QUARRY_TASK_TIME_LIMIT_S": "60", "QUARRY_QUEUE_WAIT_S": "40"})
    assert load_settings(env={"QUARRY_TASK_TIME_LIMIT_S": "60", "QUARRY_QUEUE_WAIT_S": "39"})
