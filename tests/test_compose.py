"""docker-compose.yaml is validated here (no Docker engine runs on CI): structure, services, health, mounts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_has_the_production_services(compose):
    services = set(compose["services"])
    assert AIRFLOW_SERVICES | {"postgres", "redis"} <= services
    # deferrable labeling-job sensors resume only where a triggerer runs
    assert compose["services"]["airflow-triggerer"]["command"] == "triggerer"


def test_celery_executor_on_postgres_and_redis(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")


def test_long_running_services_have_healthchecks(compose):
    for name, svc in compose["services"].items():
        if name in {"airflow-init", "emulator-seed"}:
            continue  # one-shot jobs
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no healthcheck"


def test_airflow_services_mount_the_project(compose):
    for name in AIRFLOW_SERVICES:
        mounts = {v.split(":")[1] for v in compose["services"][name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts, name


def test_image_installs_the_lock():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "pip install --no-cache-dir -r /requirements.txt" in dockerfile


def test_local_profile_adds_the_emulator_and_points_aws_default_at_it(compose):
    emu = compose["services"]["emulator"]
    assert emu["profiles"] == ["local"]
    assert emu["entrypoint"][:4] == ["python", "-m", "emulator", "serve"]
    assert "local" in compose["services"]["emulator-seed"]["profiles"]
    env_file = (REPO / "compose.local.env").read_text()
    assert "AIRFLOW_CONN_AWS_DEFAULT=aws://" in env_file and "endpoint_url=http%3A%2F%2Femulator%3A4566" in env_file
    # without the profile, the default connection carries no endpoint: real AWS
    default = compose["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"]
    assert "endpoint_url" not in default


def test_no_credentials_in_the_compose_file(compose):
    env = compose["x-airflow-common"]["environment"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert env[key] == "${" + key + ":-}", f"{key} must come from the environment only"


def _has_compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _has_compose_plugin(), reason="docker client without the compose plugin")
def test_docker_compose_config_accepts_it():
    for args in ([], ["--profile", "local", "--env-file", "compose.local.env"]):
        result = subprocess.run(
            ["docker", "compose", *args, "-f", "docker-compose.yaml", "config", "--quiet"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
